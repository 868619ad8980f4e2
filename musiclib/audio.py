"""Reading, converting and writing audio: the seeds' preprocessing done once, with clear errors.

Conventions: a mono signal is a 1-D float32 array in [-1, 1]; a multichannel
signal is shaped ``(channels, samples)`` (librosa's convention).

Notebook: 01_sound_and_sampling.ipynb
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
SAMPLE_RATE_RANGE = (1000, 768000)
"""Sample rates (Hz) a recording may have; anything else is a damaged header or not audio."""
MAX_SECONDS = 4 * 3600
"""The longest file :func:`load` reads (4 hours): longer ones, or headers that claim so, are refused."""


class AudioFileError(ValueError):
    """An audio file could not be used. The message names the file and what to do."""

    def __init__(self, path, problem: str, fix: str):
        self.path = Path(path)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{self.path}: {problem}. {fix}")


def is_audio_file(path: str | Path) -> bool:
    """True if the file name has one of the supported extensions (wav, flac, ogg, mp3)."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def _wav_missing_bytes(path: Path) -> int:
    """How many bytes of a RIFF/WAV ``data`` chunk its header promises but the file lacks.

    libsndfile silently shortens a truncated wav to what is present, so we read
    the chunk sizes ourselves. Returns 0 for complete (or non-RIFF) files.
    """
    import struct

    with open(path, "rb") as fh:
        header = fh.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return 0
        size = path.stat().st_size
        while True:
            chunk = fh.read(8)
            if len(chunk) < 8:
                return 0
            chunk_id, chunk_size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if chunk_id == b"data":
                # 0 and 0xFFFFFFFF mean "unknown" (streamed writers); trust the file then
                if chunk_size in (0, 0xFFFFFFFF):
                    return 0
                return max(0, fh.tell() + chunk_size - size)
            fh.seek(chunk_size + (chunk_size & 1), 1)


@contextlib.contextmanager
def _native_stderr_silenced():
    """Silence what the decoders' C code prints on stderr (mpg123's "Illegal Audio-MPEG-Header", ...):
    musiclib reports a bad file in one line of its own."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to silence
        yield
        return
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def read_info(path: str | Path) -> sf._SoundFileInfo:
    """Header of an audio file (sample rate, channels, frames) without decoding it.

    Raises:
        FileNotFoundError: the path does not exist.
        AudioFileError: the file exists but is not readable audio.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file. Check the path (relative paths start at {Path.cwd()}).")
    if path.is_dir():
        raise AudioFileError(path, "is a folder, not an audio file", "Pass a file, or use `musiclib prepare` for folders")
    if path.stat().st_size == 0:
        raise AudioFileError(path, "is empty (0 bytes)", "Re-export or re-download the file")
    try:
        with _native_stderr_silenced():
            info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError) as err:
        raise AudioFileError(
            path,
            f"is not readable audio ({str(err).strip() or type(err).__name__})",
            f"Supported formats are {', '.join(AUDIO_EXTENSIONS)}; convert it, e.g. `ffmpeg -i '{path.name}' out.wav`",
        ) from err
    low, high = SAMPLE_RATE_RANGE
    if not low <= info.samplerate <= high:
        raise AudioFileError(path, f"declares a sample rate of {info.samplerate} Hz, outside {low}-{high} Hz",
                             "The header is damaged or this is not a recording; re-export it")
    if info.channels < 1:
        raise AudioFileError(path, "declares no channels", "The header is damaged; re-export it")
    if info.frames > MAX_SECONDS * info.samplerate:
        raise AudioFileError(path, f"declares {info.frames / info.samplerate / 3600:.1f} hours of audio, more than "
                             f"{MAX_SECONDS // 3600} hours", "Split it into shorter files, or re-export it if the header is damaged")
    return info


def load(path: str | Path, sample_rate: int | None = None, mono: bool = True, normalize: bool = False):
    """Load an audio file as float32.

    Args:
        path: A wav, flac, ogg or mp3 file.
        sample_rate: Resample to this rate (Hz); ``None`` keeps the file's rate.
        mono: Average the channels into one.
        normalize: Scale so the peak absolute value is 1.

    Returns:
        ``(y, sr)``: ``y`` is ``(samples,)`` if mono else ``(channels, samples)``; ``sr`` in Hz.

    Raises:
        FileNotFoundError, AudioFileError: the message names the file and the fix.
    """
    path = Path(path)
    info = read_info(path)
    try:
        with _native_stderr_silenced():
            data, sr = _read_blocks(path)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError) as err:
        raise AudioFileError(path, f"could not be decoded ({str(err).strip() or type(err).__name__})",
                             "The file may be damaged; re-export it") from err
    y = data.T  # (channels, samples)
    if y.shape[1] == 0:
        raise AudioFileError(path, "contains no samples", "Use a file with at least some audio in it")
    missing = _wav_missing_bytes(path) if info.format == "WAV" else 0
    # FLAC headers state the exact length, so a short decode also means a cut file.
    if missing or (info.format == "FLAC" and 0 < info.frames and y.shape[1] < info.frames):
        raise AudioFileError(
            path,
            f"is truncated: the header promises more audio than the file holds (read {y.shape[1]} samples)",
            "Re-export or re-download the file",
        )
    if not np.all(np.isfinite(y)):
        raise AudioFileError(path, "contains NaN or infinite sample values", "Re-export it as 16-bit PCM wav")
    if mono:
        y = to_mono(y)
    if sample_rate is not None and sample_rate != sr:
        y = resample(y, sr, sample_rate)
        sr = sample_rate
    if normalize:
        y = normalize_peak(y)
    return y.astype(np.float32, copy=False), int(sr)


def _read_blocks(path: Path, block_frames: int = 1 << 18) -> tuple[np.ndarray, int]:
    """Decode block by block, so that memory follows the audio actually present, not what a header claims."""
    blocks = []
    with sf.SoundFile(str(path)) as fh:
        limit = MAX_SECONDS * fh.samplerate
        read = 0
        while True:
            block = fh.read(block_frames, dtype="float32", always_2d=True)
            if not len(block):
                break
            read += len(block)
            if read > limit:
                raise ValueError(f"more than {MAX_SECONDS // 3600} hours of audio")
            blocks.append(block)
        sr = fh.samplerate
    data = np.concatenate(blocks) if blocks else np.zeros((0, 1), dtype=np.float32)
    return data, sr


def to_mono(y: np.ndarray) -> np.ndarray:
    """Average ``(channels, samples)`` into ``(samples,)``; a 1-D input is returned as is."""
    y = np.asarray(y)
    if y.ndim == 1:
        return y
    if y.ndim != 2:
        raise ValueError(f"expected (channels, samples) or (samples,), got shape {y.shape}")
    return y.mean(axis=0)


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling (librosa's soxr) along the last axis."""
    import librosa

    if orig_sr == target_sr:
        return y
    return librosa.resample(np.asarray(y, dtype=np.float32), orig_sr=orig_sr, target_sr=target_sr)


def normalize_peak(y: np.ndarray, peak: float = 1.0) -> np.ndarray:
    """Scale so that ``max(|y|) == peak``. Silence is returned unchanged."""
    top = float(np.max(np.abs(y))) if y.size else 0.0
    if top == 0.0:
        return y
    return (y * (peak / top)).astype(np.float32)


def int16_to_float(samples: np.ndarray) -> np.ndarray:
    """16-bit PCM integers to float32 in [-1, 1): divide by 2**15 (the seeds used 32767)."""
    return np.asarray(samples, dtype=np.float32) / 32768.0


def float_to_int16(y: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] to 16-bit PCM, clipping what lies outside."""
    return np.clip(np.round(np.asarray(y) * 32768.0), -32768, 32767).astype(np.int16)


def quantize(y: np.ndarray, bits: int) -> np.ndarray:
    """Round ``y`` in [-1, 1] to ``2**bits`` uniform levels (the effect of a lower bit depth)."""
    if not 1 <= bits <= 32:
        raise ValueError(f"bits must be in 1..32, got {bits}")
    levels = 2 ** (bits - 1)
    return (np.clip(np.round(np.asarray(y) * levels), -levels, levels - 1) / levels).astype(np.float32)


WRITABLE_EXTENSIONS = (".wav", ".flac", ".ogg")


def check_output_path(path: str | Path) -> Path:
    """Refuse, before any work, an output file that :func:`save` could not write.

    Raises:
        ValueError: the extension is not a writable audio format, or the path is a folder.
    """
    path = Path(path)
    if path.suffix.lower() not in WRITABLE_EXTENSIONS:
        raise ValueError(f"--out {path}: name the file with one of {', '.join(WRITABLE_EXTENSIONS)} "
                         f"(it sets the format), e.g. {path.with_suffix('.wav').name}")
    if path.is_dir():
        raise ValueError(f"--out {path}: is a folder; give a file name such as {path / 'out.wav'}")
    return path


def save(path: str | Path, y: np.ndarray, sample_rate: int) -> Path:
    """Write float audio to ``path`` (format from the extension), atomically.

    The audio is written to a temporary file beside ``path`` and renamed, so an
    interrupted write never leaves a half-written file. Values are clipped to [-1, 1].

    Args:
        path: Destination; the parent folder is created.
        y: ``(samples,)`` or ``(channels, samples)``.
        sample_rate: Hz.
    """
    path = Path(path)
    y = np.asarray(y, dtype=np.float32)
    if not np.all(np.isfinite(y)):
        raise ValueError(f"refusing to write {path}: the audio contains NaN or infinite values")
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.clip(y, -1.0, 1.0)
    data = data.T if data.ndim == 2 else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        sf.write(tmp, data, int(sample_rate))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def play(y: np.ndarray, sample_rate: int) -> None:
    """Show an audio player in the notebook, wherever it is called (loops and widget callbacks too).

    No loudness normalisation, so quiet results sound quiet. Outside IPython it does nothing.
    """
    from IPython.display import display

    display(player(y, sample_rate))


def play_grid(rows: dict[str, list[np.ndarray]], sample_rate: int, column_titles: list[str] | None = None) -> None:
    """Show a table of players: one row per name, one player per clip (a listening grid to compare models by ear).

    Args:
        rows: ``name -> clips``, each clip ``(samples,)`` float audio.
        column_titles: Optional heading of each column.
    """
    from html import escape

    from IPython.display import HTML, display

    head = "".join(f"<th>{escape(title)}</th>" for title in [""] + list(column_titles or []))
    body = "".join(f"<tr><th style='text-align:left'>{escape(name)}</th>"
                   + "".join(f"<td>{player(clip, sample_rate)._repr_html_()}</td>" for clip in clips) + "</tr>"
                   for name, clips in rows.items())
    display(HTML(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"))


def player(y: np.ndarray, sample_rate: int):
    """The IPython ``Audio`` object :func:`play` displays, for layouts that place it themselves."""
    from IPython.display import Audio

    y = np.clip(np.asarray(y, dtype=np.float32), -1.0, 1.0)
    return Audio(y, rate=int(sample_rate), normalize=False)
