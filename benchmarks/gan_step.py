"""Fixed DCGAN training speed: one training step (discriminator phase, then generator phase) with the
model's channels-last layout against the same model in the default contiguous layout, in one run.

The fast configuration (width 16, batch 32, one-second images) on random images; speed does not
depend on the data. Prints seconds per step (best of 3 runs of ``--steps`` steps) and the ratio.
The layout is chosen in ``dcgan.build``; this benchmark is why.

Usage: python benchmarks/gan_step.py [--steps 10] [--threads 2]
"""
import argparse

import torch

from musiclib import set_seed
from musiclib.config import AudioConfig
from musiclib.models import dcgan
from musiclib.training import make_optimizer
from musiclib.utils import torch_threads
from timing import best_time


def step_seconds(memory_format: torch.memory_format, steps: int) -> float:
    model_config = dcgan.default_config(fast=True)
    set_seed(0)
    model = dcgan.build(model_config, AudioConfig()).to(memory_format=memory_format)
    optimizers = {phase: make_optimizer("adam", model.phase_parameters(phase), model_config["learning_rate"], model_config["betas"])
                  for phase in model.phases}
    batch = torch.rand(model_config["batch_size"], AudioConfig().n_mels, dcgan.image_frames(model)) * 2 - 1

    def train():
        for _ in range(steps):
            for phase in model.phases:
                loss, _ = dcgan.loss(model, batch, phase)
                optimizers[phase].zero_grad()
                loss.backward()
                optimizers[phase].step()

    train()  # warm-up: oneDNN builds its kernels on the first call
    seconds, _ = best_time(train, repeat=3)
    return seconds / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    args = parser.parse_args()
    with torch_threads(args.threads):
        contiguous = step_seconds(torch.contiguous_format, args.steps)
        channels_last = step_seconds(torch.channels_last, args.steps)
    print(f"fixed DCGAN (fast), {args.threads} CPU threads, seconds per training step:")
    print(f"{'contiguous':>14}: {contiguous:.3f}")
    print(f"{'channels last':>14}: {channels_last:.3f}  ({contiguous / channels_last:.2f}x faster; what dcgan.build uses)")


if __name__ == "__main__":
    main()
