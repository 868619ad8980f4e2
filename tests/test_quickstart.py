"""`musiclib quickstart`: bad inputs refused in one line, and the whole path on a small folder (simulated time).

The quality bar (a real budget on real recordings) is in tests/quality/test_quickstart_quality.py.
"""
import json

import numpy as np
import pytest

from musiclib import audio, cli, runs, synth
from musiclib.datasets import DatasetError
from musiclib.quickstart import pick_model, quickstart


def _melodies(folder, n_files, seconds, sample_rate=22050):
    """``n_files`` recordings of random organ and pluck melodies, ``seconds`` long each."""
    rng = np.random.default_rng(7)
    for k in range(n_files):
        starts = np.arange(0, seconds, 0.4)
        notes = [synth.Note(float(t), 0.35, int(rng.choice([60, 62, 64, 65, 67, 69, 71, 72])), 0.6) for t in starts]
        y = synth.render(notes, ("organ", "pluck")[k % 2], sample_rate, seed=k, seconds=seconds)
        audio.save(folder / f"piece_{k}.{('wav', 'flac', 'ogg')[k % 3]}", y, sample_rate)


def _fails(argv, capsys, expected):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1, err


def test_bad_folders_are_refused_in_one_line_and_nothing_is_written(tmp_path, capsys):
    out = tmp_path / "out"
    _fails(["quickstart", str(tmp_path / "missing"), str(out)], capsys, "missing: no such folder")
    (tmp_path / "empty").mkdir()
    _fails(["quickstart", str(tmp_path / "empty"), str(out)], capsys, "empty: is empty")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "notes.txt").write_text("no audio here")
    _fails(["quickstart", str(tmp_path / "text"), str(out)], capsys, "has no wav, flac, ogg or mp3 files")
    assert not out.exists()


def test_an_output_folder_that_exists_is_left_untouched(tmp_path, capsys):
    (tmp_path / "music").mkdir()
    _melodies(tmp_path / "music", 3, 2.0)
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    _fails(["quickstart", str(tmp_path / "music"), str(out)], capsys, "out: already exists; give quickstart a new folder")
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


def test_too_little_audio_for_a_held_out_split_is_refused_and_cleaned_up(tmp_path, capsys):
    (tmp_path / "music").mkdir()
    _melodies(tmp_path / "music", 3, 5.0)
    _fails(["quickstart", str(tmp_path / "music"), str(tmp_path / "out"), "--model", "spectral-noise"], capsys,
           "too little audio (15 s in 3 file(s))")
    assert not (tmp_path / "out").exists()
    # Enough seconds in the headers, but three files split one each: 30 s to train on is too little.
    (tmp_path / "more").mkdir()
    _melodies(tmp_path / "more", 3, 30.0)
    with pytest.raises(DatasetError, match=r"too little audio \(30 s to train on and 30/30 validation/test clips"):
        quickstart(tmp_path / "more", tmp_path / "out", model="spectral-noise", log=lambda line: None)
    assert not (tmp_path / "out").exists()


def test_the_model_is_the_tables_best_that_fits_the_budget(tmp_path):
    def row(name, frechet, kernel, seconds):
        return {"name": name, "kind": "model", "scores": {"frechet_distance": {"mean": frechet}, "kernel_distance": {"mean": kernel},
                                                         "train_seconds": {"mean": seconds}}}

    rows = [row("vae", 1700, 1.3, 90), row("token-transformer", 1730, 0.65, 98), row("dcgan", 2600, 1.1, 270),
            row("spectral-noise", 100, 0.01, 1), row("cvae", 10, 0.01, 10), row("codec", 900, 0.1, 40), row("vq", 1000, 0.2, 20),
            {"name": "white noise", "kind": "reference"}]
    table = tmp_path / "results.json"
    table.write_text(json.dumps({"datasets": {"chorales": {"rows": rows}}}))
    # Never picked: the baseline, the conditional model, and the representations a model is built on (their samples
    # have no order, however close their distances).
    assert pick_model(10, table) == "token-transformer"
    table.write_text(json.dumps({"datasets": {"chorales": {"rows": [rows[0], row("token-transformer", 1730, 0.65, 200), rows[2]]}}}))
    assert pick_model(3, table) == "vae"  # the token transformer's recipe does not fit in 3 minutes
    with pytest.raises(ValueError, match="--minutes 0.5: no model of the table trains"):
        pick_model(0.5, table)
    with pytest.raises(ValueError, match="name one with --model"):
        pick_model(10, tmp_path / "none.json")


def test_the_pick_hears_the_musical_columns_and_counts_a_shared_upstreams_training(tmp_path, monkeypatch):
    def row(name, frechet, kernel, seconds, tonality, pulse, key):
        means = {"frechet_distance": frechet, "kernel_distance": kernel, "train_seconds": seconds, "frame_tonality": tonality,
                 "pulse_clarity": pulse, "key_clarity_windows": key}
        return {"name": name, "kind": "model", "scores": {column: {"mean": value} for column, value in means.items()}}

    music = {"name": "held-out real music", "kind": "reference",
             "scores": {"frechet_distance": 1700, "kernel_distance": 0.4, "frame_tonality": 1.1, "pulse_clarity": 1.4, "key_clarity_windows": 1.2}}
    rows = [row("flow", 1700, 0.3, 50, 0.25, 0.2, 0.5), row("vae", 2500, 0.8, 90, 0.3, 1.0, 0.5),
            row("note-transformer", 9800, 1.2, 30, 1.15, 1.1, 1.1), row("transcriber", 31000, 3.0, 70, 0.9, 0.2, 0.5), music]
    table = tmp_path / "results.json"
    table.write_text(json.dumps({"datasets": {"chorales": {"rows": rows}}}))
    # Distances alone rank flow first (rank sum 0 + 0, the note model 2 + 2); the musical columns rank the note model
    # first (its tonality is above the music's: no shortfall), flow last or shared last: 4 against 5.
    monkeypatch.setattr(runs, "shared_upstream_trained", lambda model_class, fast: True)
    assert pick_model(10, table) == "note-transformer"
    without_music = [row for row in rows if row["kind"] == "model"]
    table.write_text(json.dumps({"datasets": {"chorales": {"rows": without_music}}}))
    assert pick_model(10, table) == "flow"  # an older table, without the music's scores to aim for
    table.write_text(json.dumps({"datasets": {"chorales": {"rows": rows}}}))
    # Its transcriber not yet trained on this machine: 30 + 70 s of training, more than a 1.5-minute budget leaves
    # (as the VAE's 90 s do).
    monkeypatch.setattr(runs, "shared_upstream_trained", lambda model_class, fast: False)
    assert pick_model(10, table) == "note-transformer" and pick_model(1.5, table) == "flow"


def test_quickstart_writes_a_page_with_players_and_scores(tmp_path, capsys, monkeypatch, simulated_time):
    (tmp_path / "music").mkdir()
    _melodies(tmp_path / "music", 4, 40.0)
    time = simulated_time(0.5)
    monkeypatch.setattr(cli, "STARTED", time.now)
    assert cli.main(["quickstart", str(tmp_path / "music"), str(tmp_path / "out"), "--minutes", "1.5", "--model", "spectral-noise"]) == 0
    printed = capsys.readouterr().out
    for stage in ("1/5 preparing", "2/5 training spectral-noise", "3/5 scoring", "4/5 generating", "5/5 writing the page"):
        assert stage in printed
    assert "margin" in printed and str(tmp_path / "out" / "index.html") in printed
    page = (tmp_path / "out" / "index.html").read_text()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["model"] == "spectral-noise" and set(summary["margins"]) == {"frechet_distance", "kernel_distance", "ndb_k"}
    sources = [part.split('"')[0] for part in page.split('<audio controls preload="metadata" src="')[1:]]
    assert len(sources) == 3 + 3 + 1  # your music, new music, noise
    assert all((tmp_path / "out" / source).exists() for source in sources)
    assert "your other held-out music" in page and "white noise" in page
