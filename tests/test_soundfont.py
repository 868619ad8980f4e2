"""The SoundFont renderer: a note comes out at its pitch, with its program's timbre, the same every time."""
import numpy as np
import pytest

from musiclib import soundfont
from musiclib.synth import Note

SR = 22050


def _spectrum(y):
    return np.abs(np.fft.rfft(y * np.hanning(len(y))))


@pytest.mark.parametrize("program", [0, 40, 52, 73])
def test_a_note_sounds_at_its_pitch_with_energy_only_where_it_plays(program):
    a4 = [[Note(0.25, 1.0, 69, 0.8)]]
    y = soundfont.render(a4, (program,), SR, seconds=2.0)
    assert y.dtype == np.float32 and 1.2 * SR < len(y) <= 2 * SR
    assert np.sqrt(np.mean(y[: SR // 5] ** 2)) < 1e-3, "silence before the onset"
    body = y[int(0.35 * SR) : int(1.15 * SR)]
    spectrum = _spectrum(body)
    freqs = np.fft.rfftfreq(len(body), 1 / SR)
    harmonics = [spectrum[np.abs(freqs - 440 * k) < 15].max() for k in (1, 2, 3)]
    between = [spectrum[np.abs(freqs - 440 * (k + 0.5)) < 15].max() for k in (1, 2)]
    assert max(harmonics) > 10 * max(between), (harmonics, between)


def test_programs_change_the_timbre_and_renders_repeat_exactly():
    chord = [[Note(0.0, 1.0, p, 0.7)] for p in (60, 64, 67, 72)]
    piano = soundfont.render(chord, soundfont.ENSEMBLES["piano"], SR, seconds=1.5)
    strings = soundfont.render(chord, soundfont.ENSEMBLES["strings"], SR, seconds=1.5)
    assert np.array_equal(piano, soundfont.render(chord, soundfont.ENSEMBLES["piano"], SR, seconds=1.5))
    # A piano note decays while a bowed one sustains: compare the last third of the note to its first.
    def decay(y):
        return np.sqrt(np.mean(y[int(0.7 * SR) : SR] ** 2)) / np.sqrt(np.mean(y[int(0.05 * SR) : int(0.35 * SR)] ** 2))
    assert decay(piano) < 0.8 * decay(strings), (decay(piano), decay(strings))


def test_notes_after_the_cut_are_not_in_the_midi_and_bad_parts_are_refused():
    parts = [[Note(0.0, 0.5, 60, 0.5), Note(3.0, 0.5, 62, 0.5)]]
    assert len(soundfont.midi_bytes(parts, (0,), max_seconds=2.0)) < len(soundfont.midi_bytes(parts, (0,)))
    with pytest.raises(ValueError, match="2 parts but 1 programs"):
        soundfont.midi_bytes(parts * 2, (0,))
