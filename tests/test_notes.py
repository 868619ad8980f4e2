"""Notes as the latent: transcription targets and decoding, the note vocabulary, playback, and the two models end to end."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from musiclib import note_events, soundfont, transcription
from musiclib.datasets import DatasetError, bundled
from musiclib.models.transcriber import HarmonicStack, Playback, TranscriberSettings
from musiclib.synth import Note

SR = 22050
TRANSCRIBER_STEPS = 300  # the CLI's transcriber: trained once into the cache, shared by these tests, notebook 14 and the quality tier


def chord_notes(beat: float = 0.3, bars: int = 8) -> list[Note]:
    """A C-major arpeggio over a held bass, every note on a grid of ``beat`` seconds."""
    notes = []
    for i in range(bars * 4):
        notes.append(Note(i * beat, 0.9 * beat, (60, 64, 67, 72)[i % 4], 0.6))
        if i % 4 == 0:
            notes.append(Note(i * beat, 3.8 * beat, 48, 0.6))
    return notes


def test_rolls_decode_back_to_the_notes():
    notes = chord_notes()
    frames = transcription.n_frames(int(10 * SR))
    onsets, sounding = transcription.rolls(notes, frames, SR)
    decoded = transcription.decode(onsets, sounding, SR, min_frames=1)
    assert [(n.pitch) for n in decoded] == [n.pitch for n in sorted(notes, key=lambda n: (n.onset, n.pitch))]
    fps = transcription.frames_per_second(SR)
    assert max(abs(a.onset - b.onset) for a, b in zip(decoded, sorted(notes, key=lambda n: (n.onset, n.pitch)))) <= 0.5 / fps
    scores = transcription.note_scores(notes, decoded, SR, 10.0)
    assert scores["note_f1"] == 1.0 and scores["frame_f1"] > 0.95
    assert transcription.note_scores(notes, [], SR, 10.0)["note_f1"] == 0.0


def test_decode_splits_a_repeated_note_at_each_onset_and_drops_short_ones():
    onsets, frames = np.zeros((transcription.N_KEYS, 40)), np.zeros((transcription.N_KEYS, 40))
    frames[36, 0:30] = 0.9  # one key sounding throughout...
    onsets[36, [0, 10, 20]] = [0.9, 0.8, 0.95]  # ...struck three times
    onsets[40, 5], frames[40, 5] = 0.9, 0.9  # a one-frame blip
    notes = transcription.decode(onsets, frames, SR, min_frames=2)
    assert [(n.pitch, round(n.onset * transcription.frames_per_second(SR))) for n in notes] == [(60, 0), (60, 10), (60, 20)]


def test_harmonic_stack_lines_up_harmonics_in_numpy_and_torch():
    spectrogram = np.random.default_rng(0).random((transcription.N_KEYS * 3, 5)).astype(np.float32)
    stacked = transcription.harmonic_stack(spectrogram)
    assert np.array_equal(stacked[0], spectrogram)
    assert np.array_equal(stacked[1, :-36], spectrogram[36:]) and not stacked[1, -36:].any()  # the octave: 12 semitones up
    assert np.allclose(HarmonicStack()(torch.as_tensor(spectrogram)[None])[0].numpy(), stacked)


def test_peak_picking_hears_a_single_note():
    y = soundfont.render_notes([Note(0.2, 1.0, 57, 0.7)], "piano", SR, 2.0)
    notes = transcription.peak_picking(y, SR)
    assert 57 in {n.pitch for n in notes}


def test_tokens_round_trip_notes_on_the_grid():
    notes = chord_notes()
    tokens = note_events.encode(notes, 0.3)
    assert tokens.max() < note_events.VOCABULARY and tokens.min() >= 0
    back = note_events.decode(tokens, 0.3)
    assert [(round(n.onset / 0.3), n.pitch) for n in back] == [(round(n.onset / 0.3), n.pitch) for n in sorted(notes, key=lambda n: (n.onset, n.pitch))]
    assert np.array_equal(note_events.encode(back, 0.3), tokens)  # re-encoding decoded notes changes nothing
    assert note_events.end_seconds(tokens, 0.3) == pytest.approx(notes[-1].onset)
    assert np.array_equal(note_events.note_rows(notes, 0.3), note_events.tokens_to_rows(tokens))
    gap = note_events.encode([Note(0, 0.3, 60), Note(10.0, 0.3, 62)], 0.3)  # 33 steps: shifts of 16, 16 and 1
    assert [t for t in gap if t < note_events.PITCH] == [15, 15, 0]


def test_decode_skips_tokens_out_of_grammar():
    p, d = note_events.PITCH, note_events.DURATION
    notes = note_events.decode(np.array([d + 3, p + 36, p + 40, d + 1, 0, p + 43]), 0.25)
    assert [(n.pitch, n.onset) for n in notes] == [(64, 0.0)]


def test_transposition_moves_pitches_and_refuses_to_leave_the_range():
    tokens = note_events.encode(chord_notes(), 0.3)
    up = note_events.transpose(tokens, 5)
    assert [n.pitch + 0 for n in note_events.decode(up, 0.3)] == [n.pitch + 5 for n in note_events.decode(tokens, 0.3)]
    assert note_events.transpose(note_events.encode([Note(0, 0.3, 106)], 0.3), 3) is None


@pytest.mark.parametrize("beat", [0.3, 0.42])
def test_fit_grid_recovers_the_beat_from_jittered_onsets(beat):
    rng = np.random.default_rng(1)
    notes = [Note(n.onset + rng.normal(0, 0.01), n.duration, n.pitch) for n in chord_notes(beat)]
    grid = note_events.fit_grid([notes])
    assert grid == pytest.approx(beat, abs=0.004)
    assert note_events.grid_phase([Note(n.onset + 0.05, n.duration, n.pitch) for n in chord_notes(beat)], beat) == pytest.approx(0.05, abs=1e-6)
    with pytest.raises(ValueError, match="at least two notes"):
        note_events.fit_grid([[Note(0, 1, 60)]])


def test_playback_recognises_the_instruments_and_matches_the_level():
    notes = chord_notes(bars=2)
    pieces, ensembles = [notes, notes[:6], notes[2:]], ["strings", "strings", "piano"]
    recordings = [level * soundfont.render_notes(n, name, SR, 3.0) for n, name, level in zip(pieces, ensembles, (0.5, 0.3, 0.4))]
    shares, gains = soundfont.fit_playback(recordings, pieces, SR)
    assert shares == pytest.approx({"piano": 1 / 3, "strings": 2 / 3, "choir": 0, "winds": 0})
    for name, chosen in (("strings", [0, 1]), ("piano", [2])):  # each ensemble at the level of the recordings that chose it
        played = gains[name] * np.concatenate([soundfont.render_notes(pieces[i], name, SR, 3.0) for i in chosen])
        assert np.sqrt(np.mean(played ** 2)) == pytest.approx(np.sqrt(np.mean(np.concatenate([recordings[i] for i in chosen]) ** 2)), rel=1e-4)
    assert gains["piano"] == pytest.approx(0.4, rel=1e-4) and gains["choir"] == gains["winds"]
    playback = Playback(SR)
    playback.fit(recordings, pieces)
    assert playback.ensemble == "strings" and playback.closest(recordings[2], pieces[2]) == "piano"
    drawn = [playback.draw(np.random.default_rng(seed)) for seed in range(60)]
    assert {"strings", "piano"} == set(drawn) and 25 <= drawn.count("strings") <= 55
    assert soundfont.fit_playback(recordings, pieces, SR, "winds")[0]["winds"] == 1
    old = Playback(SR)  # a checkpoint from before the shares: one ensemble played everything
    old.load_state_dict({"ensemble_index": torch.tensor(3), "gain": torch.tensor(2.0)})
    assert old.ensemble == list(soundfont.ENSEMBLES)[3] and old.gains.tolist() == [2.0] * len(soundfont.ENSEMBLES)
    assert [len(part) for part in soundfont.voices([Note(0, 1, p) for p in (40, 55, 62, 70, 72)])] == [2, 1, 1, 1]


def test_only_the_bundled_chorales_come_with_their_notes(tmp_path):
    dataset = bundled.chorales(fast=True)
    notes = bundled.recording_notes(dataset)
    assert set(notes) == {s["source"] for s in dataset.manifest["sources"]}
    assert all(n.onset < dataset.manifest["sizes"]["max_seconds"] for piece in notes.values() for n in piece)
    with pytest.raises(DatasetError, match="--data chorales"):
        bundled.recording_notes(bundled.notes(fast=True))


def musiclib(*args, env=None):
    return subprocess.run([sys.executable, "-m", "musiclib", *args], capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def user_music(tmp_path_factory):
    """A prepared folder of recordings none of the models has heard (string quartets, piano)."""
    root = tmp_path_factory.mktemp("user")
    bundled.write_example_recordings(root / "music", n_files=4, seconds=12.0, sample_rate=SR)
    result = musiclib("prepare", str(root / "music"), str(root / "data"))
    assert result.returncode == 0, result.stderr
    return root


def test_note_transformer_trains_on_a_user_folder_generates_and_continues(user_music, monkeypatch):
    from musiclib import runs

    tiny = {"transcriber_steps": TRANSCRIBER_STEPS, "steps": 20, "context": 32, "d_model": 32, "layers": 1}
    run = runs.train("note-transformer", user_music / "data", user_music / "run", seed=0, overrides=tiny, progress=False)
    config = json.loads((run / "config.json").read_text())["model_config"]
    shared = config["transcriber_run"]
    assert "runs" in shared and not (run / "transcriber").exists(), "the transcriber is trained once per machine, in the cache"
    again = runs.train("note-transformer", user_music / "data", user_music / "run2", seed=0, overrides=tiny, progress=False)
    assert json.loads((again / "config.json").read_text())["model_config"]["transcriber_run"] == shared
    _, model, _, _ = runs.load(run)
    assert model.grid > 0 and model.playback.ensemble in soundfont.ENSEMBLES
    for mode in ("autonomous", "continue"):
        result = musiclib("generate", str(run), "--mode", mode, "--seconds", "3", "--out", str(user_music / f"{mode}.wav"))
        assert result.returncode == 0, result.stderr
        assert (user_music / f"{mode}.wav").exists()
    prime = model.transcriber.playback(chord_notes(bars=1), 2.0)
    first = model.continuation(prime[None], 2.0, seed=3)
    assert np.array_equal(first, model.continuation(prime[None], 2.0, seed=3)) and np.abs(first).max() > 0
    with pytest.raises(ValueError, match="prime has no notes"):
        model.continuation(np.zeros((1, SR)), 1.0, seed=0)


def test_a_folder_of_noise_is_refused_with_one_line(tmp_path):
    from musiclib import audio

    rng = np.random.default_rng(0)
    for i in range(3):
        audio.save(tmp_path / "noise" / f"hiss_{i}.wav", 0.1 * rng.standard_normal(SR * 20).astype(np.float32), SR)
    assert musiclib("prepare", str(tmp_path / "noise"), str(tmp_path / "data")).returncode == 0
    result = musiclib("train", "note-transformer", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--steps", "5",
                      "--set", json.dumps({"transcriber_steps": TRANSCRIBER_STEPS}))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "notes" in result.stderr and "pitched music" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("setting", [{"ensemble": "kazoo"}, {"transpositions": [1, 2]}, {"temperature": 0}])
def test_bad_note_settings_are_refused(setting):
    from musiclib.models.note_transformer import NoteTransformerSettings

    with pytest.raises(ValueError, match="setting"):
        NoteTransformerSettings.from_dict(setting).check()


def test_the_tests_share_the_clis_transcriber():
    assert TRANSCRIBER_STEPS == TranscriberSettings().steps, "one transcriber per machine serves the CLI, the tests and the notebook"


def test_the_shared_transcriber_learns_from_the_set_of_the_size_asked_for(monkeypatch):
    """`musiclib compare --fast` trains without MUSICLIB_FAST in the environment: the shared run still hears the fast set."""
    import shutil

    from musiclib import models, runs

    monkeypatch.delenv("MUSICLIB_FAST", raising=False)
    calls = []

    def recording_train(name, data, target, **options):
        calls.append((name, data, options["fast"]))
        target.mkdir(parents=True)
        return target

    monkeypatch.setattr(runs, "train", recording_train)
    model_class = models.get("note-transformer")
    settings = model_class.Settings.recipe(True).replace(transcriber_steps=7)  # a run no other test asks for
    run = runs.shared_upstream_run(model_class.upstream, settings, progress=False, fast=True)
    try:
        assert calls == [("transcriber", bundled.chorales(fast=True).root, True)]
        assert runs.shared_upstream_run(model_class.upstream, settings, progress=False, fast=True) == run and len(calls) == 1
    finally:
        shutil.rmtree(run)
