"""Training to a wall-clock budget (`musiclib train --minutes`): the plan, the clean stop, and exact resumes.

Time is simulated: ``musiclib.training.clock`` reads a counter that each training step advances, so the
plans and stops are the same on any machine.
"""
import json

import numpy as np
import pytest
import torch

from musiclib import AudioConfig, budget, cli, runs
from musiclib.training import Trainer, TrainConfig, load_checkpoint

from helpers import TinyModel


def _tiny_trainer(run_dir, steps, deadline=None):
    torch.manual_seed(0)
    data = np.random.default_rng(0).standard_normal((37, 8)).astype(np.float32)
    config = TrainConfig(steps=steps, batch_size=8, learning_rate=1e-2, seed=3, checkpoint_every=5, progress=False)
    return Trainer(TinyModel(), data, run_dir, config, AudioConfig(), {"kind": "tiny"}, deadline=deadline)


def _weights(run_dir):
    return load_checkpoint(run_dir / "checkpoint.pt")["model"]


def _same_weights(a, b):
    return all(torch.equal(a[key], b[key]) for key in a)


def test_the_trainer_stops_at_its_deadline_with_a_checkpoint_and_resumes_exactly(tmp_path, monkeypatch, simulated_time):
    time = simulated_time(1.0)
    stopped = _tiny_trainer(tmp_path / "stopped", 20, deadline=time.now + 7.5)
    stopped.fit()
    assert stopped.stopped_by_budget and stopped.step == 8
    assert load_checkpoint(tmp_path / "stopped" / "checkpoint.pt")["step"] == 8  # a checkpoint off the every-5 grid
    resumed = _tiny_trainer(tmp_path / "stopped", 20)
    resumed.fit()
    assert not resumed.stopped_by_budget and resumed.step == 20
    _tiny_trainer(tmp_path / "straight", 20).fit()
    assert _same_weights(_weights(tmp_path / "stopped"), _weights(tmp_path / "straight"))


def test_a_budget_plans_the_steps_that_fit_and_records_the_session(tmp_path, monkeypatch, simulated_time):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    simulated_time(0.5)
    run = runs.train("spectral-noise", "chorales", tmp_path / "run", minutes=1.0, progress=False)
    [session] = budget.sessions(run)
    assert session["seconds_per_step"] == pytest.approx(0.5)
    # 60 s at 0.5 s a step, less the 3 % kept free and the calibration's steps: a little over 100 steps.
    assert 100 <= session["planned_steps"] <= 117
    assert session["stopped_by"] == "plan" and session["reached_step"] == session["planned_steps"]
    assert session["seconds"] <= 60
    assert runs.read_config(run)["model_config"]["steps"] == session["planned_steps"]
    assert runs.history(run)[-1]["step"] == session["planned_steps"]


def test_a_run_that_goes_faster_than_measured_plans_again_at_each_checkpoint(tmp_path, monkeypatch, simulated_time):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    time = simulated_time(0.5)
    real_plan = budget.plan

    def plan_then_speed_up(*args, **kwargs):
        plan = real_plan(*args, **kwargs)
        time.slow_from, time.slow_seconds = time.steps, 0.25  # every step from here on takes half the time measured
        return plan

    monkeypatch.setattr(budget, "plan", plan_then_speed_up)
    run = runs.train("spectral-noise", "chorales", tmp_path / "run", minutes=1.0, progress=False)
    [session] = budget.sessions(run)
    assert session["planned_steps"] > 1.5 * session["first_planned_steps"]
    assert session["stopped_by"] == "plan" and session["reached_step"] == session["planned_steps"]
    assert runs.read_config(run)["model_config"]["steps"] == session["planned_steps"]


def test_more_minutes_continue_the_run_from_where_it_ended(tmp_path, monkeypatch, simulated_time):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    simulated_time(0.5)
    run = runs.train("spectral-noise", "chorales", tmp_path / "run", minutes=0.5, progress=False)
    first = budget.sessions(run)[0]["reached_step"]
    runs.train("spectral-noise", "chorales", run, minutes=0.5, progress=False)
    first_session, second = budget.sessions(run)
    assert second["from_step"] == first and second["reached_step"] > first + 40
    assert runs.history(run)[-1]["step"] == second["reached_step"]


def test_a_run_the_budget_stopped_resumes_to_its_plan_exactly(tmp_path, monkeypatch, simulated_time):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    time = simulated_time(1.0)
    real_plan = budget.plan

    def plan_then_stall(*args, **kwargs):  # one step, past half the plan, takes longer than the whole budget
        plan = real_plan(*args, **kwargs)
        time.slow_from, time.slow_seconds = time.steps + round(0.6 * plan["planned_steps"]), 60.0
        return plan

    monkeypatch.setattr(budget, "plan", plan_then_stall)
    stopped = runs.train("vae", "chorales", tmp_path / "stopped", minutes=0.5, progress=False)
    [session] = budget.sessions(stopped)
    assert session["stopped_by"] == "budget" and 0 < session["reached_step"] < session["planned_steps"]
    assert (stopped / "samples").exists()
    runs.train("vae", "chorales", stopped, progress=False)  # no --minutes, no --steps: on to the plan
    assert runs.history(stopped)[-1]["step"] == session["planned_steps"]
    straight = runs.train("vae", "chorales", tmp_path / "straight", steps=session["planned_steps"], progress=False)
    assert _same_weights(_weights(stopped), _weights(straight))


def test_a_budget_scales_the_recipes_warm_up_with_the_steps_it_plans(tmp_path, monkeypatch, simulated_time):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    simulated_time(2.0)
    from musiclib import models

    recipe = models.get("melgan").Settings().to_dict()
    run = runs.train("melgan", "chorales", tmp_path / "run", minutes=0.5, progress=False)
    config = runs.read_config(run)["model_config"]
    assert config["steps"] < recipe["steps"]
    assert config["warmup_steps"] == round(recipe["warmup_steps"] * config["steps"] / recipe["steps"])


def _fails(argv, capsys, expected):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1, err


def test_bad_budgets_are_one_line_and_write_nothing(tmp_path, capsys, monkeypatch, simulated_time):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    out = str(tmp_path / "run")
    for value in ("0", "-2", "nan", "soon"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["train", "spectral-noise", "--out", out, "--minutes", value])
        assert exit_info.value.code == 2 and "--minutes" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "spectral-noise", "--out", out, "--minutes", "1", "--steps", "5"])
    assert "not allowed with argument" in capsys.readouterr().err
    time = simulated_time(0.5)
    monkeypatch.setattr(cli, "STARTED", time.now)
    _fails(["train", "spectral-noise", "--out", out, "--minutes", "0.01"], capsys, "--minutes 0.01: too short to train spectral-noise")
    assert not (tmp_path / "run").exists()


def test_the_cli_says_how_the_budget_was_spent(tmp_path, capsys, monkeypatch, simulated_time):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    time = simulated_time(0.5)
    monkeypatch.setattr(cli, "STARTED", time.now)
    assert cli.main(["train", "spectral-noise", "--out", str(tmp_path / "run"), "--minutes", "0.5"]) == 0
    out = capsys.readouterr().out
    session = json.loads((tmp_path / "run" / "budget.json").read_text())[0]
    assert f"to step {session['reached_step']} in 0.5 of 0.5 minutes (as planned" in out
