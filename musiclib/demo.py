"""`musiclib demo`: the whole course in one command, writing audio and pictures to a folder."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from musiclib import audio, dsp, features, signals
from musiclib.config import AudioConfig


def _fresh_run_dir(out: Path, name: str) -> Path:
    """The demo's own run folder ``out/name``, emptied: each demo trains from scratch, so a folder left by
    an earlier demo (perhaps on a bundled set an older musiclib built) is never resumed."""
    run_dir = out / name
    if (run_dir / "config.json").exists():
        shutil.rmtree(run_dir)
    return run_dir


def _save_figure(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def signal_path_demo(out: Path, config: AudioConfig) -> dict:
    """Sound → STFT → log-mel → back to sound with zero phase and with Griffin-Lim."""
    import matplotlib.pyplot as plt

    from musiclib import plot

    sr = config.sample_rate
    y = signals.chord(notes=(57, 61, 64, 69), seconds=2.0, sample_rate=sr)
    magnitude = features.magnitude(y, config)
    zero_phase = dsp.zero_phase_inversion(magnitude, hop_length=config.hop_length, length=len(y))
    griffin = features.magnitude_to_audio(magnitude, config, n_iter=32, length=len(y))
    from_mel = features.log_mel_to_audio(features.log_mel(y, config), config, n_iter=32, length=len(y))

    def convergence(sig):
        return dsp.spectral_convergence(magnitude, features.magnitude(sig, config))

    scores = {
        "zero_phase_spectral_convergence": convergence(zero_phase),
        "griffin_lim_32_spectral_convergence": convergence(griffin),
        "log_mel_griffin_lim_32_spectral_convergence": convergence(from_mel),
    }
    audio.save(out / "chord_original.wav", y, sr)
    audio.save(out / "chord_zero_phase.wav", audio.normalize_peak(zero_phase, 0.9), sr)
    audio.save(out / "chord_griffin_lim.wav", griffin, sr)
    audio.save(out / "chord_from_log_mel.wav", from_mel, sr)

    fig, axes = plt.subplots(2, 2, figsize=(12, 7))
    plot.waveform(y, sr, ax=axes[0, 0], title="chord: waveform")
    plot.spectrogram(dsp.amplitude_to_db(magnitude, ref=magnitude.max()), sr, config.hop_length, ax=axes[0, 1], title="|STFT| (dB)")
    plot.spectrogram(features.log_mel(y, config), sr, config.hop_length, ax=axes[1, 0], mel=True, title="log-mel", units="ln")
    names = ["zero phase", "Griffin-Lim 32", "log-mel → GL 32"]
    axes[1, 1].bar(names, [scores[k] for k in scores], color=["C3", "C2", "C0"])
    axes[1, 1].set(ylabel="spectral convergence (lower is better)", title="phase recovery")
    _save_figure(fig, out / "signal_path.png")
    return scores


def pipeline_demo(out: Path, config: AudioConfig) -> dict:
    """Bundled chorales → train the registered baseline → generate → evaluate against noise and real music."""
    import matplotlib.pyplot as plt

    from musiclib import plot, runs
    from musiclib.datasets import bundled

    chorales = bundled.chorales(config=config)
    excerpt = np.asarray(chorales.clips("test")[:6]).reshape(-1)
    audio.save(out / "chorale_heldout_excerpt.wav", excerpt, config.sample_rate)
    run = runs.train("spectral-noise", chorales.root, _fresh_run_dir(out, "run_spectral_noise"), progress=False)
    runs.generate(run, 4.0, out / "spectral_noise_generated.wav")
    scores = runs.evaluate(run, n_clips=16)

    fig, axes = plt.subplots(1, 2, figsize=(13, 3.5))
    plot.spectrogram(features.log_mel(excerpt, config), config.sample_rate, config.hop_length, ax=axes[0], mel=True, units="ln",
                     title="held-out chorale (log-mel)")
    names = ["held-out real", "spectral-noise model", "white noise"]
    values = [scores[k]["frechet_distance"] for k in ("heldout_real", "generated", "white_noise")]
    axes[1].bar(names, values, color=["C2", "C0", "C3"])
    axes[1].set(yscale="log", ylabel="Fréchet distance to training (log scale)", title="lower is closer to the music")
    _save_figure(fig, out / "evaluation.png")
    return {"dataset": str(chorales), **{f"frechet_{k}": scores[k]["frechet_distance"] for k in ("heldout_real", "generated", "white_noise")}}


def sequence_model_demo(out: Path, config: AudioConfig) -> dict:
    """A small GRUV LSTM on the short chorale set: free-running audio from a held-out prime, and its one-step scores."""
    import matplotlib.pyplot as plt

    from musiclib import plot, runs
    from musiclib.datasets import bundled
    from musiclib.models import gruv_lstm

    chorales = bundled.chorales(fast=True, config=config)
    run = runs.train("gruv", chorales.root, _fresh_run_dir(out, "run_gruv"), steps=300, progress=False)
    spec, model, _, run_config = runs.load(run)
    prime = runs.heldout_primes(chorales, spec, 1, seed=0)
    y, n_prime = gruv_lstm.continue_audio(model, prime, 8.0, run_config["model_config"], config.sample_rate)
    audio.save(out / "gruv_prime_then_generated.wav", y[0], config.sample_rate)
    scores = gruv_lstm.heldout_scores(model, chorales, run_config["model_config"])

    fig, axes = plt.subplots(1, 2, figsize=(13, 3.5), gridspec_kw={"width_ratios": [3, 1]})
    plot.spectrogram(features.log_mel(y[0], config), config.sample_rate, config.hop_length, ax=axes[0], mel=True, units="ln",
                     title="GRUV LSTM: held-out prime (left of the line), then free-running")
    axes[0].axvline(n_prime / config.sample_rate, color="w", lw=2)
    names = ["model", "persistence", "mean"]
    axes[1].bar(names, [scores[k] for k in ("one_step_mse", "persistence_mse", "mean_predictor_mse")], color=["C0", "C3", "C7"])
    axes[1].set(ylabel="held-out one-step MSE", title="next FFT block")
    _save_figure(fig, out / "gruv_lstm.png")
    return {"prime_seconds": n_prime / config.sample_rate, **{k: round(v, 4) for k, v in scores.items()}}


def run_demo(out: str | Path, config: AudioConfig | None = None) -> dict:
    """Run every demo step, write ``summary.json`` and return it."""
    from musiclib.plot import use_headless_backend_if_needed

    use_headless_backend_if_needed()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = config or AudioConfig()
    summary = {"audio_config": config.to_dict(), "steps": {}}
    steps = [("signal_path", signal_path_demo), ("data_and_baseline", pipeline_demo), ("sequence_model", sequence_model_demo)]
    for name, step in steps:
        start = time.perf_counter()
        print(f"[demo] {name} ...", flush=True)
        result = step(out, config)
        summary["steps"][name] = {"seconds": round(time.perf_counter() - start, 2), **result}
        print(f"[demo] {name} done in {summary['steps'][name]['seconds']} s: {json.dumps(result, default=float)}", flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    files = sorted(p.name for p in out.iterdir())
    print(f"[demo] wrote {len(files)} files to {out}: {', '.join(files)}")
    return summary
