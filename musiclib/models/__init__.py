"""The model registry: every model that `musiclib train` knows registers itself here.

A model is a :class:`ModelSpec`: how to build it, which arrays it trains on, its
loss, and how it generates audio. The CLI and the evaluation work for any
registered model.

Notebook: 05_data_pipeline.ipynb
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from musiclib import features
from musiclib.models.base import FAMILIES, LogMel, Model, Settings, render

REGISTRY: dict[str, "ModelSpec"] = {}


@dataclasses.dataclass(frozen=True)
class Upstream:
    """A model another model is built on, trained first.

    Attributes:
        model: The registered name of the model trained first (e.g. ``"vq"``).
        setting: The setting that names a trained run of it to reuse (empty: train one into ``RUN_DIR/<setting>``);
            the setting ``<setting>_steps`` says how long that training is.
        keys: Its settings that building the model on top needs, recorded as ``<setting>_config``.
        budget_share: The share of a time budget (``musiclib train --minutes``) it trains for, when trained here.
    """

    model: str
    setting: str
    keys: tuple[str, ...]
    budget_share: float = 0.5


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
            held-out scores (e.g. one-step error against a baseline) for ``evaluate``. A conditional
            model's include ``pitch_accuracy``: ``{"within_tolerance", "within_tolerance_unheard"}``.
        vocoder: The model renders given audio's log-mel instead of making new music;
            its ``prime`` is the held-out audio to re-synthesise.
        accepts_vocoder: ``generate`` takes a ``vocoder=`` callable (log-mel → audio) to use
            instead of Griffin-Lim.
        modes: Generation modes ``generate`` accepts as ``mode=`` (the first is the default);
            ``"continue"`` starts from held-out audio.
        family: One of :data:`FAMILIES` (how the course groups models).
        gallery: What to listen for, for the one model that represents its family in ``musiclib demo``'s
            gallery (``""``: not in the gallery).
        data: The bundled set (:data:`musiclib.datasets.bundled.SETS`) ``musiclib compare`` trains it on.
        check_config: Optional ``(model_config) -> None`` that refuses settings the type check cannot judge (a
            value out of range, a name not on a list) with a ``ValueError``, before anything is trained.
        upstream: Optional :class:`Upstream`: the model this one works on the output of (a token prior on a
            tokenizer's tokens, a flow on an autoencoder's codes), trained or checked before ``training_arrays``
            (:func:`musiclib.runs.upstream_run`).
        step_settings: Settings counted in training steps that belong to the run's length (e.g. a warm-up): a run
            planned by a time budget scales their recipe values with its step count.
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
    family: str = ""
    gallery: str = ""
    data: str = "chorales"
    check_config: Callable | None = None
    upstream: Upstream | None = None
    step_settings: tuple[str, ...] = ()
    model_class: type | None = None

    def __post_init__(self):
        from musiclib.datasets.bundled import SETS

        if self.family not in FAMILIES:
            raise ValueError(f"model {self.name!r}: family must be one of {FAMILIES}, got {self.family!r}")
        if self.data not in SETS:
            raise ValueError(f"model {self.name!r}: data must be a bundled set, one of {SETS}, got {self.data!r}")

    @property
    def conditional(self) -> bool:
        """Generates what it is asked for (a pitch, an instrument): scored on whether it obeys."""
        return "condition" in self.modes


# Settings the shared training loop reads from any model's configuration, with their types.
TRAINING_SETTINGS = {"steps": int, "batch_size": int, "learning_rate": float, "optimizer": str, "betas": list,
                     "checkpoint_every": int, "learning_rate_schedule": list}


def settings_schema(spec: ModelSpec) -> dict[str, type]:
    """``setting → type`` a model accepts: the keys of its default configuration (typed by their
    default values) and the training loop's settings."""
    schema = dict(TRAINING_SETTINGS)
    for fast in (True, False):
        schema.update({key: type(value) for key, value in spec.default_config(fast).items()})
    return schema


def _fits(value, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and abs(value) != float("inf")
    if kind in (list, tuple):
        return isinstance(value, (list, tuple))
    return isinstance(value, kind)


def check_settings(spec: ModelSpec, overrides: dict) -> dict:
    """Refuse settings ``spec`` does not have, or of the wrong type, with the list of valid ones.

    Returns:
        ``overrides`` unchanged when every key and type is right.

    Raises:
        ValueError: naming the first bad key, what it should be, and the valid keys.
    """
    if spec.model_class is not None:
        spec.model_class.Settings.from_dict(overrides, spec.name)
        return overrides
    if not isinstance(overrides, dict):
        raise ValueError(f"settings must be a JSON object such as {{\"learning_rate\": 0.0005}}, got {overrides!r}")
    schema = settings_schema(spec)
    for key, value in overrides.items():
        if key not in schema:
            raise ValueError(f"{spec.name} has no setting {key!r}; valid settings: {', '.join(sorted(schema))}")
        if not _fits(value, schema[key]):
            raise ValueError(f"{spec.name} setting {key!r} must be {'a number' if schema[key] is float else schema[key].__name__}"
                             f", got {value!r}")
    return overrides


def register(entry):
    """Add a model to the registry (a :class:`Model` subclass: use as a class decorator)."""
    spec = spec_from_class(entry) if isinstance(entry, type) else entry
    if spec.name in REGISTRY:
        raise ValueError(f"model {spec.name!r} is already registered")
    REGISTRY[spec.name] = spec
    return entry


def spec_from_class(cls: type[Model]) -> ModelSpec:
    """The registry entry of a model written in the contract (:mod:`musiclib.models.base`), while the pipeline still
    reads entries: transitional, until every model is a :class:`Model`."""
    def settings(model_config: dict) -> Settings:
        return cls.Settings.from_dict(model_config, cls.name)

    def build(model_config: dict, audio_config):
        return cls(settings(model_config), audio_config)

    def training_arrays(dataset, model_config: dict):
        settled = cls.settle(settings(model_config), dataset)
        model_config.update(settled.to_dict())
        model = cls(settled, dataset.config)
        model.fit(dataset)
        return model.features(dataset, "train"), model.features(dataset, "val")

    def loss(model, batch, phase: str = ""):
        return model.loss(batch, phase)

    def generate(model, n, seconds, seed, audio_config, prime=None, vocoder=None, mode=None, **labels):
        if cls.family == "vocoder":  # an inverter re-synthesises the held-out audio it is given, from its log-mel
            log_mel = np.stack([features.log_mel(p, audio_config) for p in prime])
            return render(LogMel(log_mel, audio_config), prime.shape[1], model, seed)
        if mode == "condition":
            made = model.conditioned(n, seconds, seed, **labels)
        elif mode == "continue" or (mode is None and "autonomous" not in cls.modes()):
            if prime is None:
                raise ValueError(f"{cls.name}: mode 'continue' needs audio to start from")
            made = model.continuation(prime, seconds, seed)
        else:
            made = model.sample(n, seconds, seed)
        return render(made, int(round(seconds * audio_config.sample_rate)), vocoder, seed)

    modes = cls.modes()
    return ModelSpec(cls.name, cls.description, lambda fast: cls.Settings.recipe(fast).to_dict(), build, training_arrays,
                     loss, generate, prime_seconds=cls.prime_seconds,
                     prepare=lambda model, dataset, model_config: model.fit(dataset),
                     heldout_scores=lambda model, dataset, model_config: model.heldout_scores(dataset),
                     after_training=(None if cls.finish is Model.finish
                                     else lambda model, dataset, model_config: model.finish(dataset)),
                     vocoder=cls.family == "vocoder", accepts_vocoder=cls.output == "log-mel",
                     modes=modes if len(modes) > 1 else (), family=cls.family, gallery=cls.gallery, data=cls.data,
                     check_config=lambda model_config: settings(model_config).check(),
                     step_settings=cls.Settings.scales_with_steps, model_class=cls)


def get(name: str) -> ModelSpec:
    _load_builtin_models()
    if name not in REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def names() -> list[str]:
    _load_builtin_models()
    return sorted(REGISTRY)


def generative_models() -> list[ModelSpec]:
    """Every model that makes new audio (all but the vocoders, which render given audio), in :data:`FAMILIES` order."""
    _load_builtin_models()
    return sorted((spec for spec in REGISTRY.values() if not spec.vocoder), key=lambda spec: (FAMILIES.index(spec.family), spec.name))


def gallery_models() -> list[ModelSpec]:
    """The models that represent their family in the demo's gallery, in :data:`FAMILIES` order."""
    _load_builtin_models()
    chosen = [spec for spec in REGISTRY.values() if spec.gallery]
    return sorted(chosen, key=lambda spec: (FAMILIES.index(spec.family), spec.name))


def _load_builtin_models() -> None:
    from musiclib.models import (dcgan, flow, gruv_lstm, melgan, sample_lstm, spectral_noise,  # noqa: F401
                                 token_transformer, vae, vq)  # (they register themselves)


__all__ = ["FAMILIES", "LogMel", "Model", "Settings", "render", "ModelSpec", "Upstream", "REGISTRY", "register", "get", "names", "generative_models", "gallery_models", "check_settings", "settings_schema"]
