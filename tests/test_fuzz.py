"""Hundreds of generated bad files thrown at `audio.load` and `musiclib prepare`: no traceback, every one reported.

Each example writes one damaged or strange file: a valid wav/flac/ogg/mp3 cut short or with
bytes overwritten, zero bytes, random bytes, headers that declare huge sizes or sample rates
of 1 Hz or 10 MHz, NaN/inf or out-of-range float samples, 0.01-s files, 8-channel files,
folders named x.wav, looping and dangling links.
"""
import io
import os
import struct

import numpy as np
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musiclib import audio, cli

SR = 22050
FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS"), ".mp3": ("MP3", "MPEG_LAYER_III")}


def _valid_bytes(extension: str, seconds: float = 0.3, channels: int = 1, rate: int = SR) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    y = 0.3 * np.sin(2 * np.pi * 440 * t)[:, None].repeat(channels, axis=1)
    buffer = io.BytesIO()
    fmt, subtype = FORMATS[extension]
    sf.write(buffer, y, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def _wav_header(rate: int, channels: int, bits: int, data_bytes: int, float_format: bool = False) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 3 if float_format else 1, channels, rate, (rate * block) & 0xFFFFFFFF, block, bits)
    return b"RIFF" + struct.pack("<I", (36 + data_bytes) & 0xFFFFFFFF) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", data_bytes)


@st.composite
def bad_files(draw):
    """``(file name, bytes or a kind of special path)`` for one damaged or strange input."""
    extension = draw(st.sampled_from(sorted(FORMATS)))
    kind = draw(st.sampled_from(["truncated", "corrupted", "empty", "random", "huge", "rate", "float", "tiny",
                                 "channels", "folder", "loop", "dangling"]))
    if kind == "truncated":
        data = _valid_bytes(extension)
        return f"cut{extension}", data[: draw(st.integers(1, len(data) - 1))]
    if kind == "corrupted":
        data = bytearray(_valid_bytes(extension))
        for _ in range(draw(st.integers(1, 16))):
            data[draw(st.integers(0, min(len(data), 256) - 1))] = draw(st.integers(0, 255))
        return f"corrupt{extension}", bytes(data)
    if kind == "empty":
        return f"empty{extension}", b""
    if kind == "random":
        return f"noise{extension}", draw(st.binary(min_size=1, max_size=4096))
    if kind == "huge":  # a header that promises gigabytes, then a few bytes
        return "huge.wav", _wav_header(SR, 2, 16, draw(st.integers(1 << 28, 0xFFFFFFFE))) + draw(st.binary(max_size=512))
    if kind == "rate":  # 1 Hz, 10 MHz and the like
        rate = draw(st.sampled_from([1, 7, 999, 10_000_000, 0xFFFFFFFF]))
        body = (np.random.default_rng(0).standard_normal(2000) * 1000).astype("<i2").tobytes()
        return "rate.wav", _wav_header(rate, 1, 16, len(body)) + body
    if kind == "float":  # NaN, inf, or far outside [-1, 1]
        value = draw(st.sampled_from([np.nan, np.inf, -np.inf, 1e30, 7.5]))
        samples = np.full(SR, 0.1, dtype="<f4")
        samples[draw(st.integers(0, SR - 1))] = value
        return "float.wav", _wav_header(SR, 1, 32, samples.nbytes, float_format=True) + samples.tobytes()
    if kind == "tiny":
        return f"tiny{extension}", _valid_bytes(".wav" if extension == ".mp3" else extension, seconds=0.01)
    if kind == "channels":
        return "eight.wav", _valid_bytes(".wav", seconds=draw(st.sampled_from([0.5, 1.5])), channels=8)
    return f"{kind}{extension}", kind


def _create(folder, name, content):
    path = folder / name
    if content == "folder":
        path.mkdir()
    elif content == "loop":
        os.symlink(path, path)
    elif content == "dangling":
        os.symlink(folder / "missing-target", path)
    else:
        path.write_bytes(content)
    return path


def _snapshot(folder):
    return {str(p.relative_to(folder)): (p.is_symlink(), os.readlink(p) if p.is_symlink() else None,
                                         p.read_bytes() if p.is_file() and not p.is_symlink() else None)
            for p in folder.rglob("*")}


@settings(max_examples=500, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(bad=bad_files())
def test_load_raises_only_clear_errors(tmp_path_factory, bad):
    folder = tmp_path_factory.mktemp("one")
    path = _create(folder, *bad)
    try:
        y, sr = audio.load(path, sample_rate=SR)
    except (audio.AudioFileError, FileNotFoundError) as err:
        message = str(err)
        assert "\n" not in message and path.name in message and len(message) < 600, message
    else:  # what loads is usable audio
        assert sr == SR and y.ndim == 1 and np.all(np.isfinite(y))


@settings(max_examples=25, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(bad=st.lists(bad_files(), min_size=1, max_size=12))
def test_prepare_reports_every_bad_file_and_leaves_the_source_alone(tmp_path_factory, capsys, bad):
    src = tmp_path_factory.mktemp("src")
    for i in range(3):  # enough good music for three splits
        (src / f"good{i}.wav").write_bytes(_valid_bytes(".wav", seconds=3.0))
    for i, (name, content) in enumerate(bad):
        (src / f"b{i}").mkdir()
        _create(src / f"b{i}", name, content)
    before = _snapshot(src)
    out = tmp_path_factory.mktemp("out") / "dataset"
    assert cli.main(["prepare", str(src), str(out)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert _snapshot(src) == before, "the source folder must be byte-identical afterwards"
    listed = (out / "skipped.txt").read_text() if (out / "skipped.txt").exists() else ""
    manifest_sources = (out / "manifest.json").read_text()
    for i, (name, _) in enumerate(bad):
        relative = f"b{i}/{name}"
        assert f"{relative}:" in listed or f'"{relative}"' in manifest_sources, f"{relative} neither skipped nor used"
