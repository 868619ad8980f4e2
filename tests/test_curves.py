"""`musiclib curves`: the page of expected curves is made by the command, from runs it trains and scores."""
import json

from musiclib import cli, runs


def test_curves_train_to_each_stop_score_it_and_write_the_page(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    out = tmp_path / "curves.md"
    argv = ["curves", "--models", "spectral-noise", "--points", "2", "--n-clips", "4", "--work", str(tmp_path / "work"), "--out", str(out)]
    assert cli.main(argv) == 0
    results = json.loads(out.with_suffix(".json").read_text())
    curve = results["models"]["spectral-noise"]
    assert [point["step"] for point in curve] == [30, 60]  # the fast recipe's 60 steps, in two stops
    assert curve[0]["minutes"] < curve[1]["minutes"] and all(point["frechet_distance"] > 0 for point in curve)
    assert runs.history(tmp_path / "work" / "spectral-noise")[-1]["step"] == 60
    page = out.read_text()
    assert "Made by `musiclib curves --models spectral-noise --points 2 --until 1`" in page and "| 60 |" in page
    assert out.with_suffix(".png").stat().st_size > 1000


def test_curves_of_some_models_keep_the_other_models_measured_the_same_way(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    out = tmp_path / "curves.md"
    argv = ["curves", "--models", "spectral-noise", "--points", "2", "--n-clips", "4", "--work", str(tmp_path / "work"), "--out", str(out)]
    assert cli.main(argv) == 0
    earlier = json.loads(out.with_suffix(".json").read_text())
    for key in ("models", "losses", "heldout_real"):  # as if gruv had been measured by an earlier call
        earlier[key] = {"gruv": earlier[key]["spectral-noise"]}
    earlier["dates"], earlier["command"] = {"gruv": "2026-01-02"}, "musiclib curves --points 2"
    out.with_suffix(".json").write_text(json.dumps(earlier))
    assert cli.main(argv) == 0  # the stops are measured already: nothing is trained again
    results = json.loads(out.with_suffix(".json").read_text())
    assert list(results["models"]) == ["gruv", "spectral-noise"] and results["dates"]["gruv"] == "2026-01-02"
    assert "Made by `musiclib curves --points 2`" in out.read_text() and "Measured on 2026-01-02" in out.read_text()
