"""Vocoder inference speed: MelGAN (paper size and tiny size) against Griffin-Lim (32 iterations), in one run.

Renders ``--seconds`` of audio from the log-mel of real music and prints each inverter's
real-time factor (audio seconds per wall-clock second; best of 3) and its ratio to
Griffin-Lim's. Goals on 2 CPU cores: paper size ≥ 3× real time, tiny ≥ 15×; ≥ 500×
batched on a GPU. Speed does not depend on the weights, so the vocoders are freshly
initialised; on a CUDA machine the vocoders and Griffin-Lim also run there, 16 renders at once.

Usage: python benchmarks/vocoder_speed.py [--seconds 10] [--threads 2]
"""
import argparse

import numpy as np

from musiclib import dsp, features, set_seed
from musiclib.datasets import bundled
from musiclib.models import melgan
from musiclib.utils import get_device, torch_threads
from timing import best_time

GOALS = {"paper": 3.0, "tiny": 15.0}  # on 2 CPU threads
GPU_GOAL, GPU_BATCH = 500.0, 16


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch (the goals assume 2)")
    args = parser.parse_args()

    dataset = bundled.chorales()
    config = dataset.config
    clips = np.asarray(dataset.clips("test"))
    n_clips = int(np.ceil(args.seconds * config.sample_rate / clips.shape[1]))
    y = np.concatenate([clips[i % len(clips)] for i in range(n_clips)])[: int(args.seconds * config.sample_rate)]
    log_mel = features.log_mel(y, config)
    seconds = len(y) / config.sample_rate
    print(f"{seconds:.1f} s of music at {config.sample_rate} Hz, {log_mel.shape[1]} mel frames; {args.threads} CPU threads")

    with torch_threads(args.threads):
        t_gl, _ = best_time(lambda: features.log_mel_to_audio(log_mel, config, n_iter=32), repeat=3)
        rtf_gl = seconds / t_gl
        print(f"{'griffin-lim 32':>26}: {rtf_gl:7.1f}x real time")
        rows = [("paper", melgan.MelGAN.Settings.paper()), ("tiny", melgan.MelGAN.Settings.full())]
        for name, settings in rows:
            set_seed(0)
            model = melgan.MelGAN(settings, config).eval()
            model.vocode(log_mel[:, :32])  # warm-up
            t, _ = best_time(lambda: model.vocode(log_mel), repeat=3)
            rtf = seconds / t
            verdict = "meets" if rtf >= GOALS[name] else "MISSES"
            print(f"{name + ' melgan (cpu)':>26}: {rtf:7.1f}x real time, {rtf / rtf_gl:5.2f}x griffin-lim; "
                  f"{verdict} the {GOALS[name]:.0f}x goal")

    device = get_device()
    if device.type == "cuda":
        batch, label = np.stack([log_mel] * GPU_BATCH), f"(gpu, x{GPU_BATCH})"
        magnitude = features.log_mel_to_magnitude(batch, config)
        t_gl, _ = best_time(lambda: dsp.griffin_lim(magnitude, 32, hop_length=config.hop_length, center=config.center,
                                                    device=device.type), repeat=3)
        rtf_gl = GPU_BATCH * seconds / t_gl
        print(f"{'griffin-lim 32 ' + label:>26}: {rtf_gl:7.1f}x real time")
        for name, settings in rows:
            set_seed(0)
            model = melgan.MelGAN(settings, config).to(device).eval()
            model.vocode(batch[:, :, :32])  # warm-up; vocode returns numpy, so every timing includes the copy back
            t, _ = best_time(lambda: model.vocode(batch, batch_size=GPU_BATCH), repeat=3)
            rtf = GPU_BATCH * seconds / t
            verdict = "meets" if rtf >= GPU_GOAL else "MISSES"
            print(f"{name + ' melgan ' + label:>26}: {rtf:7.1f}x real time, {rtf / rtf_gl:5.2f}x griffin-lim; "
                  f"{verdict} the {GPU_GOAL:.0f}x goal")


if __name__ == "__main__":
    main()
