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
