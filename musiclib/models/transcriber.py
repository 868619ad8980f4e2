"""A small Onsets-and-Frames transcriber: a constant-Q spectrogram → onset and frame piano rolls → notes.

It learns from the bundled chorales played by sampled instruments, whose every note is known
(:func:`musiclib.datasets.bundled.recording_notes`), and writes down the notes of any recording
(:mod:`musiclib.transcription` holds the features, the targets, the decoding and the scores).

The network reads the log constant-Q transform (3 bins per semitone, 84 keys), stacks its harmonics
as channels (a layer without weights), and runs four 2-D convolutions, the same weights at every pitch:

- ``5 × 5`` over (bins, frames), then ``3 × 5`` dilated twice in time, each with batch normalisation and ReLU;
- ``3 × 1`` with stride 3 in frequency: 3 bins per semitone become one row per key;
- ``3 × 5`` dilated in time: a receptive field of about ±0.4 s;
- two heads of ``1 × 3`` convolutions: frame logits, then onset logits that also read the frame
  probabilities (Onsets and Frames conditions frames on onsets; this small version lets onsets see frames).

The loss is binary cross-entropy on both rolls, onsets weighted ``onset_weight`` times (they are rare), with
every batch transposed by a random number of semitones (the transform and the rolls moved together).

Alone (``musiclib train transcriber``) it draws *random notes*: pitches from the training notes' pitch
histogram, onsets at their rate, durations from theirs, in the same instruments. Notes without a model of
their order: the floor a note model must beat. Its round trip (held-out audio → notes → the instruments) is the
ceiling of any model that generates notes it renders the same way.

Notebook: 14_notes.ipynb
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from musiclib import audio, soundfont, transcription
from musiclib.config import AudioConfig
from musiclib.models import base, register
from musiclib.models.layers import eval_mode
from musiclib.synth import Note

ENSEMBLE_CHOICES = ("auto", *soundfont.ENSEMBLES)


class HarmonicStack(nn.Module):
    """``(B, bins, T)`` → ``(B, H, bins, T)``: channel ``h`` is the input shifted down by ``12 log2 h`` semitones
    (:func:`musiclib.transcription.harmonic_stack`, in torch)."""

    def __init__(self, harmonics=transcription.HARMONICS):
        super().__init__()
        self.shifts = [int(round(12 * transcription.BINS_PER_SEMITONE * np.log2(h))) for h in harmonics]

    def forward(self, spectrogram: torch.Tensor) -> torch.Tensor:
        bins = spectrogram.shape[1]
        return torch.stack([nn.functional.pad(spectrogram[:, shift:], (0, 0, 0, shift)) if shift else spectrogram
                            for shift in self.shifts], dim=1)[:, :, :bins]


class Playback(nn.Module):
    """The instruments that play notes, fitted to training audio (:func:`musiclib.soundfont.fit_playback`): the share
    of the training recordings each ensemble plays best, and each ensemble's gain, kept in buffers so that a checkpoint plays as its
    model was fitted. New music is played by an ensemble drawn from the shares (so a set of new pieces has the training
    audio's mix of instruments); music heard in a recording is played by the ensemble closest to that recording."""

    def __init__(self, sample_rate: int):
        super().__init__()
        self.sample_rate = sample_rate
        self.register_buffer("ensemble_shares", torch.zeros(len(soundfont.ENSEMBLES)).index_fill_(0, torch.tensor(0), 1.0))
        self.register_buffer("gains", torch.ones(len(soundfont.ENSEMBLES)))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints from before the shares hold the one ensemble every note was played by, and one gain.
        if prefix + "ensemble_index" in state_dict:
            index = state_dict.pop(prefix + "ensemble_index")
            state_dict[prefix + "ensemble_shares"] = nn.functional.one_hot(index.long(), len(soundfont.ENSEMBLES)).float()
        if prefix + "gain" in state_dict:
            state_dict[prefix + "gains"] = state_dict.pop(prefix + "gain").expand(len(soundfont.ENSEMBLES)).clone()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def shares(self) -> dict[str, float]:
        return {name: float(share) for name, share in zip(soundfont.ENSEMBLES, self.ensemble_shares)}

    @property
    def ensemble(self) -> str:
        """The ensemble most training recordings sound like (ties: the first)."""
        return list(soundfont.ENSEMBLES)[int(self.ensemble_shares.argmax())]

    def fit(self, recordings: list[np.ndarray], notes: list[list[Note]], ensemble: str = "auto") -> None:
        shares, gains = soundfont.fit_playback(recordings, notes, self.sample_rate, ensemble)
        self.ensemble_shares.copy_(torch.tensor([shares[name] for name in soundfont.ENSEMBLES]))
        self.gains.copy_(torch.tensor([gains[name] for name in soundfont.ENSEMBLES]))

    def draw(self, rng: np.random.Generator) -> str:
        """An ensemble drawn with the training recordings' shares."""
        shares = self.ensemble_shares.double().numpy()
        return str(rng.choice(list(soundfont.ENSEMBLES), p=shares / shares.sum()))

    def closest(self, recording: np.ndarray, notes: list[Note]) -> str:
        """The ensemble, of those the training audio gave a share, that plays ``notes`` most like ``recording``."""
        names = [name for name, share in self.shares.items() if share > 0]
        return names[0] if len(names) == 1 else soundfont.closest_ensemble(recording, notes, self.sample_rate, names)

    def forward(self, notes: list[Note], seconds: float, ensemble: str | None = None) -> np.ndarray:
        """``notes`` played by ``ensemble`` (default: :attr:`ensemble`): ``(samples,)`` float32 of ``seconds``."""
        ensemble = ensemble or self.ensemble
        gain = float(self.gains[list(soundfont.ENSEMBLES).index(ensemble)])
        return gain * soundfont.render_notes(notes, ensemble, self.sample_rate, seconds)


class TranscriberNetwork(nn.Module):
    """``(B, N_KEYS * 3, T)`` log constant-Q transform → onset and frame logits, each ``(B, N_KEYS, T)``."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.stack = HarmonicStack()
        channels = len(self.stack.shifts)

        def block(c_in, kernel, **options):
            return [nn.Conv2d(c_in, width, kernel, **options), nn.BatchNorm2d(width), nn.ReLU()]

        self.body = nn.Sequential(
            *block(channels, (5, 5), padding=(2, 2)),
            *block(width, (3, 5), padding=(1, 4), dilation=(1, 2)),
            *block(width, (transcription.BINS_PER_SEMITONE, 1), stride=(transcription.BINS_PER_SEMITONE, 1)),
            nn.Conv2d(width, width, (3, 5), padding=(1, 4), dilation=(1, 2)), nn.ReLU())
        self.frame_head = nn.Conv2d(width, 1, (1, 3), padding=(0, 1))
        self.onset_head = nn.Conv2d(width + 1, 1, (1, 3), padding=(0, 1))

    def forward(self, spectrogram: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.body(self.stack(spectrogram))
        frame = self.frame_head(hidden)
        onset = self.onset_head(torch.cat([hidden, torch.sigmoid(frame).detach()], dim=1))
        return onset[:, 0], frame[:, 0]


@dataclasses.dataclass(frozen=True)
class TranscriberSettings(base.Settings):
    """The network ``width``; training windows of ``window_frames`` frames (3 s), transposed by up to
    ``max_transposition`` semitones; onset targets ``onset_frames`` wide and weighted ``onset_weight``; decoding
    thresholds; the GM ``ensemble`` that plays notes (``auto``: those closest to the training recordings, in their shares)."""

    width: int = 16
    window_frames: int = 128
    max_transposition: int = 5
    onset_frames: int = 2
    onset_weight: float = 5.0
    onset_threshold: float = 0.5
    frame_threshold: float = 0.3
    min_frames: int = 2
    ensemble: str = "auto"
    batch_size: int = 8
    learning_rate: float = 2e-3
    steps: int = 300  # held-out note F1 0.88 (0.91 at 800 steps, in 2.6 times the time): docs/2026-12-07-notes-as-the-latent.md

    @classmethod
    def full(cls):
        return cls(width=32, steps=4000)

    def check(self) -> None:
        if self.ensemble not in ENSEMBLE_CHOICES:
            raise ValueError(f"setting ensemble must be one of {', '.join(ENSEMBLE_CHOICES)}, got {self.ensemble!r}")
        if not (0 < self.onset_threshold < 1 and 0 < self.frame_threshold < 1):
            raise ValueError("settings onset_threshold and frame_threshold must lie between 0 and 1")
        if self.window_frames < 16 or self.min_frames < 1 or self.onset_frames < 1 or self.max_transposition < 0:
            raise ValueError("settings window_frames must be at least 16, min_frames and onset_frames at least 1, "
                             "max_transposition at least 0")


def piece_audio_and_notes(dataset, split: str) -> list[tuple[str, np.ndarray, list[Note]]]:
    """``(source, audio, notes)`` of every recording of a split of a bundled chorale set, its clips joined."""
    from musiclib.datasets.bundled import recording_notes
    from musiclib.models import vq

    notes = recording_notes(dataset)
    sources = [s["source"] for s in dataset.manifest["sources"] if s["split"] == split and s["n_clips"] > 0]
    return [(source, y, notes[source]) for source, y in zip(sources, vq.pieces(dataset, split))]


@register
class Transcriber(base.Model):
    """The network, and the training notes' statistics (for random notes) and instruments, in buffers."""

    name, family, output = "transcriber", "notes", "audio"
    description = "an Onsets-and-Frames transcriber (audio → notes); alone it plays random notes"
    Settings = TranscriberSettings

    def __init__(self, settings: TranscriberSettings, audio: AudioConfig):
        super().__init__(settings, audio)
        self.network = TranscriberNetwork(settings.width)
        self.register_buffer("pitch_counts", torch.ones(transcription.N_KEYS))
        self.register_buffer("durations", torch.full((64,), 0.5))
        self.register_buffer("notes_per_second", torch.tensor(4.0))
        self.playback = Playback(audio.sample_rate)

    # -- training --------------------------------------------------------------------------------------------------

    def features(self, dataset, split: str):
        """``(spectrogram, onsets, frames)``: windows ``(n, bins, window_frames)`` of the log constant-Q transform and
        the rolls ``(n, N_KEYS, window_frames)``, every quarter window (training) or every window (validation)."""
        length = self.settings.window_frames
        stride = length // 4 if split == "train" else length
        spectrograms, onsets, frames = [], [], []
        for _, y, notes in piece_audio_and_notes(dataset, split):
            spectrogram = transcription.log_cqt(y, dataset.sample_rate)
            onset_roll, frame_roll = transcription.rolls(notes, spectrogram.shape[1], dataset.sample_rate, self.settings.onset_frames)
            pad = max(0, length - spectrogram.shape[1])
            arrays = [np.pad(a, ((0, 0), (0, pad))) for a in (spectrogram, onset_roll, frame_roll)]
            for start in range(0, arrays[0].shape[1] - length + 1, stride):
                for collected, array in zip((spectrograms, onsets, frames), arrays):
                    collected.append(array[:, start: start + length])
        if not spectrograms:
            return None
        return tuple(np.stack(collected).astype(np.float32) for collected in (spectrograms, onsets, frames))

    def loss(self, batch, phase: str = ""):
        """Binary cross-entropy of the onset roll (weighted) plus that of the frame roll, the batch transposed by a
        random number of semitones in ``±max_transposition``."""
        spectrogram, onsets, frames = batch
        limit = self.settings.max_transposition
        if self.training and limit:
            semitones = int(torch.randint(-limit, limit + 1, ()).item())
            spectrogram = torch.roll(spectrogram, semitones * transcription.BINS_PER_SEMITONE, dims=1)
            onsets, frames = torch.roll(onsets, semitones, dims=1), torch.roll(frames, semitones, dims=1)
        onset_logits, frame_logits = self.network(spectrogram)
        weight = torch.tensor(self.settings.onset_weight, device=onsets.device)
        onset_loss = nn.functional.binary_cross_entropy_with_logits(onset_logits, onsets, pos_weight=weight)
        frame_loss = nn.functional.binary_cross_entropy_with_logits(frame_logits, frames)
        return onset_loss + frame_loss, {"onset": onset_loss.item(), "frame": frame_loss.item()}

    def finish(self, dataset) -> None:
        """The training notes' pitch histogram, onset rate and durations (for :meth:`sample`), and the playback."""
        pieces = piece_audio_and_notes(dataset, "train")
        notes = [note for _, _, piece in pieces for note in piece]
        keys = np.clip(np.round([n.pitch for n in notes]).astype(int) - transcription.LOWEST_KEY, 0, transcription.N_KEYS - 1)
        self.pitch_counts.copy_(torch.as_tensor(np.bincount(keys, minlength=transcription.N_KEYS) + 0.0))
        self.durations.copy_(torch.as_tensor(np.quantile([n.duration for n in notes], np.linspace(0, 1, 64)), dtype=torch.float32))
        self.notes_per_second.fill_(len(notes) / sum(len(y) / dataset.sample_rate for _, y, _ in pieces))
        self.playback.fit([y for _, y, _ in pieces], [n for _, _, n in pieces], self.settings.ensemble)

    # -- audio → notes --------------------------------------------------------------------------------------------

    @torch.inference_mode()
    def probabilities(self, y: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        """Onset and frame probabilities ``(N_KEYS, frames)`` of one recording ``(samples,)`` (resampled to the
        transcriber's rate first), at :data:`musiclib.transcription.HOP` samples per frame of that rate."""
        y = audio.resample(np.asarray(y, np.float32), sample_rate, self.audio.sample_rate)
        with eval_mode(self):
            spectrogram = torch.as_tensor(transcription.log_cqt(y, self.audio.sample_rate), device=self.pitch_counts.device)[None]
            onset_logits, frame_logits = self.network(spectrogram)
        return torch.sigmoid(onset_logits[0]).cpu().numpy(), torch.sigmoid(frame_logits[0]).cpu().numpy()

    def transcribe(self, y: np.ndarray, sample_rate: int) -> list[Note]:
        """The notes of one recording ``(samples,)`` at ``sample_rate`` (decoded with the settings' thresholds)."""
        s = self.settings
        onsets, frames = self.probabilities(y, sample_rate)
        return transcription.decode(onsets, frames, self.audio.sample_rate, s.onset_threshold, s.frame_threshold, s.min_frames)

    # -- generation -----------------------------------------------------------------------------------------------

    def random_notes(self, seconds: float, rng: np.random.Generator) -> list[Note]:
        """Notes without order: a Poisson number at the training rate, uniform onsets, pitches from the training
        histogram, durations from the training durations."""
        count = rng.poisson(float(self.notes_per_second) * seconds)
        probabilities = (self.pitch_counts / self.pitch_counts.sum()).cpu().numpy().astype(float)
        keys = rng.choice(transcription.N_KEYS, size=count, p=probabilities / probabilities.sum())
        durations = rng.choice(self.durations.cpu().numpy(), size=count)
        onsets = np.sort(rng.uniform(0, seconds, size=count))
        return [Note(float(t), float(d), transcription.LOWEST_KEY + int(k), 0.6) for t, d, k in zip(onsets, durations, keys)]

    def sample(self, n: int, seconds: float, seed: int) -> np.ndarray:
        """Random notes (:meth:`random_notes`), each set played by an ensemble drawn from the playback's shares:
        ``(n, samples)``."""
        rng = np.random.default_rng(seed)
        return np.stack([self.playback(self.random_notes(seconds, rng), seconds, self.playback.draw(rng)) for _ in range(n)])

    def round_trip(self, clips: np.ndarray) -> np.ndarray:
        """Each clip transcribed, then played by the ensemble closest to it: what a model of these notes can at best
        sound like."""
        seconds = clips.shape[1] / self.audio.sample_rate
        played = []
        for y in clips:
            heard = self.transcribe(y, self.audio.sample_rate)
            played.append(self.playback(heard, seconds, self.playback.closest(y, heard)))
        return np.stack(played)

    # -- scores ---------------------------------------------------------------------------------------------------

    def transcription_scores(self, dataset, splits=("val", "test")) -> dict:
        """Note and frame F1 (:func:`musiclib.transcription.note_scores`) on every recording of ``splits``, averaged
        per ensemble (from the manifest; ``all`` when the set has none) and overall, beside the peak-picking baseline."""
        ensembles = dataset.manifest.get("ensembles", {})
        rows = []
        for split in splits:
            for source, y, notes in piece_audio_and_notes(dataset, split):
                seconds = len(y) / dataset.sample_rate
                rows.append((ensembles.get(source, {}).get("ensemble", "all"),
                             transcription.note_scores(notes, self.transcribe(y, dataset.sample_rate), dataset.sample_rate, seconds),
                             transcription.note_scores(notes, transcription.peak_picking(y, dataset.sample_rate), dataset.sample_rate, seconds)))
        if not rows:
            return {}
        scores = {key: float(np.mean([row[1][key] for row in rows])) for key in ("note_f1", "note_with_offsets_f1", "frame_f1")}
        scores |= {f"peak_picking_{key}": float(np.mean([row[2][key] for row in rows])) for key in ("note_f1", "frame_f1")}
        for ensemble in sorted({row[0] for row in rows}):
            scores[f"note_f1_{ensemble}"] = float(np.mean([row[1]["note_f1"] for row in rows if row[0] == ensemble]))
        return scores

    def heldout_scores(self, dataset) -> dict:
        """:meth:`transcription_scores` on the held-out recordings and, for the sampled chorales, on the synthesised
        chorales' held-out recordings (a timbre it never heard): ``synth_`` keys."""
        from musiclib.datasets import bundled

        scores = self.transcription_scores(dataset)
        if dataset.manifest.get("bundled") == "chorales":
            synthesised = bundled.chorales_synth(fast=dataset.manifest["sizes"] == bundled.chorale_sizes(True), config=dataset.config)
            scores |= {f"synth_{key}": value for key, value in self.transcription_scores(synthesised).items()
                       if key in ("note_f1", "frame_f1", "peak_picking_note_f1")}
        return scores
