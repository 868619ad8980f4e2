"""The ceiling of the shared log-mel and its inversion: chorales through them and back keep their notes and key.

No training: the round trip is DSP, so its "seeds" are three disjoint sets of excerpts (the test, validation and
training pieces). The closing comment of each test gives the values measured when the bar was set.
"""
import pytest

from musiclib import baselines, musicality, runs
from musiclib.config import AudioConfig
from musiclib.datasets import bundled


@pytest.fixture(scope="module")
def chorales():
    return bundled.chorales(fast=True)


@pytest.mark.parametrize("split", ["test", "val", "train"])
def test_the_shared_log_mel_and_its_inversion_keep_the_music_s_notes_and_key(chorales, split):
    scorer, _ = runs.musical_scorer(chorales)
    music = runs.excerpts(chorales, split, 8, musicality.EXCERPT_SECONDS)
    assert len(music) >= 4
    target = scorer(music)
    kept = scorer(baselines.griffin_lim_resynthesis(music, chorales.config), music)
    old_grid = AudioConfig(n_mels=80, fmin=0.0, mel_htk=False)
    before = scorer(baselines.griffin_lim_resynthesis(music, old_grid, initial_phase="random"), music)
    ratios = {key: kept[key] / target[key] for key in ("frame_tonality", "key_clarity_windows")}
    print(split, {key: round(value, 3) for key, value in ratios.items()}, "pitch agreement", round(kept["pitch_agreement"], 3),
          "before:", round(before["frame_tonality"] / target["frame_tonality"], 3), round(before["pitch_agreement"], 3))
    # Set on 2026-12-06 (2 cores): tonality 0.90-0.92 of the music's, key clarity 0.95-0.97, pitch agreement 0.99;
    # the 80-band grid with Griffin-Lim from random phases: tonality 0.47-0.67 of the music's, pitch agreement 0.83-0.94.
    assert ratios["frame_tonality"] >= 0.85 and ratios["key_clarity_windows"] >= 0.85
    assert kept["pitch_agreement"] >= before["pitch_agreement"] + 0.05
