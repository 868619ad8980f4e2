"""The model registry: every model that `musiclib train` knows registers its class here.

A model is one :class:`~musiclib.models.base.Model` subclass (the contract: :mod:`musiclib.models.base`); the
decorator :func:`register` adds it. The CLI, the comparison table, the demo and quickstart work for any registered
model, and nothing else needs to know it.

Notebook: 05_data_pipeline.ipynb
"""
from __future__ import annotations

from musiclib.models.base import FAMILIES, LogMel, Model, Settings, Upstream, make_audio, render

REGISTRY: dict[str, type[Model]] = {}


def register(model: type[Model]) -> type[Model]:
    """Class decorator: add ``model`` to the registry under its ``name``, after checking what it declares."""
    from musiclib.datasets.bundled import SETS

    if not (isinstance(model, type) and issubclass(model, Model)):
        raise TypeError(f"register takes a Model subclass, got {model!r}")
    if model.name in REGISTRY:
        raise ValueError(f"model {model.name!r} is already registered")
    if model.family not in FAMILIES:
        raise ValueError(f"model {model.name!r}: family must be one of {FAMILIES}, got {model.family!r}")
    if model.data not in SETS:
        raise ValueError(f"model {model.name!r}: data must be a bundled set, one of {SETS}, got {model.data!r}")
    if model.output not in ("audio", "log-mel"):
        raise ValueError(f"model {model.name!r}: output must be 'audio' or 'log-mel', got {model.output!r}")
    REGISTRY[model.name] = model
    return model


def get(name: str) -> type[Model]:
    _load_builtin_models()
    if name not in REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def names() -> list[str]:
    _load_builtin_models()
    return sorted(REGISTRY)


def _ordered(chosen) -> list[type[Model]]:
    return sorted(chosen, key=lambda model: (FAMILIES.index(model.family), model.name))


def generative_models() -> list[type[Model]]:
    """Every model that makes new audio (all but the vocoders, which render given audio), in :data:`FAMILIES` order."""
    _load_builtin_models()
    return _ordered(model for model in REGISTRY.values() if model.family != "vocoder")


def gallery_models() -> list[type[Model]]:
    """The models that represent their family in the demo's gallery, in :data:`FAMILIES` order."""
    _load_builtin_models()
    return _ordered(model for model in REGISTRY.values() if model.gallery)


def vocoders() -> list[type[Model]]:
    """The registered inverters: log-mel in, audio out."""
    _load_builtin_models()
    return _ordered(model for model in REGISTRY.values() if model.family == "vocoder")


def _load_builtin_models() -> None:
    from musiclib.models import (codec, dcgan, flow, gruv_lstm, melgan, note_transformer, sample_lstm,  # noqa: F401
                                 spectral_noise, token_transformer, transcriber, vae, vq)  # (they register themselves)


__all__ = ["FAMILIES", "LogMel", "Model", "Settings", "Upstream", "make_audio", "render", "REGISTRY", "register", "get",
           "names", "generative_models", "gallery_models", "vocoders"]
