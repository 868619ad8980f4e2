"""Notes as the latent: transcribe the training audio, learn to continue its notes, play new notes back.

The audio models before this one learn timbre, harmony and rhythm at once from minutes of audio.
Factored the way Wave2Midi2Wave does it (Hawthorne et al. 2019: Onsets and Frames → Music Transformer →
a note-conditioned synthesiser), each part learns what it can:

1. the :mod:`~musiclib.models.transcriber` (trained once per machine on the bundled chorales, whose notes
   are known) writes down the notes of every training recording;
2. the notes become tokens (:mod:`musiclib.note_events`: a time grid fitted to the music; shift, pitch and
   duration tokens), every piece also transposed by each of ``transpositions`` semitones;
3. a small causal transformer (:class:`musiclib.models.token_transformer.TokenPrior` with one token per
   position) learns the next token; sampling uses its key/value cache;
4. the notes it writes are played by General MIDI instruments (:func:`musiclib.soundfont.render_notes`),
   the ensemble matched to the training audio unless chosen.

A continuation transcribes the prime, places it on the grid, samples what follows, and plays prime and
continuation together, so that the new part starts where the prime stops. The round trip (audio →
transcription → grid → instruments) is the ceiling: no model of these notes can sound closer to the music.

It cannot play the timbre of the user's own recording (the instruments are General MIDI's), nor expressive
timing or dynamics (onsets sit on the grid; every note has one loudness).

Notebook: 14_notes.ipynb
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from musiclib import note_events
from musiclib.config import AudioConfig
from musiclib.datasets import DatasetError
from musiclib.models import base, register, vq
from musiclib.models.layers import eval_mode
from musiclib.models.token_transformer import TokenPrior, longest_copied_ngram, ngram_cross_entropy
from musiclib.models.token_transformer import sample as sample_tokens
from musiclib.models.transcriber import ENSEMBLE_CHOICES, Playback, Transcriber, TranscriberSettings
from musiclib.synth import Note

MIN_TRAINING_NOTES = 32
"""Fewer notes than this transcribed from the training audio is refused: there is no music to learn from."""


@dataclasses.dataclass(frozen=True)
class NoteTransformerSettings(base.Settings):
    """The prior: ``context`` tokens, ``layers`` blocks of width ``d_model`` with ``heads`` heads; every training
    piece also transposed by each of ``transpositions`` semitones; sampling ``temperature`` and ``top_k`` (0: all; at
    0.7 rather than 1, samples of the fast recipe hold their key and beat better and copy no more: measured in
    ``docs/2026-12-07-notes-as-the-latent.md``);
    the ``ensemble`` that plays the notes (``auto``: the ensembles closest to the training recordings, in their shares).

    The transcriber: ``transcriber`` names a trained ``transcriber`` run to reuse (empty: one trained on the bundled
    chorales for ``transcriber_steps`` steps, once per machine, with ``transcriber_config``); ``transcriber_run`` and
    ``transcriber_config`` record the run used and its settings.
    """

    transcriber: str = ""
    transcriber_steps: int = TranscriberSettings().steps
    transcriber_run: str = ""
    transcriber_config: TranscriberSettings = TranscriberSettings()
    context: int = 128
    d_model: int = 96
    heads: int = 4
    layers: int = 2
    dropout: float = 0.3
    transpositions: tuple[int, ...] = tuple(range(-5, 7))
    temperature: float = 0.7
    top_k: int = 0
    ensemble: str = "auto"
    batch_size: int = 16
    learning_rate: float = 1e-3
    steps: int = 400

    @classmethod
    def full(cls):
        return cls(transcriber_steps=TranscriberSettings.full().steps, transcriber_config=TranscriberSettings.full(),
                   context=512, d_model=256, layers=6, dropout=0.2, batch_size=32, steps=8000)

    def check(self) -> None:
        if self.d_model % self.heads:
            raise ValueError(f"setting d_model ({self.d_model}) must be a multiple of heads ({self.heads})")
        if self.context < 8 or self.temperature <= 0 or self.top_k < 0:
            raise ValueError("settings context must be at least 8, temperature above 0 and top_k at least 0")
        if self.ensemble not in ENSEMBLE_CHOICES:
            raise ValueError(f"setting ensemble must be one of {', '.join(ENSEMBLE_CHOICES)}, got {self.ensemble!r}")
        if not self.transpositions or 0 not in self.transpositions:
            raise ValueError("setting transpositions must include 0 (the music as it is)")


@register
class NoteTransformer(base.Model):
    """The transcriber it is built on (frozen, kept in every checkpoint), the prior, and the fitted grid and ensembles."""

    name, family, output = "note-transformer", "notes", "audio"
    description = "transcribes the audio into notes, learns them with a causal transformer, plays new notes"
    gallery = ("New notes written by a small transformer after a transcriber had written down the training music's notes, "
               "played by sampled General MIDI instruments. Listen for chords that follow each other in a key and on a "
               "beat, in someone else's instruments: the timbre of the training audio is not learned.")
    Settings = NoteTransformerSettings
    upstream = base.Upstream(Transcriber, "transcriber", budget_share=0.3, data="chorales")

    def __init__(self, settings: NoteTransformerSettings, audio: AudioConfig, upstream: Transcriber):
        super().__init__(settings, audio)
        self.transcriber = upstream
        self.transcriber.requires_grad_(False)
        self.prior = TokenPrior(note_events.VOCABULARY, 1, settings.context, settings.d_model, settings.heads,
                                settings.layers, settings.dropout)
        self.register_buffer("grid_seconds", torch.tensor(0.25))
        self.register_buffer("tokens_per_second", torch.tensor(8.0))
        self.playback = Playback(audio.sample_rate)
        self._transcribed: dict[tuple[str, str], list[list[Note]]] = {}

    def train(self, mode: bool = True):
        super().train(mode)
        self.transcriber.eval()  # it never trains here
        return self

    # -- the data: notes, grid, tokens ---------------------------------------------------------------------------

    def piece_notes(self, dataset, split: str) -> list[list[Note]]:
        """The transcribed notes of every recording of a split (transcribed once per dataset and split)."""
        key = (str(dataset.root), split)
        if key not in self._transcribed:
            self._transcribed[key] = [self.transcriber.transcribe(y, dataset.sample_rate) for y in vq.pieces(dataset, split)]
        return self._transcribed[key]

    def fit(self, dataset) -> None:
        """Transcribe the training audio; fit the grid to its onsets and (``ensemble="auto"``) the ensembles to its sound.

        Raises:
            DatasetError: fewer than :data:`MIN_TRAINING_NOTES` notes were heard.
        """
        pieces = self.piece_notes(dataset, "train")
        heard = sum(len(notes) for notes in pieces)
        if heard < MIN_TRAINING_NOTES:
            raise DatasetError(f"{dataset.root}: the transcriber heard {heard} notes in its training audio (at least "
                               f"{MIN_TRAINING_NOTES} needed): give it recordings of pitched music, not noise or speech")
        grid = note_events.fit_grid(pieces)
        self.grid_seconds.fill_(grid)
        tokens = self.piece_tokens(pieces)
        seconds = dataset.seconds("train")
        self.tokens_per_second.fill_(sum(len(t) for t in tokens) / max(seconds, 1e-9))
        self.playback.fit(vq.pieces(dataset, "train"), pieces, self.settings.ensemble)

    @property
    def grid(self) -> float:
        return float(self.grid_seconds)

    def piece_tokens(self, pieces: list[list[Note]], transpositions=(0,)) -> list[np.ndarray]:
        """Each piece's tokens on the grid (its own phase), once per transposition that keeps every note in range."""
        tokens = [note_events.encode(notes, self.grid, note_events.grid_phase(notes, self.grid)) for notes in pieces]
        moved = (note_events.transpose(t, k) for t in tokens for k in transpositions)
        return [t for t in moved if t is not None and len(t) > 1]

    def features(self, dataset, split: str) -> np.ndarray | None:
        """``(n, context, 1)`` int64 windows of the token sequences (:meth:`windows`): every eighth of a window of every
        transposition (training), every half window (validation)."""
        training = split == "train"
        pieces = self.piece_tokens(self.piece_notes(dataset, split), self.settings.transpositions if training else (0,))
        return self.windows(pieces, self.settings.context // (8 if training else 2))

    def windows(self, pieces: list[np.ndarray], stride: int) -> np.ndarray | None:
        """``(n, context, 1)`` windows cut every ``stride`` tokens; a piece shorter than ``context`` is one window
        padded with ``PAD`` (which the loss skips)."""
        context = self.settings.context
        cut = [np.pad(t[start: start + context], (0, max(0, context - len(t[start:]))), constant_values=self.prior.pad)
               for t in pieces for start in range(0, max(1, len(t) - context + 1), max(1, stride))]
        return np.stack(cut)[..., None] if cut else None

    def loss(self, rows: torch.Tensor, phase: str = "") -> torch.Tensor:
        """Cross-entropy (nats per token) of each token given ``BOS`` and the tokens before it in its window."""
        return self.prior.next_row_loss(rows)

    # -- generation -----------------------------------------------------------------------------------------------

    def continue_tokens(self, prefix: np.ndarray, until_seconds: float, seed: int, phase: float = 0.0) -> np.ndarray:
        """``prefix`` ``(P,)`` and new tokens after it, drawn until the clock reaches ``until_seconds``."""
        s, tokens = self.settings, np.asarray(prefix, np.int64)
        for round_ in range(64):  # each round draws about what the remaining time needs at the training pace
            remaining = until_seconds - note_events.end_seconds(tokens, self.grid, phase)
            if remaining <= 0:
                break
            n_new = int(np.ceil(float(self.tokens_per_second) * remaining * 1.25)) + 8
            new = sample_tokens(self.prior, tokens[None, :, None], n_new, s.temperature, s.top_k, seed + 7919 * round_)
            tokens = np.concatenate([tokens, new[0, :, 0]])
        return tokens

    def sample_notes(self, n: int, seconds: float, seed: int) -> list[list[Note]]:
        """``n`` lists of new notes of at least ``seconds``, from ``BOS`` alone, each starting with its first note at 0 s.

        A training window may start anywhere in a piece, so the first tokens drawn may be a rest (or the duration of a
        note the window cut); a new piece starts when its first note sounds (what comes before its first pitch is left
        out and the piece drawn on from there)."""
        pieces = []
        for i in range(n):
            tokens = self.continue_tokens(np.zeros(0, np.int64), seconds, seed + i)
            first_note = np.flatnonzero((tokens >= note_events.PITCH) & (tokens < note_events.DURATION))
            if len(first_note) and first_note[0] > 0:
                tokens = self.continue_tokens(tokens[first_note[0]:], seconds, seed + i)
            pieces.append([note for note in note_events.decode(tokens, self.grid) if note.onset < seconds])
        return pieces

    def sample(self, n: int, seconds: float, seed: int) -> np.ndarray:
        """New notes (:meth:`sample_notes`), each piece played by an ensemble drawn from the playback's shares of the
        training audio: ``(n, samples)``."""
        rng = np.random.default_rng(seed)
        return np.stack([self.playback(notes, seconds, self.playback.draw(rng)) for notes in self.sample_notes(n, seconds, seed)])

    def continuation_notes(self, prime: np.ndarray, seconds: float, seed: int) -> tuple[list[Note], list[Note]]:
        """One prime ``(samples,)``: its notes on the grid, and the notes that continue it until ``seconds`` after it.

        Raises:
            ValueError: the transcriber heard no notes in the prime.
        """
        heard = self.transcriber.transcribe(prime, self.audio.sample_rate)
        if not heard:
            raise ValueError("the prime has no notes the transcriber can hear: give a prime with pitched music in it")
        phase = note_events.grid_phase(heard, self.grid)
        prefix = note_events.encode(heard, self.grid, phase)
        prime_seconds = len(prime) / self.audio.sample_rate
        tokens = self.continue_tokens(prefix, prime_seconds + seconds, seed, phase)
        primed = note_events.decode(prefix, self.grid, phase)
        new = note_events.decode(tokens, self.grid, phase)[len(primed):]
        return primed, [note for note in new if note.onset < prime_seconds + seconds]

    def continuation(self, prime: np.ndarray, seconds: float, seed: int) -> np.ndarray:
        """Each prime's notes and their continuation played together, by the ensemble closest to the prime; the audio
        after the prime (``(n, samples)``)."""
        clips = []
        for i, y in enumerate(np.asarray(prime)):
            primed, new = self.continuation_notes(y, seconds, seed + i)
            played = self.playback(primed + new, len(y) / self.audio.sample_rate + seconds, self.playback.closest(y, primed))
            clips.append(played[len(y):][: int(round(seconds * self.audio.sample_rate))])
        return np.stack(clips)

    def round_trip(self, clips: np.ndarray) -> np.ndarray:
        """Each clip transcribed, placed on the grid and played by the ensemble closest to it: the ceiling of this
        representation."""
        seconds = clips.shape[1] / self.audio.sample_rate
        played = []
        for y in clips:
            heard = self.transcriber.transcribe(y, self.audio.sample_rate)
            phase = note_events.grid_phase(heard, self.grid)
            on_grid = note_events.decode(note_events.encode(heard, self.grid, phase), self.grid, phase)
            played.append(self.playback(on_grid, seconds, self.playback.closest(y, on_grid)))
        return np.stack(played)

    # -- scores ---------------------------------------------------------------------------------------------------

    def heldout_scores(self, dataset, n_sequences: int = 8, seconds: float = 8.0) -> dict:
        """Held-out cross-entropy (nats per token) beside unigram and bigram baselines; the longest run of notes
        (shift, pitch, duration) copied verbatim from the training notes by ``n_sequences`` autonomous sequences of
        ``seconds``, beside the same for as many windows of held-out music (the yardstick); notes per second."""
        train = self.piece_tokens(self.piece_notes(dataset, "train"))
        held = self.piece_tokens(self.piece_notes(dataset, "val") + self.piece_notes(dataset, "test"))
        if not held:
            return {}
        windows = self.windows(held, self.settings.context // 2)
        with eval_mode(self):
            device = self.prior.head.weight.device
            model_nats = float(np.mean([self.loss(torch.as_tensor(windows[i: i + 64], device=device)).item()
                                        for i in range(0, len(windows), 64)]))
        train_rows = [note_events.tokens_to_rows(t) for t in train]
        real_rows = [note_events.tokens_to_rows(t) for t in held]
        per_window = max(1, int(round(seconds / self.grid)))
        real_windows = [self.rows_within(rows, per_window) for rows in real_rows][:n_sequences]
        generated = self.sample_notes(len(real_windows), seconds, seed=12345)
        generated_rows = [note_events.note_rows(notes, self.grid) for notes in generated]
        return {"cross_entropy": model_nats,
                "unigram_cross_entropy": ngram_cross_entropy(train, held, note_events.VOCABULARY, 1),
                "bigram_cross_entropy": ngram_cross_entropy(train, held, note_events.VOCABULARY, 2),
                "longest_copied_notes": longest_copied_ngram(generated_rows, train_rows) if any(len(r) for r in generated_rows) else 0,
                "heldout_longest_copied_notes": longest_copied_ngram(real_windows, train_rows),
                "notes_per_second": float(np.mean([len(notes) for notes in generated]) / seconds),
                "heldout_notes_per_second": float(np.mean([len(r) for r in real_windows]) / seconds),
                "grid_seconds": self.grid}

    @staticmethod
    def rows_within(rows: np.ndarray, grid_steps: int) -> np.ndarray:
        """The first notes of ``rows`` whose onsets lie within ``grid_steps`` steps of the first onset."""
        clock = np.cumsum(rows[:, 0]) - (rows[0, 0] if len(rows) else 0)
        return rows[clock < grid_steps]
