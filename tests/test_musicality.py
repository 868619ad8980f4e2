"""The musical measures: each separates the music from what it is meant to catch, on the bundled chorales."""
import numpy as np
import pytest

from musiclib import baselines, musicality, runs, soundfont
from musiclib.config import AudioConfig
from musiclib.datasets import bundled
from musiclib.models import get


@pytest.fixture(scope="module")
def chorales():
    return bundled.chorales(fast=True)


@pytest.fixture(scope="module")
def scorer(chorales):
    scorer, real = runs.musical_scorer(chorales)
    return scorer, real


def test_excerpts_are_the_recordings_clips_joined(chorales):
    excerpts = runs.excerpts(chorales, "test", 8, 2.5)
    source = next(s for s in chorales.manifest["sources"] if s["split"] == "test")
    whole = chorales.read_clips("test", np.arange(source["first_clip"], source["first_clip"] + source["n_clips"])).reshape(-1)
    samples = int(round(2.5 * chorales.sample_rate))
    assert excerpts.shape[1] == samples and len(excerpts) == 8
    assert np.array_equal(excerpts[0], whole[:samples])
    step = samples // 3
    joined = [chorales.read_clips("test", np.arange(s["first_clip"], s["first_clip"] + s["n_clips"])).reshape(-1)
              for s in chorales.manifest["sources"] if s["split"] == "test"]
    starts = {(k, start) for k, y in enumerate(joined) for start in range(0, len(y) - samples + 1, step)}
    found = [next((k, start) for k, start in starts if np.array_equal(e, joined[k][start: start + samples])) for e in excerpts]
    assert len(set(found)) == len(excerpts) and {k for k, _ in found} == set(range(len(joined))), "distinct windows of every recording"
    assert len(runs.excerpts(chorales, "test", 8, 60.0)) == 0, "no recording is a minute long"


def test_each_measure_tells_the_music_from_what_it_is_meant_to_catch(chorales, scorer):
    scorer, real = scorer
    sr, n, seconds = chorales.sample_rate, len(real), real.shape[1] / chorales.sample_rate
    level = baselines.rms(real)
    ensembles = tuple(soundfont.ENSEMBLES.values())
    music = scorer(real)
    noise = scorer(baselines.pink_noise_clips(n, real.shape[1], level, sr, seed=3))
    chord = scorer(baselines.note_excerpts(baselines.held_chord_parts, n, seconds, sr, level, ensembles))
    random_notes = scorer(baselines.note_excerpts(baselines.random_note_parts, n, seconds, sr, level, ensembles))
    for key in musicality.MusicalScorer.KEYS:  # held-out music near the training music's 1, noise near 0
        assert music[key] > 0.7 and abs(noise[key]) < 0.25, (key, music[key], noise[key])
    assert chord["frame_tonality"] > 0.7 and random_notes["frame_tonality"] > 0.5, "notes, held or random, are tonal frame by frame"
    assert chord["pulse_clarity"] < 0.3 < 0.7 < random_notes["pulse_clarity"], "a held chord has no beat; notes on the beat do"
    assert random_notes["key_clarity_windows"] < 0.7 < chord["key_clarity_windows"], "random notes have no key; a chord has one"


def test_agreement_hears_a_semitone(chorales, scorer):
    import librosa

    _, real = scorer
    y, sr = real[0], chorales.sample_rate
    assert musicality.agreement(y, y, sr) == {"pitch_agreement": pytest.approx(1.0), "onset_agreement": 1.0}
    shifted = librosa.effects.pitch_shift(y, sr=sr, n_steps=1)
    assert musicality.agreement(y, shifted, sr)["pitch_agreement"] < 0.8 * musicality.agreement(y, y[:len(shifted)], sr)["pitch_agreement"]
    assert musicality.agreement(y, np.zeros_like(y), sr) == {"pitch_agreement": 0.0, "onset_agreement": 0.0}


def test_the_default_mel_grid_is_narrower_than_the_old_one_where_the_voices_sing():
    import librosa

    def semitones_wide(config, hz):
        edges = librosa.mel_frequencies(config.n_mels + 2, fmin=config.fmin, fmax=config.max_frequency, htk=config.mel_htk)
        i = np.searchsorted(edges, hz)
        return 12 * np.log2((hz + edges[i] - edges[i - 1]) / hz)

    new, old = AudioConfig(), AudioConfig(n_mels=80, fmin=0.0, mel_htk=False)
    for hz in (98.0, 196.0, 262.0):  # G2 (bass), G3 (tenor), C4
        assert semitones_wide(new, hz) < 0.6 * semitones_wide(old, hz)
    assert semitones_wide(new, 262.0) < 1.5


def test_models_that_generate_in_a_representation_of_their_own_have_a_round_trip():
    assert {name for name in ("vae", "ae", "vq", "token-transformer", "flow") if get(name).has_round_trip()} == {
        "vae", "ae", "vq", "token-transformer", "flow"}
    assert not any(get(name).has_round_trip() for name in ("cvae", "dcgan", "gruv", "sample-lstm", "spectral-noise"))


@pytest.mark.parametrize("name", ["vae", "vq"])
def test_a_round_trip_is_as_long_as_the_music_it_was_given(name, chorales):
    model_class = get(name)
    model = model_class(model_class.Settings(), chorales.config)
    model.fit(chorales)
    clips = runs.excerpts(chorales, "test", 2, 2.0)
    out = runs.round_trip_clips(model, clips)
    assert out.shape == clips.shape and np.isfinite(out).all() and np.abs(out).max() > 0
