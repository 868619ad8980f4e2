import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from musiclib import AudioConfig, signals, soundfont
from musiclib.datasets import AudioDataset, DatasetError, adapters, bundled, gruv, public
from musiclib.datasets.prepare import assign_splits, prepare_folder
from musiclib.datasets.spectrogram import SpectrogramClips

SR = 22050
CONFIG = AudioConfig()


def _write_music(folder, n_files=4, seconds=3.0):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        y = signals.chord(notes=(48 + i, 52 + i, 55 + i), seconds=seconds, sample_rate=44100, seed=i)
        sub = folder / ("nested" if i % 2 else ".") / f"song{i}.{['wav', 'flac', 'ogg', 'mp3'][i % 4]}"
        sub.parent.mkdir(parents=True, exist_ok=True)
        sf.write(sub, np.stack([y, 0.5 * y]).T, 44100)


def _snapshot(folder):
    return {p.relative_to(folder): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_prepare_folder_splits_by_file_and_reports_bad_files(tmp_path):
    src = tmp_path / "music"
    _write_music(src, n_files=5)
    (src / "broken.wav").write_text("not audio")
    (src / "short.wav").parent.mkdir(exist_ok=True)
    sf.write(src / "short.wav", np.zeros(1000) + 0.1, SR)
    (src / "readme.txt").write_text("ignored")
    before = _snapshot(src)
    ds = prepare_folder(src, tmp_path / "ds", CONFIG, clip_seconds=1.0, progress=False)
    assert _snapshot(src) == before, "the source folder must not change"
    assert sum(ds.manifest["counts"].values()) >= 5 * 2
    assert all(ds.manifest["counts"][s] > 0 for s in ("train", "val", "test"))
    sources = {s["source"]: s["split"] for s in ds.manifest["sources"]}
    assert len(set(sources.values())) == 3 and ds.manifest["split_by"] == "file"
    skipped = (ds.root / "skipped.txt").read_text()
    assert "broken.wav" in skipped and "short.wav" in skipped and "shorter than one clip" in skipped
    clips = ds.clips("train")
    assert clips.dtype == np.float32 and clips.shape[1] == SR and np.abs(clips).max() <= 0.95 + 1e-6
    ds.verify()


def test_prepare_with_workers_writes_the_same_dataset(tmp_path):
    src = tmp_path / "music"
    _write_music(src, n_files=6)
    (src / "broken.wav").write_text("not audio")
    one = prepare_folder(src, tmp_path / "one", CONFIG, progress=False)
    three = prepare_folder(src, tmp_path / "three", CONFIG, progress=False, workers=3)
    assert three.manifest["checksums"] == one.manifest["checksums"]
    assert three.manifest["sources"] == one.manifest["sources"] and three.manifest["skipped"] == one.manifest["skipped"]


def test_spectrograms_stream_through_the_feature_cache_and_fit_on_a_sample(monkeypatch):
    from musiclib.datasets import spectrogram

    ds = bundled.chorales(fast=True)
    in_memory = SpectrogramClips(ds, "train", kind="linear")
    monkeypatch.setattr(spectrogram, "IN_MEMORY_BYTES", 0)  # as if the split were larger than memory
    whole = SpectrogramClips(ds, "train", kind="linear")
    assert isinstance(whole.data, np.memmap) and not whole.data.flags.writeable
    assert not isinstance(in_memory.data, np.memmap)
    # the same spectrograms (the normalisers differ: the streamed one is fitted on a sample; see below)
    np.testing.assert_allclose(whole.normalizer.denormalize(whole.data), in_memory.normalizer.denormalize(in_memory.data), atol=1e-4)
    values = np.concatenate(list(ds.clip_chunks("train", 7)))
    np.testing.assert_array_equal(values, ds.clips("train"))  # chunks of any size read the split as it is
    # a normaliser fitted on evenly spaced clips (here a tenth of them) lands close to the one fitted on all
    monkeypatch.setattr(spectrogram, "FIT_VALUES", whole.data[0].size * len(whole) // 10)
    sample = spectrogram.fit_sample(spectrogram._cached_rows(ds, "log_linear_train", iter(()), None))
    assert len(sample) == len(whole) // 10
    sampled = spectrogram.Normalizer.fit(sample)
    span = whole.normalizer.high - whole.normalizer.low
    assert abs(sampled.low - whole.normalizer.low) < 0.05 * span and abs(sampled.high - whole.normalizer.high) < 0.05 * span


def test_prepare_one_file_splits_in_time(tmp_path):
    src = tmp_path / "one"
    _write_music(src, n_files=1, seconds=10.0)
    ds = prepare_folder(src, tmp_path / "ds", CONFIG, progress=False)
    assert ds.manifest["split_by"] == "time" and ds.manifest["counts"]["test"] >= 1


@pytest.mark.parametrize("setup,message", [
    (lambda p: None, "no such folder"),
    (lambda p: p.mkdir(), "is empty"),
    (lambda p: (p.mkdir(), (p / "a.txt").write_text("x")), "no wav, flac, ogg or mp3"),
    (lambda p: (p.mkdir(), sf.write(p / "tiny.wav", np.ones(100) * 0.1, SR)), "no training clips"),
])
def test_prepare_clear_errors(tmp_path, setup, message):
    src = tmp_path / "src"
    setup(src)
    with pytest.raises(DatasetError, match=message):
        prepare_folder(src, tmp_path / "out", CONFIG, progress=False)
    assert not (tmp_path / "out").exists()


def _good_and_two_bad(src, seconds):
    src.mkdir()
    y = signals.chord(notes=(60, 64, 67), seconds=seconds, sample_rate=SR)
    sf.write(src / "good.wav", y, SR)
    sf.write(src / "silent.wav", np.zeros(5 * SR), SR)
    sf.write(src / "cut.wav", y, SR)
    (src / "cut.wav").write_bytes((src / "cut.wav").read_bytes()[: 3 * SR])  # headers fine, decoding says truncated


def test_prepare_decides_splits_after_decoding(tmp_path):
    _good_and_two_bad(tmp_path / "src", seconds=10.0)
    ds = prepare_folder(tmp_path / "src", tmp_path / "ds", CONFIG, progress=False)
    assert all(ds.manifest["counts"][s] > 0 for s in ("train", "val", "test")), ds.manifest["counts"]
    assert ds.manifest["split_by"] == "time"
    skipped = (ds.root / "skipped.txt").read_text()
    assert "silent.wav: silent" in skipped and "cut.wav" in skipped and "truncated" in skipped


def test_prepare_refuses_a_dataset_with_an_empty_split(tmp_path):
    _good_and_two_bad(tmp_path / "src", seconds=2.0)
    with pytest.raises(DatasetError, match="the val and test splits are empty: only 1 source"):
        prepare_folder(tmp_path / "src", tmp_path / "ds", CONFIG, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"], "nothing half-made may be left"


def test_prepare_refuses_output_inside_source_and_nonempty_output(tmp_path):
    src = tmp_path / "music"
    _write_music(src, n_files=3)
    with pytest.raises(DatasetError, match="inside the source"):
        prepare_folder(src, src / "ds", CONFIG, progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not empty"):
        prepare_folder(src, tmp_path / "full", CONFIG, progress=False)
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("name", ["chorales", "chorales-synth"])
def test_bundled_chorales_rebuild_gives_same_bytes(tmp_path, name):
    a = bundled.load(name, fast=True)  # from the cache, or built now
    builder = {"chorales": bundled.build_chorales, "chorales-synth": bundled.build_chorales_synth}[name]
    b = builder(tmp_path / "rebuilt", fast=True, progress=False)
    assert a.manifest["checksums"] == b.manifest["checksums"]
    assert len(set(a.manifest["chorales"])) == 24
    train, test = {s["source"] for s in a.manifest["sources"] if s["split"] == "train"}, {s["source"] for s in a.manifest["sources"] if s["split"] == "test"}
    assert train and test and not train & test
    assert a.seconds("train") + a.seconds("val") + a.seconds("test") >= 120


def test_sampled_and_synthesised_chorales_are_the_same_music_in_the_same_splits():
    sampled, synthesised = bundled.chorales(fast=True), bundled.chorales_synth(fast=True)
    assert sampled.manifest["chorales"] == synthesised.manifest["chorales"]
    assert sampled.manifest["sources"] == synthesised.manifest["sources"]
    assert not np.array_equal(sampled.clips("test"), synthesised.clips("test"))


def test_each_split_gets_the_ensembles_in_equal_shares():
    names = [f"bwv{i}" for i in range(100)]
    splits = assign_splits(names)
    ensemble = bundled.sampled_ensembles(splits)
    for split in ("train", "val", "test"):
        shares = [sum(ensemble[n] == e for n in names if splits[n] == split) for e in soundfont.ENSEMBLES]
        assert max(shares) - min(shares) <= 1, (split, shares)
    ds = bundled.chorales(fast=True)
    heldout = {s["source"] for s in ds.manifest["sources"] if s["split"] != "train"}
    assert {ds.manifest["ensembles"][n]["ensemble"] for n in heldout} == set(soundfont.ENSEMBLES)
    strings = [n for n in ds.manifest["chorales"] if ds.manifest["ensembles"][n]["ensemble"] == "strings"]
    assert ds.manifest["ensembles"][strings[0]] == {"ensemble": "strings", "soprano": 40, "alto": 40, "tenor": 41, "bass": 42}


NO_NETWORK = """
import socket
def refuse(*args, **kwargs):
    raise OSError("the test refuses network access")
socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = socket.getaddrinfo = refuse
from musiclib.datasets import bundled
ds = bundled.chorales(fast=True)
ds.verify()
print(ds.root.name, ds.manifest["counts"])
"""


def test_sampled_chorales_build_from_an_empty_cache_without_the_network(tmp_path):
    env = {**os.environ, "MUSICLIB_CACHE": str(tmp_path / "cache"), "MUSICLIB_FAST": "1"}
    done = subprocess.run([sys.executable, "-c", NO_NETWORK], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"chorales-v{bundled.BUILD_VERSIONS['chorales']}-fast-22050 ")
    assert sorted(p.name for p in (tmp_path / "cache" / "datasets").iterdir()) == [done.stdout.split()[0]]


def test_without_the_renderer_the_sampled_set_is_refused_and_names_the_synthesised_one(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "midirenderer", None)  # as on a platform with no wheel
    with pytest.raises(DatasetError, match="--data chorales-synth"):
        bundled.build_chorales(tmp_path / "chorales", fast=True, progress=False)
    assert not (tmp_path / "chorales").exists()


def test_a_render_that_fails_midway_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = []

    def render(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return np.full(3 * SR, 0.1, dtype=np.float32)

    monkeypatch.setattr(soundfont, "render", render)
    with pytest.raises(KeyboardInterrupt):
        bundled.build_chorales(tmp_path / "chorales", fast=True, progress=False)
    assert len(calls) == 3 and list(tmp_path.iterdir()) == []


def test_a_changed_bundled_file_is_caught_when_the_set_is_opened(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICLIB_CACHE", str(tmp_path))
    monkeypatch.setattr(bundled, "_VERIFIED", set())
    ds = bundled.notes(fast=True)
    monkeypatch.setattr(bundled, "_VERIFIED", set())
    clips = np.load(ds.root / "clips_test.npy")
    clips[0, 0] += 0.5
    np.save(ds.root / "clips_test.npy", clips)
    with pytest.raises(DatasetError, match="clips_test.npy: checksum mismatch"):
        bundled.notes(fast=True)


def test_bundled_notes_are_labelled():
    ds = bundled.notes(fast=True)
    labels = ds.labels("train")
    assert len(labels) == len(ds.clips("train")) > 50
    assert {"pitch", "instrument", "instrument_id", "velocity"} <= set(labels[0])
    assert len({l["instrument"] for l in labels}) == len(bundled.NOTE_INSTRUMENTS)


def test_held_out_notes_are_unseen_pitch_instrument_pairs():
    ds = bundled.notes(fast=True)
    pair = lambda label: (label["pitch"], label["instrument"])  # noqa: E731
    train = {pair(label) for label in ds.labels("train")}
    for split in ("val", "test"):
        held = {pair(label) for label in ds.labels(split)}
        assert held and not held & train, f"{split} notes must not be training notes at another velocity"
        # every held-out pitch and instrument is still heard in training, only not together
        assert {p for p, _ in held} <= {p for p, _ in train} and {i for _, i in held} <= {i for _, i in train}


@pytest.mark.parametrize("form", ["rfft", "seed"])
def test_gruv_blocks_round_trip_and_shift(tmp_path, form):
    ds = bundled.chorales(fast=True)
    blocks = gruv.GruvBlocks.build(ds, "test", tmp_path / form, block_size=2048, form=form)
    assert blocks.x.shape == (len(ds.clips("test")), 10, gruv.feature_size(2048, form))
    np.testing.assert_array_equal(blocks.x[:, 1:], blocks.y[:, :-1])
    full = np.concatenate([blocks.x[0], blocks.y[0, -1:]])
    rebuilt = blocks.sequence_to_audio(full)[: ds.clip_samples]
    assert np.max(np.abs(rebuilt - ds.clips("test")[0])) <= 1e-5
    assert isinstance(blocks.x, np.memmap)


def test_gruv_rfft_is_four_times_smaller():
    seed_bytes = gruv.feature_size(2048, "seed") * 8
    rfft_bytes = gruv.feature_size(2048, "rfft") * 4
    assert 3.9 < seed_bytes / rfft_bytes <= 4.0


def test_spectrogram_clips_global_normalisation_and_inverse():
    ds = bundled.chorales(fast=True)
    train = SpectrogramClips(ds, "train", kind="mel")
    test = SpectrogramClips(ds, "test", kind="mel", normalizer=train.normalizer)
    assert train.data.shape[1:] == (CONFIG.n_mels, CONFIG.seconds_to_frames(1.0))
    assert -1.5 < train.data.min() and train.data.max() < 1.5
    np.testing.assert_allclose(train.normalizer.denormalize(train.normalizer.normalize(np.array([-3.0, 1.0]))), [-3.0, 1.0], atol=1e-5)
    # a brand-new random spectrogram can be mapped back to audio: one global map, no per-file numbers
    y = train.to_audio(np.random.default_rng(0).uniform(-1, 1, train.data.shape[1:]).astype(np.float32), n_iter=4)
    assert y.shape == (ds.clip_samples,) and np.all(np.isfinite(y))
    assert test.to_audio(test.data[:2], n_iter=4).shape == (2, ds.clip_samples)


@pytest.mark.tensorflow
def test_torch_and_tf_adapters_see_the_same_rows():
    import torch

    x = np.arange(24, dtype=np.float32).reshape(6, 4)
    y = -x
    torch_ds = adapters.ArrayDataset(x, y)
    xb, yb = torch_ds[2]
    assert torch.equal(xb, torch.tensor(x[2])) and torch.equal(yb, torch.tensor(y[2]))
    loader = torch.utils.data.DataLoader(torch_ds, batch_size=3)
    assert next(iter(loader))[0].shape == (3, 4)
    tf_ds = adapters.tf_dataset(x, y, batch_size=6, shuffle=False)
    bx, by = next(iter(tf_ds))
    np.testing.assert_array_equal(bx.numpy(), x)
    np.testing.assert_array_equal(by.numpy(), y)


def _make_nsynth_replica(root):
    for split, folder in public.NSYNTH_SPLITS.items():
        (root / folder / "audio").mkdir(parents=True)
        examples = {}
        for i, (family, pitch) in enumerate([("keyboard", 60), ("guitar", 64), ("keyboard", 67)]):
            name = f"{family}_acoustic_00{i}-0{pitch}-100"
            sf.write(root / folder / "audio" / f"{name}.wav", signals.sine(440 * 2 ** ((pitch - 69) / 12), 4.0, 16000), 16000, subtype="PCM_16")
            examples[name] = {"pitch": pitch, "velocity": 100, "instrument_family_str": family,
                              "instrument_source_str": "acoustic", "sample_rate": 16000, "note_str": name}
        (root / folder / "examples.json").write_text(json.dumps(examples))


def test_nsynth_loader_on_a_tiny_replica(tmp_path):
    _make_nsynth_replica(tmp_path / "nsynth")
    ds = public.prepare_nsynth(tmp_path / "nsynth", tmp_path / "out", CONFIG)
    assert ds.manifest["counts"] == {"train": 3, "val": 3, "test": 3}
    labels = ds.labels("val")
    assert [l["pitch"] for l in labels] == [60, 64, 67] or sorted(l["pitch"] for l in labels) == [60, 64, 67]
    assert set(ds.manifest["instruments"]) == {"keyboard", "guitar"}
    only_guitar = public.prepare_nsynth(tmp_path / "nsynth", tmp_path / "g", CONFIG, families=["guitar"])
    assert only_guitar.manifest["counts"]["train"] == 1


def test_maestro_loader_on_a_tiny_replica(tmp_path):
    root = tmp_path / "maestro"
    rows = []
    for i, split in enumerate(["train", "train", "validation", "test"]):
        rel = f"2018/piece{i}.wav"
        (root / "2018").mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, signals.chord(notes=(60 + i, 64 + i), seconds=3.0, sample_rate=44100), 44100)
        rows.append(f"Composer,Title {i},{split},2018,2018/piece{i}.midi,{rel},3.0")
    (root / "maestro-v3.0.0.csv").write_text(
        "canonical_composer,canonical_title,split,year,midi_filename,audio_filename,duration\n" + "\n".join(rows) + "\n")
    ds = public.prepare_maestro(root, tmp_path / "out", CONFIG)
    assert ds.manifest["counts"] == {"train": 6, "val": 3, "test": 3}
    with pytest.raises(DatasetError, match="maestro-v"):
        public.maestro_index(tmp_path)


def test_not_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="musiclib prepare"):
        AudioDataset(tmp_path)


def test_read_clips_reads_the_rows_of_the_memory_map(tmp_path):
    ds = bundled.notes(fast=True)
    indices = [0, 5, len(ds.clips("train")) - 1]
    np.testing.assert_array_equal(ds.read_clips("train", indices), np.asarray(ds.clips("train"))[indices])
    with pytest.raises(IndexError, match="clip 9999"):
        ds.read_clips("train", [9999])


def test_two_processes_asking_for_an_unbuilt_set_at_once_both_get_it(tmp_path):
    """Test workers and notebooks may open a bundled set together on a fresh machine: one builds, the other waits."""
    env = {**os.environ, "MUSICLIB_CACHE": str(tmp_path / "cache"), "MUSICLIB_FAST": "1"}
    code = "from musiclib.datasets import bundled; ds = bundled.notes(); ds.verify(); print(ds.root.name)"
    workers = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    results = [worker.communicate(timeout=300) + (worker.returncode,) for worker in workers]
    assert all(code == 0 for _, _, code in results), [err[-2000:] for _, err, _ in results]
    names = {out.strip() for out, _, _ in results}
    assert len(names) == 1 and sorted(p.name for p in (tmp_path / "cache" / "datasets").iterdir()) == sorted(names)
