"""`musiclib compare`: every registered model trained with several seeds and scored the same way, resumably."""
import dataclasses
import json

import numpy as np
import pytest

import torch

from musiclib import cli, compare, metrics, models, report, runs
from musiclib.models import Model, Settings

from helpers import fails_cleanly

ARGS = ["--fast", "--steps", "2", "--seeds", "2", "--n-clips", "4"]


def _rows(table: str) -> list[str]:
    """The first cell of every table row, the header rows left out."""
    return [line.split(" | ")[0].removeprefix("| ") for line in table.splitlines()
            if line.startswith("| ") and "---" not in line and not line.startswith("|  | family |")]


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """One small comparison through the CLI: a baseline, a sequence model and a GAN (with the vocoder), two seeds."""
    folder = tmp_path_factory.mktemp("compare")
    (folder / "README.md").write_text(f"# title\n{report.README_START}\nold table\n{report.README_END}\nafter\n")
    argv = ["compare", *ARGS, "--models", "spectral-noise", "gruv", "dcgan", "--work", str(folder / "work"),
            "--out", str(folder / "results.md"), "--readme", str(folder / "README.md")]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MUSICLIB_FAST", "1")
        assert cli.main(argv) == 0
    return folder, argv


def test_every_model_and_reference_is_one_row_scored_over_every_seed(compared):
    folder, _ = compared
    table = (folder / "results.md").read_text()
    references = ["held-out real music", "persistence (the prime's last frame, repeated)", "a held chord (same instruments)",
                  "random notes on the beat (same instruments, no key)", "pink noise", "white noise"]
    round_trips = ["real music → log-mel → Griffin-Lim 32",
                   "real music → log-mel (80 Slaney bands from 0 Hz, n_fft 1024) → Griffin-Lim 32",
                   "real music → log-mel (224 Slaney bands from 30 Hz, n_fft 2048) → Griffin-Lim 32",
                   "real music → log-mel → Griffin-Lim 32 from random phases", "real music → log-mel → PGHI (no iterations)",
                   "real music → log-mel → vocoder"]
    assert _rows(table) == ["spectral-noise", "gruv", "dcgan", *references, "held-out real music", *round_trips], \
        "the models and references, then the ceiling table (none of these three models has a representation of its own)"
    main, ceiling = [line for line in table.splitlines() if line.startswith("|  | family |")]
    agreement = ("pitch_agreement", "onset_agreement")
    for column in report.COLUMNS:  # pitch accuracy only where a conditional model is on the table; agreement only for round trips
        assert (f" {column.title} |" in main) == (not column.key.startswith("pitch_accuracy") and column.key not in agreement), column.title
    assert all(f" {column.title} |" in ceiling for column in report.COLUMNS if column.key in agreement)
    results = json.loads((folder / "results.json").read_text())
    rows = {row["name"]: row for row in results["datasets"]["chorales"]["rows"]}
    assert results["datasets"]["chorales"]["n_clips"] == 4
    for name in ("spectral-noise", "gruv", "dcgan"):
        assert len(rows[name]["per_seed"]) == 2 and rows[name]["scores"]["frechet_distance"]["n"] == 2
        assert rows[name]["per_seed"][0]["frechet_distance"] != rows[name]["per_seed"][1]["frechet_distance"], "seeds differ"
        assert rows[name]["scores"]["parameters"]["mean"] > 0 and rows[name]["scores"]["train_seconds"]["mean"] > 0
        for seed in (0, 1):
            assert (folder / "work" / "chorales" / name / f"seed_{seed}" / "scored.wav").stat().st_size > 4 * 22050
    assert "frechet_distance_vocoder" in rows["dcgan"]["scores"] and "frechet_distance_vocoder" not in rows["gruv"]["scores"]
    # What the table claims of its references holds in this run too: noise is the farthest from the music.
    assert rows["white noise"]["scores"]["frechet_distance"] > rows["held-out real music"]["scores"]["frechet_distance"]
    assert rows["held-out real music"]["scores"]["silent_share"] == 0
    # The musical measures, on excerpts: the music near its 1 and noise near 0, and the old mel grid loses notes the new keeps.
    assert results["datasets"]["chorales"]["n_excerpts"] > 0
    assert rows["held-out real music"]["scores"]["frame_tonality"] > 0.7 > 0.25 > abs(rows["pink noise"]["scores"]["frame_tonality"])
    old_grid, new_grid = rows[round_trips[1]]["scores"], rows[round_trips[0]]["scores"]
    assert new_grid["pitch_agreement"] > old_grid["pitch_agreement"] and new_grid["frame_tonality"] > old_grid["frame_tonality"]
    assert (folder / "work" / "chorales" / "gruv" / "seed_0" / "scored_excerpts.wav").exists()
    assert "## What each column measures, and what it misses" in table
    readme = (folder / "README.md").read_text()
    assert readme.startswith("# title\n") and readme.endswith("after\n") and "old table" not in readme
    assert "| dcgan |" in readme and "RTF" not in readme, "the README's table is the short one"


def test_a_second_run_reuses_every_run_and_score(compared, monkeypatch):
    folder, argv = compared
    from musiclib import runs

    def no_work(*args, **kwargs):
        raise AssertionError("compare trained or scored again")

    monkeypatch.setattr(runs, "train", no_work)
    monkeypatch.setattr(compare, "score_run", no_work)
    before = json.loads((folder / "results.json").read_text())
    assert cli.main(argv) == 0
    after = json.loads((folder / "results.json").read_text())
    assert after["datasets"] == before["datasets"]


def test_a_killed_compare_continues_where_it_stopped(tmp_path, monkeypatch):
    """Scoring fails on the second run (as a kill would stop it); the next call trains and scores only what is missing."""
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    plan = compare.ComparePlan(models=("spectral-noise",), seeds=2, steps=2, n_clips=4, work=str(tmp_path / "work"), vocoder=False)
    real_score = compare.score_run
    calls = []

    def dies_on_the_second(spec, setup, run_dir):
        calls.append(run_dir.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_score(spec, setup, run_dir)

    monkeypatch.setattr(compare, "score_run", dies_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        compare.run(plan, log=lambda line: None)
    first = (tmp_path / "work" / "chorales" / "spectral-noise" / "seed_0" / "scores.json").read_text()
    results = compare.run(plan, log=lambda line: None)
    assert calls == ["seed_0", "seed_1", "seed_1"], "the finished run was not scored again"
    assert (tmp_path / "work" / "chorales" / "spectral-noise" / "seed_0" / "scores.json").read_text() == first
    assert results["datasets"]["chorales"]["rows"][0]["scores"]["ndb_k"]["n"] == 2


def test_more_steps_resume_the_runs_and_score_them_again(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    plan = compare.ComparePlan(models=("spectral-noise",), seeds=1, steps=2, n_clips=4, work=str(tmp_path / "work"), vocoder=False)
    compare.run(plan, log=lambda line: None)
    run_dir = tmp_path / "work" / "chorales" / "spectral-noise" / "seed_0"
    results = compare.run(dataclasses.replace(plan, steps=4), log=lambda line: None)
    assert json.loads((run_dir / "history.json").read_text())[-1]["step"] == 4
    assert json.loads((run_dir / "scores.json").read_text())["budget"]["settings"]["steps"] == 4
    assert results["datasets"]["chorales"]["rows"][0]["scores"]["ndb_k"]["n"] == 1


@dataclasses.dataclass(frozen=True)
class HumSettings(Settings):
    steps: int = 3
    batch_size: int = 4
    learning_rate: float = 0.5
    pitch: float = 220.0


class Hum(Model):
    """A model written in this file alone: a sine whose loudness it learns from the training clips."""

    name, family, description = "test-hum", "baseline", "a sine as loud as the music (a test's model)"
    gallery = "A sine as loud as the music, from a model a test registered."
    Settings = HumSettings

    def __init__(self, settings: HumSettings, audio):
        super().__init__(settings, audio)
        self.log_rms = torch.nn.Parameter(torch.zeros(()))

    def features(self, dataset, split):
        return np.array([[np.sqrt(np.mean(np.square(clip)))] for chunk in dataset.clip_chunks(split) for clip in chunk],
                        np.float32)

    def loss(self, batch, phase=""):
        return torch.mean((self.log_rms - torch.log(batch[:, 0] + 1e-6)) ** 2)

    def sample(self, n, seconds, seed):
        t = np.arange(int(round(seconds * self.audio.sample_rate))) / self.audio.sample_rate
        level = float(self.log_rms.detach().exp()) * np.sqrt(2)
        return np.tile(level * np.sin(2 * np.pi * self.settings.pitch * t, dtype=np.float64), (n, 1)).astype(np.float32)


class EchoHum(Hum):
    """A hum that also continues: a sine as loud as the prime."""

    name = "test-echo-hum"

    def continuation(self, prime, seconds, seed):
        t = np.arange(int(round(seconds * self.audio.sample_rate))) / self.audio.sample_rate
        levels = np.sqrt(2 * np.mean(np.square(prime), axis=1, keepdims=True))
        return (levels * np.sin(2 * np.pi * self.settings.pitch * t)).astype(np.float32)


def test_a_model_that_also_continues_gets_a_row_of_its_continuations_in_the_full_table_only(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    models.names()
    monkeypatch.setattr(models, "REGISTRY", dict(models.REGISTRY))
    models.register(EchoHum)
    assert compare.continues_from_nothing(EchoHum) and not compare.continues_from_nothing(Hum)
    plan = compare.ComparePlan(models=("test-echo-hum",), seeds=2, steps=2, n_clips=4, work=str(tmp_path / "w"), vocoder=False)
    results = compare.run(plan, log=lambda line: None)
    rows = {row["name"]: row for row in results["datasets"]["chorales"]["rows"]}
    continued = rows["test-echo-hum, continuing held-out clips"]
    assert continued["kind"] == "continuation" and continued["scores"]["frechet_distance"]["n"] == 2
    assert continued["scores"]["rms"]["mean"] != rows["test-echo-hum"]["scores"]["rms"]["mean"]  # as loud as each prime
    assert (tmp_path / "w" / "chorales" / "test-echo-hum" / "seed_1" / "continued.wav").exists()
    assert "test-echo-hum, continuing held-out clips" in _rows(report.markdown(results, "test"))
    assert "continuing" not in report.short_markdown(results, "test")


def test_a_model_written_in_one_file_is_trained_generated_compared_and_shown_by_registering_it(tmp_path, monkeypatch, capsys):
    from musiclib import cli
    from musiclib.demo import run_demo

    monkeypatch.setenv("MUSICLIB_FAST", "1")
    models.names()  # the built-in models first
    monkeypatch.setattr(models, "REGISTRY", dict(models.REGISTRY))
    models.register(Hum)
    assert Hum in models.generative_models() and Hum in models.gallery_models() and Hum.modes() == ("autonomous",)
    run = tmp_path / "hum"
    assert cli.main(["train", "test-hum", "--out", str(run), "--set", '{"pitch": 330.0}']) == 0
    assert cli.main(["generate", str(run), "--seconds", "1", "--out", str(tmp_path / "hum.wav")]) == 0
    assert runs.load(run)[1].settings.pitch == 330.0
    fails_cleanly(["train", "test-hum", "--out", str(tmp_path / "bad"), "--set", '{"pitch": "high"}'], capsys,
                  "test-hum setting 'pitch' must be a number")
    plan = compare.ComparePlan(models=("spectral-noise", "test-hum"), seeds=1, steps=2, n_clips=4, work=str(tmp_path / "w"),
                               vocoder=False)
    assert _rows(report.markdown(compare.run(plan, log=lambda line: None), "test"))[:2] == ["spectral-noise", "test-hum"]
    monkeypatch.setattr(models, "REGISTRY", {"test-hum": Hum})  # the demo's gallery: this model alone
    run_demo(tmp_path / "demo", steps=2, n_clips=4)
    page = (tmp_path / "demo" / "index.html").read_text()
    assert "gallery/test-hum_0.wav" in page and Hum.gallery in page


@pytest.mark.parametrize("args,expected", [
    (["--models", "melgan"], "--models: 'melgan' is not a generative model; choose from"),
    (["--models", "nonesuch"], "--models: 'nonesuch' is not a generative model"),
    (["--n-clips", "1"], "--n-clips must be at least 2"),
    (["--seeds", "0"], "--seeds: must be at least 1"),
    (["--out", "table.txt"], "ending in .md"),
])
def test_compare_refuses_bad_options_before_working(tmp_path, capsys, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep").write_text("untouched")
    fails_cleanly(["compare", "--fast", "--work", "work", *args], capsys, expected, watched=[tmp_path])
    assert not (tmp_path / "work").exists()


def test_compare_refuses_a_readme_without_markers_and_a_file_as_work_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "README.md").write_text("no markers here\n")
    (tmp_path / "busy").write_text("a file")
    fails_cleanly(["compare", "--fast", "--readme", "README.md", "--out", "t.md"], capsys, "no <!-- results:start -->",
                   watched=[tmp_path])
    fails_cleanly(["compare", "--fast", "--work", "busy", "--out", "t.md"], capsys, "--work busy: is a file", watched=[tmp_path])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "busy"]


def test_key_clarity_finds_the_key_of_a_scale_and_little_in_noise():
    major = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], dtype=float)  # the pitch classes of C major
    assert np.argmax(metrics.key_correlations(major)) == 0, "C major is the best key"
    assert np.argmax(metrics.key_correlations(np.roll(major, 7))) == 7, "and G major for the scale a fifth up"
    rng = np.random.default_rng(0)
    tonal = np.tile(major, (40, 1)) + 0.1 * rng.random((40, 12))
    flat = 1 + 0.1 * rng.random((40, 12))
    assert metrics.key_clarity(tonal) > 0.7 > metrics.key_clarity(flat)
    assert metrics.key_clarity(np.ones((5, 12))) == 0.0, "a flat profile points to no key"


def test_silent_share_counts_frames_below_the_threshold():
    sr = 22050
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr)
    half_silent = np.concatenate([tone[: sr // 2], np.zeros(sr // 2)])
    assert metrics.silent_share(np.stack([tone])) == 0.0 and metrics.silent_share(np.zeros((2, sr))) == 1.0
    assert 0.4 < metrics.silent_share(np.stack([half_silent])) < 0.6


def test_training_in_two_processes_gives_the_same_runs_as_in_one(tmp_path, monkeypatch):
    """`--jobs 2` trains runs side by side; each run is the run one process would train with the same threads."""
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    plan = compare.ComparePlan(models=("spectral-noise",), seeds=2, steps=3, n_clips=4, work=str(tmp_path / "two"), vocoder=False,
                               jobs=2)
    parallel = compare.run(plan, log=lambda line: None)
    import torch

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(max(1, threads // 2))  # what each of the two processes had
        single = compare.run(dataclasses.replace(plan, work=str(tmp_path / "one"), jobs=1), log=lambda line: None)
    finally:
        torch.set_num_threads(threads)

    def scores(results):
        return [{k: v for k, v in seed.items() if k not in ("train_seconds", "generation_rtf")}
                for seed in results["datasets"]["chorales"]["rows"][0]["per_seed"]]

    assert scores(parallel) == scores(single)
    for seed in (0, 1):
        assert (tmp_path / "two" / "chorales" / "spectral-noise" / f"seed_{seed}" / "finished.json").exists()


def test_a_run_trained_on_other_data_is_trained_again(tmp_path, monkeypatch):
    """A rebuilt data set (or another AudioConfig) changes the data's fingerprint: the old run is not reused."""
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    plan = compare.ComparePlan(models=("spectral-noise",), seeds=1, steps=2, n_clips=2, work=str(tmp_path))
    run_dir = tmp_path / "run"
    assert compare.train_run("spectral-noise", plan, run_dir, 0) > 0
    assert compare.train_run("spectral-noise", plan, run_dir, 0) == 0.0, "the same data and settings: reused"
    marker = json.loads((run_dir / "finished.json").read_text())
    (run_dir / "finished.json").write_text(json.dumps({**marker, "data_fingerprint": "another set"}))
    (run_dir / "left_by_the_old_run").write_text("")
    assert compare.train_run("spectral-noise", plan, run_dir, 0) > 0
    assert not (run_dir / "left_by_the_old_run").exists() and json.loads((run_dir / "finished.json").read_text()) == marker
