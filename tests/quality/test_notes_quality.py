"""Notes as the latent (`make test-quality`): the transcriber every note model uses, and the note transformer on three seeds.

The transcriber is the one the CLI trains once per machine (fast recipe, seed 0, in the cache); each seed trains a note
transformer on it and is scored as `musiclib evaluate` scores it.
"""
import numpy as np
import pytest

from musiclib import runs
from musiclib.datasets import bundled

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module", params=SEEDS, ids=lambda seed: f"seed{seed}")
def note_run(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"notes{request.param}") / "run"
    runs.train("note-transformer", "chorales", out, seed=request.param, progress=False)
    return out, runs.evaluate(out)


def test_the_transcriber_writes_down_held_out_chorales_of_every_ensemble(note_run):
    if note_run[0].parent.name != "notes00":
        pytest.skip("one transcriber serves every seed: scored once")
    _, model, _, _ = runs.load(note_run[0])
    scores = model.transcriber.heldout_scores(bundled.chorales(fast=True))
    per_ensemble = {key: round(value, 3) for key, value in scores.items() if key.startswith("note_f1_")}
    print("note F1 per ensemble:", per_ensemble, "synthesised:", round(scores["synth_note_f1"], 3),
          "peak picking:", round(scores["peak_picking_note_f1"], 3))
    # 2026-12-07, 300 steps: piano 0.97, strings 1.00, choir 0.82, winds 0.74 (mean 0.88); synthesised 0.86; peak picking 0.20.
    assert np.mean(list(per_ensemble.values())) >= 0.8 and min(per_ensemble.values()) >= 0.7
    assert scores["note_f1"] >= scores["peak_picking_note_f1"] + 0.4
    assert scores["synth_note_f1"] >= 0.6


def test_new_notes_are_tonal_in_a_key_on_a_beat_and_not_copied(note_run):
    run, results = note_run
    made, music, held = results["generated"], results["heldout_real"], results["heldout_scores"]
    _, model, _, _ = runs.load(run)
    scorer, excerpts = runs.musical_scorer(bundled.chorales(fast=True))
    random_notes = scorer(model.transcriber.sample(len(excerpts), excerpts.shape[1] / model.audio.sample_rate, seed=0))
    ratios = {key: made[key] / music[key] for key in ("frame_tonality", "pulse_clarity", "key_clarity_windows")}
    print({key: round(value, 3) for key, value in ratios.items()}, "random notes:", {k: round(v, 3) for k, v in random_notes.items()},
          "ceiling:", {key: round(value, 3) for key, value in results["ceiling"].items()},
          "copied notes:", held["longest_copied_notes"], "held-out:", held["heldout_longest_copied_notes"])
    # Of the music's, 2026-12-07 (temperature 0.7, the 300-step transcriber, 8 excerpts): tonality 0.96, 0.99, 0.88;
    # pulse 0.63, 0.74, 0.65; key 0.90, 0.85, 0.90 on seeds 0-2. Random notes in the same instruments: key 0.49 (raw).
    assert ratios["frame_tonality"] >= 0.75 and ratios["pulse_clarity"] >= 0.5 and ratios["key_clarity_windows"] >= 0.75
    assert made["key_clarity_windows"] >= random_notes["key_clarity_windows"] + 0.3
    assert made["memorization_ratio"] >= 0.7  # about 1.5 on seeds 0-2
    assert held["longest_copied_notes"] <= held["heldout_longest_copied_notes"]  # 2, 2, 3 against 5
    assert held["cross_entropy"] <= held["bigram_cross_entropy"] - 0.4  # 2.0-2.1 against 2.8-2.9 nats per token


PRIME_SECONDS = 3.0


def test_continuations_of_held_out_music_stay_tonal_in_a_key_on_a_beat(note_run):
    """Each held-out excerpt's first seconds are transcribed and continued in notes; the 6 s after the prime are scored."""
    from musiclib import musicality

    run, _ = note_run
    _, model, _, _ = runs.load(run)
    dataset = bundled.chorales(fast=True)
    scorer, music = runs.musical_scorer(dataset)
    primes = runs.excerpts(dataset, "test", len(music), PRIME_SECONDS)
    made = scorer(model.continuation(primes, musicality.EXCERPT_SECONDS, seed=0))
    real = scorer(music)
    ratios = {key: made[key] / real[key] for key in musicality.MusicalScorer.KEYS}
    print("continuations, of the music's:", {key: round(value, 3) for key, value in ratios.items()})
    assert ratios["frame_tonality"] >= 0.75 and ratios["pulse_clarity"] >= 0.5 and ratios["key_clarity_windows"] >= 0.75
