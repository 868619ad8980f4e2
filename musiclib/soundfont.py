"""Sampled instruments: note events → a General MIDI file in memory → audio played by a SoundFont.

A SoundFont holds recordings of real instruments, one or more per key range, with loop points
and envelopes; a General MIDI (GM) bank numbers 128 of them by *program* (0 is a grand piano,
40 a violin, 52 a choir singing "aah"). The renderer is ``midirenderer`` (a Rust wheel with no
system library) and the bank is ``TimGM6mb.sf2``, the 6 MB GM SoundFont that ships inside the
``pretty_midi`` wheel, so nothing is downloaded and two renders give the same bytes.

Notebook: 05_data_pipeline.ipynb
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile

from musiclib.baselines import rms
from musiclib.synth import Note

# One GM program per voice (soprano, alto, tenor, bass). Each ensemble teaches a different timbre:
# a struck string that decays, bowed strings that sustain with vibrato, voices with vowel
# formants, and four different wind instruments whose spectra differ voice by voice.
ENSEMBLES: dict[str, tuple[int, int, int, int]] = {
    "piano": (0, 0, 0, 0),  # Acoustic Grand Piano on every voice
    "strings": (40, 40, 41, 42),  # Violin, Violin, Viola, Cello
    "choir": (52, 52, 52, 52),  # Choir Aahs on every voice
    "winds": (73, 68, 71, 70),  # Flute, Oboe, Clarinet, Bassoon
}


def soundfont_path() -> Path:
    """The GM SoundFont inside the installed ``pretty_midi`` package."""
    import pretty_midi

    path = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    if not path.exists():
        raise FileNotFoundError(f"{path}: the SoundFont that ships with pretty_midi is missing; reinstall it with `pip install --force-reinstall pretty_midi`.")
    return path


def midi_bytes(parts: list[list[Note]], programs: tuple[int, ...], max_seconds: float | None = None) -> bytes:
    """A standard MIDI file, in memory, with one track per part.

    Args:
        parts: One list of :class:`~musiclib.synth.Note` per voice; times in seconds, velocity in [0, 1].
        programs: The GM program (0-127) of each part.
        max_seconds: Leave out notes that start at or after this time.

    Returns:
        The bytes of the ``.mid`` file.
    """
    import pretty_midi

    if len(parts) != len(programs):
        raise ValueError(f"{len(parts)} parts but {len(programs)} programs")
    score = pretty_midi.PrettyMIDI()
    for notes, program in zip(parts, programs):
        track = pretty_midi.Instrument(program=int(program))
        for note in notes:
            if max_seconds is not None and note.onset >= max_seconds:
                continue
            velocity = int(np.clip(round(note.velocity * 127), 1, 127))
            track.notes.append(pretty_midi.Note(velocity=velocity, pitch=int(note.pitch), start=note.onset, end=note.onset + note.duration))
        score.instruments.append(track)
    buffer = io.BytesIO()
    score.write(buffer)
    return buffer.getvalue()


_SOUNDFONT_BYTES: dict[Path, bytes] = {}


def render(parts: list[list[Note]], programs: tuple[int, ...], sample_rate: int, seconds: float | None = None) -> np.ndarray:
    """Play note events with the GM SoundFont: ``(samples,)`` float32, mono, at ``sample_rate``.

    The renderer writes 16-bit stereo at its own rate (48 kHz); the two channels are averaged
    and resampled with a polyphase filter (exact integer arithmetic on the rate ratio, so the
    result is the same on every run). The level is the renderer's: nothing is normalised here.

    Args:
        parts: One list of notes per voice.
        programs: The GM program of each voice.
        sample_rate: Output rate (Hz).
        seconds: Cut the output to at most this length (it ends sooner where the music and its
            release do); notes starting later are not rendered.
    """
    import midirenderer

    path = soundfont_path()
    if path not in _SOUNDFONT_BYTES:
        _SOUNDFONT_BYTES[path] = path.read_bytes()
    wav = midirenderer.render_wave_from(_SOUNDFONT_BYTES[path], midi_bytes(parts, programs, max_seconds=seconds))
    stereo, rate = soundfile.read(io.BytesIO(wav), dtype="float64", always_2d=True)
    mono = stereo.mean(axis=1)
    if rate != sample_rate:
        divisor = np.gcd(int(rate), int(sample_rate))
        mono = scipy.signal.resample_poly(mono, sample_rate // divisor, rate // divisor)
    if seconds is not None:
        mono = mono[: int(round(seconds * sample_rate))]
    return mono.astype(np.float32)


VOICE_FLOORS = (67, 60, 53)
"""The lowest MIDI pitch a soprano, alto and tenor part is given here (anything lower is bass): how
:func:`render_notes` shares notes without voices (a transcription's) among an ensemble's four programs."""


def voices(notes: list[Note]) -> list[list[Note]]:
    """Soprano, alto, tenor and bass parts of notes that come without parts, split by pitch at :data:`VOICE_FLOORS`."""
    parts: list[list[Note]] = [[], [], [], []]
    for note in notes:
        parts[next((v for v, floor in enumerate(VOICE_FLOORS) if note.pitch >= floor), 3)].append(note)
    return parts


def render_notes(notes: list[Note], ensemble: str, sample_rate: int, seconds: float | None = None) -> np.ndarray:
    """Notes without parts played by one of :data:`ENSEMBLES`, each by the program of its voice (:func:`voices`);
    ``(samples,)`` float32 of ``seconds`` exactly when given (silence where the music stops)."""
    if ensemble not in ENSEMBLES:
        raise ValueError(f"ensemble must be one of {', '.join(ENSEMBLES)}, got {ensemble!r}")
    if notes:
        y = render(voices(notes), ENSEMBLES[ensemble], sample_rate, seconds)
    else:
        y = np.zeros(0, np.float32)
    if seconds is not None:
        y = np.pad(y, (0, max(0, int(round(seconds * sample_rate)) - len(y))))
    return y


def closest_ensemble(recording: np.ndarray, notes: list[Note], sample_rate: int, names=None) -> str:
    """The ensemble (of ``names``, default all of :data:`ENSEMBLES`) whose rendering of ``notes`` has the average log-mel
    spectrum closest to ``recording``'s (mean squared difference, each spectrum less its mean over bands, so that
    loudness does not count); ties go to the first."""
    return _closest(recording, {name: render_notes(notes, name, sample_rate, len(recording) / sample_rate)
                                for name in (names or ENSEMBLES)}, sample_rate)


def _closest(recording: np.ndarray, renders: dict[str, np.ndarray], sample_rate: int) -> str:
    from musiclib import features
    from musiclib.config import AudioConfig

    config = AudioConfig(sample_rate=sample_rate)

    def shape(y):
        spectrum = features.log_mel(np.pad(y, (0, max(0, config.n_fft - len(y)))), config).mean(axis=-1)
        return spectrum - spectrum.mean()

    target = shape(recording)
    return min(renders, key=lambda name: float(np.mean((shape(renders[name]) - target) ** 2)))


def fit_playback(recordings: list[np.ndarray], notes: list[list[Note]], sample_rate: int,
                 ensemble: str = "auto") -> tuple[dict[str, float], dict[str, float]]:
    """How to play notes so that they sound like ``recordings`` (whose transcriptions are ``notes``): the share of the
    recordings each ensemble plays best, and each ensemble's gain.

    ``ensemble="auto"``: each recording votes for its :func:`closest_ensemble`; the shares are the votes' (a folder of
    piano and string recordings gets both, in their proportion). A named ensemble gets every vote. An ensemble's gain
    brings its renderings of the notes of the recordings that chose it to those recordings' RMS level (the General MIDI
    piano is quieter than its strings); an ensemble nobody chose gets the gain of all the recordings together.

    Returns:
        ``({ensemble: share}, {ensemble: gain})`` over :data:`ENSEMBLES`, the shares summing to 1.
    """
    seconds = [len(y) / sample_rate for y in recordings]
    names = list(ENSEMBLES) if ensemble == "auto" else [ensemble]
    renders = [{name: render_notes(n, name, sample_rate, t) for name in names} for n, t in zip(notes, seconds)]
    votes = [_closest(y, rendered, sample_rate) for y, rendered in zip(recordings, renders)]

    def gain(chosen: list[int]) -> float:
        played = np.concatenate([renders[i][votes[i]] for i in chosen])
        return rms(np.concatenate([recordings[i] for i in chosen])) / max(rms(played), 1e-9)

    overall = gain(list(range(len(recordings))))
    gains = {name: gain([i for i, vote in enumerate(votes) if vote == name]) if name in votes else overall for name in ENSEMBLES}
    return {name: votes.count(name) / len(votes) for name in ENSEMBLES}, gains
