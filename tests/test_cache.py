"""The feature cache and portable run folders: keyed by contents, kept out of datasets and working folders."""
import shutil

import numpy as np
import pytest
import soundfile as sf

from musiclib import AudioConfig, cache, cli, signals
from musiclib.datasets import bundled
from musiclib.datasets.prepare import prepare_folder
from musiclib.models import gruv_lstm


def _dataset(root, notes, seconds=6.0):
    src = root.parent / f"{root.name}_src"
    src.mkdir(parents=True)
    for i, note in enumerate(notes):
        sf.write(src / f"take{i}.wav", signals.chord(notes=(note, note + 4), seconds=seconds, sample_rate=22050, seed=i), 22050)
    return prepare_folder(src, root, AudioConfig(), progress=False)


def test_cache_lives_where_musiclib_cache_says(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICLIB_CACHE", str(tmp_path / "c"))
    assert cache.cache_root() == tmp_path / "c" and bundled.cache_dir() == tmp_path / "c" / "datasets"
    monkeypatch.delenv("MUSICLIB_CACHE")
    assert "musiclib" in str(cache.cache_root()) and not str(cache.cache_root()).startswith(str(tmp_path))


def test_features_follow_the_contents_not_the_path(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICLIB_CACHE", str(tmp_path / "cache"))
    first = _dataset(tmp_path / "ds", (48, 50, 52))
    config = gruv_lstm.GRUV.Settings(hidden_size=8)
    before = np.asarray(gruv_lstm.blocks(first, config, "train").x[0, 0]).copy()
    assert cache.memoized(first, "answer", lambda: 1) == 1 and cache.memoized(first, "answer", lambda: 2) == 1
    assert not (first.root / "derived").exists(), "nothing may be written into a dataset"
    shutil.rmtree(first.root)
    shutil.rmtree(tmp_path / "ds_src")
    rebuilt = _dataset(tmp_path / "ds", (60, 62, 64))  # same path, other music
    assert cache.fingerprint(rebuilt) != cache.fingerprint(first)
    assert cache.memoized(rebuilt, "answer", lambda: 2) == 2
    after = np.asarray(gruv_lstm.blocks(rebuilt, config, "train").x[0, 0])
    assert not np.allclose(before, after)


def test_a_moved_run_folder_still_generates_and_a_moved_dataset_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    monkeypatch.setenv("MUSICLIB_CACHE", str(tmp_path / "cache"))
    data = _dataset(tmp_path / "ds", (48, 50, 52)).root
    for name, settings in (("spectral-noise", "{}"), ("gruv", '{"hidden_size": 8}')):
        assert cli.main(["train", name, "--data", str(data), "--out", str(tmp_path / name), "--steps", "2", "--set", settings]) == 0
        shutil.move(tmp_path / name, tmp_path / f"moved-{name}")
    shutil.move(data, tmp_path / "elsewhere")
    capsys.readouterr()
    # needs no data: generates from the moved folder without the dataset
    assert cli.main(["generate", str(tmp_path / "moved-spectral-noise"), "--seconds", "1", "--out", str(tmp_path / "a.wav")]) == 0
    # needs a held-out prime: says which dataset it was trained on and how to point it there
    assert cli.main(["generate", str(tmp_path / "moved-gruv"), "--seconds", "1", "--out", str(tmp_path / "b.wav")]) == 2
    err = capsys.readouterr().err
    assert f"was trained on the dataset {data}, which is no longer there" in err and "config.json" in err
    assert not (tmp_path / "b.wav").exists()


@pytest.mark.parametrize("name", ["chorales", "chorales-synth", "notes"])
def test_bundled_runs_name_their_set_not_a_cache_path(tmp_path, monkeypatch, name):
    import json

    monkeypatch.setenv("MUSICLIB_FAST", "1")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "spectral-noise", "--data", name, "--out", "run", "--steps", "2"]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"] == name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"], "nothing may be written into the working folder"
