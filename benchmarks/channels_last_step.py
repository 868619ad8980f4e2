"""Training speed of the convolutional spectrogram models in channels-last layout against the default
contiguous layout, in one run: the fixed DCGAN (a discriminator phase, then a generator phase) and the VAE.

Each model's fast configuration on random images (speed does not depend on the data). Prints seconds per
step (best of 3 runs of ``--steps`` steps) and the ratio. the ``DCGAN`` and ``VAE`` classes choose the
layout; this benchmark is why.

Usage: python benchmarks/channels_last_step.py [--steps 10] [--threads 2]
"""
import argparse

import torch

from musiclib import set_seed
from musiclib.config import AudioConfig
from musiclib.models import dcgan, vae
from musiclib.training import make_optimizer
from musiclib.utils import torch_threads
from timing import best_time


def _dcgan():
    """The GAN trains in two phases, one optimiser each; ``(model, config, {phase: parameters}, loss of a phase)``."""
    model = dcgan.DCGAN(dcgan.DCGAN.Settings(), AudioConfig())
    batch = torch.rand(model.settings.batch_size, AudioConfig().n_mels, model.frames) * 2 - 1
    phases = {phase: list(model.phase_parameters(phase)) for phase in model.phases}
    return model, model.settings.to_dict(), phases, lambda phase: model.loss(batch, phase)[0]


def _vae():
    """The VAE trains in one phase."""
    model = vae.VAE(vae.VAE.Settings(), AudioConfig()).train()
    batch = torch.rand(model.settings.batch_size, AudioConfig().n_mels, vae.FRAMES) * 2 - 1
    return model, model.settings.to_dict(), {"train": list(model.parameters())}, lambda phase: model.loss(batch)


MODELS = {"fixed DCGAN": _dcgan, "VAE": _vae}


def step_seconds(build, memory_format: torch.memory_format, steps: int) -> float:
    set_seed(0)
    model, model_config, phases, loss_of = build()
    model.to(memory_format=memory_format)  # in place: the parameter lists above stay the model's own
    optimizers = {phase: make_optimizer("adam", parameters, model_config["learning_rate"], model_config.get("betas", [0.9, 0.999]))
                  for phase, parameters in phases.items()}

    def train():
        for _ in range(steps):
            for phase, optimizer in optimizers.items():
                loss = loss_of(phase)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

    train()  # warm-up: oneDNN builds its kernels on the first call
    seconds, _ = best_time(train, repeat=3)
    return seconds / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    args = parser.parse_args()
    print(f"{args.threads} CPU threads, seconds per training step (fast configurations):")
    with torch_threads(args.threads):
        for name, build in MODELS.items():
            contiguous = step_seconds(build, torch.contiguous_format, args.steps)
            channels_last = step_seconds(build, torch.channels_last, args.steps)
            print(f"{name:>12}: contiguous {contiguous:.3f}, channels last {channels_last:.3f} "
                  f"({contiguous / channels_last:.2f}x faster; what the model's build uses)")


if __name__ == "__main__":
    main()
