"""The model registry: every model that `musiclib train` knows registers itself here.

A model is a :class:`ModelSpec`: how to build it, which arrays it trains on, its
loss, and how it generates audio. The CLI and the evaluation work for any
registered model.

Notebook: 05_data_pipeline.ipynb
"""
from __future__ import annotations

import dataclasses
from typing import Callable

REGISTRY: dict[str, "ModelSpec"] = {}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the shared pipeline needs to know about one model.

    Attributes:
        name: The CLI name (``musiclib train NAME``).
        description: One line for ``--help``.
        default_config: ``fast -> dict`` of model hyper-parameters.
        build: ``(model_config, audio_config) -> torch.nn.Module``.
        training_arrays: ``(dataset, model_config) -> (train_array, val_array)``.
        loss: ``(model, batch) -> scalar tensor``.
        generate: ``(model, n, seconds, seed, audio_config, prime) -> (n, samples)`` float32 audio.
            ``prime`` is ``None`` or ``(n, prime_samples)`` held-out audio to continue; the
            result holds only the new audio, never the prime.
        prime_seconds: How much held-out audio a sequence model is primed with (0: none).
        prepare: Optional ``(model, dataset, model_config) -> None`` that stores data
            statistics (e.g. normalisation) in the model's buffers before training.
        after_training: Optional ``(model, dataset, model_config) -> None`` run when training
            ends, before the final checkpoint is written again: fits what the model learns
            from its trained state (e.g. a VAE's latent prior) into its buffers.
        heldout_scores: Optional ``(model, dataset, model_config) -> dict`` of model-specific
            held-out scores (e.g. one-step error against a baseline) for ``evaluate``.
        vocoder: The model renders given audio's log-mel instead of making new music;
            its ``prime`` is the held-out audio to re-synthesise.
        accepts_vocoder: ``generate`` takes a ``vocoder=`` callable (log-mel → audio) to use
            instead of Griffin-Lim.
        modes: Generation modes ``generate`` accepts as ``mode=`` (the first is the default);
            ``"continue"`` starts from held-out audio.
    """

    name: str
    description: str
    default_config: Callable[[bool], dict]
    build: Callable
    training_arrays: Callable
    loss: Callable
    generate: Callable
    prime_seconds: float = 0.0
    prepare: Callable | None = None
    heldout_scores: Callable | None = None
    after_training: Callable | None = None
    vocoder: bool = False
    accepts_vocoder: bool = False
    modes: tuple[str, ...] = ()


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in REGISTRY:
        raise ValueError(f"model {spec.name!r} is already registered")
    REGISTRY[spec.name] = spec
    return spec


def get(name: str) -> ModelSpec:
    _load_builtin_models()
    if name not in REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def names() -> list[str]:
    _load_builtin_models()
    return sorted(REGISTRY)


def _load_builtin_models() -> None:
    from musiclib.models import dcgan, gruv_lstm, melgan, sample_lstm, spectral_noise, vae  # noqa: F401  (they register themselves)


__all__ = ["ModelSpec", "REGISTRY", "register", "get", "names"]
