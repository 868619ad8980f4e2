"""The model contract: every model is one :class:`Model` subclass with typed :class:`Settings` and named parts.

A model file shows its parts in this order:

1. ``Settings``: a frozen dataclass; its defaults are the fast recipe, ``full()`` the long one, ``check()``
   refuses ranges the types cannot express.
2. ``__init__(settings, audio)``: the named networks (and buffers for data statistics).
3. ``fit(dataset)``: data statistics into buffers, before training.
4. ``features(dataset, split)``: the arrays a split trains (or validates) on.
5. ``loss(batch, phase)``: what the Trainer minimises (adversarial models: one loss per phase in ``phases``).
6. ``finish(dataset)``: what is fitted after training (e.g. a VAE's prior).
7. ``sample(n, seconds, seed)`` and, where the model can, ``continuation(prime, seconds, seed)``: audio, or a
   :class:`LogMel` that :func:`render` (the one inversion stage) turns into audio.
8. ``heldout_scores(dataset)``: the model's own held-out scores beside their baselines.

Generation modes follow from which of ``sample`` / ``continuation`` a class defines (:meth:`Model.modes`).

Notebook: 05_data_pipeline.ipynb
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import ClassVar

import numpy as np
import torch

from musiclib import features
from musiclib.config import AudioConfig


@dataclasses.dataclass(frozen=True)
class Settings:
    """A model's settings: the shared training loop's, which each model's subclass gives its own defaults.

    The defaults of a subclass are its fast recipe (the comparison table's); :meth:`full` gives the long one.
    ``checkpoint_every = 0`` writes four checkpoints.
    """

    steps: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    betas: tuple[float, float] = (0.9, 0.999)
    checkpoint_every: int = 0
    learning_rate_schedule: tuple = ()

    # Settings counted in training steps that belong to the run's length (a warm-up): a run planned by a time
    # budget scales their recipe values with its step count.
    scales_with_steps: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def full(cls) -> "Settings":
        """The long recipe (what a GPU or a patient CPU trains)."""
        return cls()

    @classmethod
    def recipe(cls, fast: bool) -> "Settings":
        return cls() if fast else cls.full()

    def check(self) -> None:
        """Refuse, with a ``ValueError`` naming the setting, values in range for the type but not for the model."""

    def to_dict(self) -> dict:
        """The settings as JSON values (tuples become lists), as ``config.json`` and checkpoints record them."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def names(cls) -> list[str]:
        return sorted(field.name for field in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, values: dict, model: str = "model") -> "Settings":
        """Settings from JSON values (a ``--set`` object, or a run's recorded settings), each checked against its type.

        Raises:
            ValueError: naming the first unknown setting (with the valid ones) or the first value of the wrong type.
        """
        if not isinstance(values, dict):
            raise ValueError(f"settings must be a JSON object such as {{\"learning_rate\": 0.0005}}, got {values!r}")
        hints = typing.get_type_hints(cls)
        known = {field.name for field in dataclasses.fields(cls)}
        parsed = {}
        for key, value in values.items():
            if key not in known:
                raise ValueError(f"{model} has no setting {key!r}; valid settings: {', '.join(cls.names())}")
            parsed[key] = _parse(value, hints[key], f"{model} setting {key!r}")
        return cls(**parsed)

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)


def _parse(value, kind, where: str):
    """``value`` as ``kind`` (JSON lists become tuples), or a ``ValueError`` saying what it must be."""
    options = typing.get_args(kind) if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union else (kind,)
    for option in options:
        if option is type(None) and value is None:
            return None
        origin = typing.get_origin(option) or option
        if origin is bool and isinstance(value, bool):
            return value
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if origin is float and isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
            return float(value)
        if origin is str and isinstance(value, str):
            return value
        if origin in (tuple, list) and isinstance(value, (list, tuple)):
            return tuple(tuple(v) if isinstance(v, list) else v for v in value)
        if origin is dict and isinstance(value, dict):
            return value
        if dataclasses.is_dataclass(origin) and isinstance(value, (dict, origin)):  # an upstream model's settings, nested
            return value if isinstance(value, origin) else origin.from_dict(value, where)
    names = [{float: "a number", type(None): "null"}.get(typing.get_origin(o) or o, (typing.get_origin(o) or o).__name__)
             for o in options]
    raise ValueError(f"{where} must be {' or '.join(names)}, got {value!r}")


@dataclasses.dataclass
class LogMel:
    """What a spectrogram model makes; :func:`render` turns it into audio.

    Attributes:
        values: ``(n, n_mels, frames)`` natural-log mel magnitudes.
        config: The features they are in (a model's own AudioConfig, or the one its images were made in).
        start: Samples of the rendered audio to drop first (a continuation decoded together with its prime).
    """

    values: np.ndarray
    config: AudioConfig
    start: int = 0


def render(made, n_samples: int, inverter: "Model | None" = None, seed: int = 0) -> np.ndarray:
    """The one inversion stage: ``(n, n_samples)`` float32 audio from what a model made.

    Audio passes through (cut to ``n_samples``). A :class:`LogMel` is inverted by Griffin-Lim (32 iterations, every
    frame: a centred STFT of ``L`` samples has ``L // hop + 1`` frames, so ``n_samples`` itself is the length when
    it gives exactly the frames there are), or by ``inverter``: a trained inverter model (the MelGAN vocoder) whose
    ``audio`` config must be the log-mel's.

    Raises:
        ValueError: the inverter was trained on other features than the log-mel is in.
    """
    if not isinstance(made, LogMel):
        return np.asarray(made, np.float32)[:, :n_samples]
    values, config = np.asarray(made.values, np.float32), made.config
    end = made.start + n_samples
    if inverter is not None:
        if inverter.audio != config:
            raise ValueError(f"the inverter was trained on features {inverter.audio}, but these log-mel spectrograms are in "
                             f"{config}; use Griffin-Lim, or an inverter trained on data with these features")
        y = inverter.invert(values)
    else:
        total, hop = values.shape[-1], config.hop_length
        length = end if (total - 1) * hop < end < total * hop else (total - 1) * hop
        y = features.log_mel_to_audio(values, config, n_iter=32, seed=seed, length=length)
    return np.asarray(y, np.float32)[:, made.start : end]


@dataclasses.dataclass(frozen=True)
class Upstream:
    """The model another model is built on (a token prior's tokenizer, a latent flow's autoencoder), trained first.

    Four settings of the model built on it go with it, named after ``setting``: ``<setting>`` names a trained run to
    reuse (empty: train one into ``RUN_DIR/<setting>``), ``<setting>_steps`` how long that training is,
    ``<setting>_run`` records the run used and ``<setting>_config`` its settings (which build its shell in a checkpoint).

    Attributes:
        model: The upstream model's class.
        setting: The name the settings above start with.
        budget_share: The share of a time budget (``musiclib train --minutes``) it trains for, when trained here.
        data: A bundled set it always learns from, whatever the model built on it trains on (a transcriber learns from
            music whose notes are known). Such a run is trained once per machine into the cache and shared
            (:func:`musiclib.runs.upstream_run`); empty: it trains on the same data, into the run folder.
    """

    model: type["Model"]
    setting: str
    budget_share: float = 0.5
    data: str = ""

    def given_run(self, settings: Settings) -> str:
        return getattr(settings, self.setting)

    def steps(self, settings: Settings) -> int:
        return getattr(settings, f"{self.setting}_steps")

    def settings_of(self, settings: Settings) -> Settings:
        """The upstream model's settings recorded in (or asked for by) the settings of the model built on it."""
        return getattr(settings, f"{self.setting}_config")

    def overrides(self, settings: Settings) -> dict:
        """The upstream run's settings as ``train`` overrides, its steps left out (they are given on their own)."""
        return {key: value for key, value in self.settings_of(settings).to_dict().items() if key != "steps"}

    def recorded(self, run: str, upstream_settings: Settings, steps: int | None = None) -> dict:
        """The settings that record the upstream run used (and its steps, when a time budget chose them)."""
        return {f"{self.setting}_run": run, f"{self.setting}_config": upstream_settings,
                **({} if steps is None else {f"{self.setting}_steps": steps})}


FAMILIES = ("baseline", "sequence", "gan", "autoencoder", "latent", "notes", "vocoder")
"""How the course groups models, in the order the demo's gallery shows them.
"latent": compress the audio (a tokenizer, an autoencoder), then model the compressed form.
"notes": transcribe the audio into notes, model the notes, play them back."""


class Model(torch.nn.Module):
    """The base of every model: the parts the shared pipeline calls, in the order a model file defines them.

    Class attributes say what the model is (``name``, ``description``, ``family``, the bundled ``data`` it is
    compared on, ``gallery`` text for the demo page), what it makes (``output``: ``"audio"``, or ``"log-mel"`` that
    :func:`render` inverts), how it is primed (``prime_seconds`` of held-out audio that
    ``sample`` continues), for adversarial models its training ``phases``, and the ``upstream`` model it is built on:
    that model's constructor takes the trained upstream model as a third argument, which :mod:`musiclib.runs` trains or
    loads and hands in.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    family: ClassVar[str]
    Settings: ClassVar[type[Settings]] = Settings
    data: ClassVar[str] = "chorales"
    gallery: ClassVar[str] = ""
    output: ClassVar[str] = "audio"
    prime_seconds: ClassVar[float] = 0.0
    phases: ClassVar[tuple[str, ...]] = ()
    upstream: ClassVar[Upstream | None] = None

    def __init__(self, settings: Settings, audio: AudioConfig):
        super().__init__()
        if not isinstance(settings, type(self).Settings):
            raise TypeError(f"{self.name} takes {type(self).Settings.__qualname__}, got {type(settings).__qualname__}")
        settings.check()
        self.settings, self.audio = settings, audio

    @property
    def log_mel_audio(self) -> AudioConfig:
        """The features the log-mel it makes is in (an inverter must have been trained on them)."""
        return self.audio

    @classmethod
    def settle(cls, settings: Settings, dataset) -> Settings:
        """The settings with what the data decides filled in before building (e.g. a conditional model's labels)."""
        return settings

    def fit(self, dataset) -> None:
        """Store data statistics (e.g. a normaliser) in buffers, before training."""

    def features(self, dataset, split: str):
        """The array (or tuple of arrays of equal length) ``split`` trains or validates on; ``None`` for none."""
        raise NotImplementedError

    def loss(self, batch, phase: str = ""):
        """A scalar tensor, or ``(tensor, logs)`` with a dict of floats to average into the history."""
        raise NotImplementedError

    def finish(self, dataset) -> None:
        """Fit what is learnt from the trained model (e.g. a latent prior) into buffers, after training."""

    def sample(self, n: int, seconds: float, seed: int):
        """``n`` new clips of ``seconds`` from nothing: ``(n, samples)`` audio, or a :class:`LogMel`."""
        raise NotImplementedError

    def continuation(self, prime: np.ndarray, seconds: float, seed: int):
        """``seconds`` that follow each row of ``prime`` ``(n, samples)``: audio, or a :class:`LogMel`, of the new part only.

        A model that only continues (``prime_seconds > 0``, no ``sample``) is always given ``prime_seconds`` of held-out audio.
        """
        raise NotImplementedError

    def conditioned(self, n: int, seconds: float, seed: int, **labels):
        """``n`` clips of what ``labels`` ask for (e.g. ``pitch=60, instrument="flute"``; random where not given)."""
        raise NotImplementedError

    def round_trip(self, clips: np.ndarray):
        """Held-out audio ``(n, samples)`` into the representation the model generates in, and back out: audio, or a
        :class:`LogMel`. Its scores are the model's ceiling (no prior on this representation can sound better)."""
        raise NotImplementedError

    @classmethod
    def has_round_trip(cls) -> bool:
        """Whether the class defines :meth:`round_trip` (a ceiling row of the comparison)."""
        return cls.round_trip is not Model.round_trip

    def heldout_scores(self, dataset) -> dict:
        return {}

    def phase_parameters(self, phase: str):
        """The parameters ``phase``'s optimiser steps (every parameter for a one-phase model)."""
        return self.parameters()

    def active_phases(self, step: int) -> tuple[str, ...]:
        """The phases that run at ``step`` (e.g. a warm-up before the adversarial game starts)."""
        return self.phases

    def phase_learning_rate(self, phase: str, learning_rate: float) -> float:
        """``phase``'s step size, given the run's ``learning_rate``."""
        return learning_rate

    @classmethod
    def fits_after_training(cls) -> bool:
        """Whether the class defines :meth:`finish` (the run's last checkpoint is then written again after it)."""
        return cls.finish is not Model.finish

    MODES: ClassVar[tuple[str, ...]] = ("autonomous", "continue", "condition")
    """Every generation mode, each the name of one method: ``sample``, ``continuation``, ``conditioned``."""

    @classmethod
    def modes(cls) -> tuple[str, ...]:
        """The generation modes the class defines, in :data:`MODES` order."""
        defined = {"autonomous": cls.sample is not Model.sample, "continue": cls.continuation is not Model.continuation,
                   "condition": cls.conditioned is not Model.conditioned}
        return tuple(mode for mode, is_defined in defined.items() if is_defined)


def make_audio(model: Model, n: int, seconds: float, seed: int, prime: np.ndarray | None = None, mode: str | None = None,
               inverter: Model | None = None, **labels) -> np.ndarray:
    """``(n, samples)`` float32 audio from a model: the one way from any model to sound.

    - ``mode="condition"``: :meth:`Model.conditioned` with ``labels``;
    - ``mode="continue"``, or a model that only continues: :meth:`Model.continuation` of ``prime`` (the new part only);
    - otherwise :meth:`Model.sample`;
    - a vocoder re-synthesises ``prime`` from its log-mel (it is the inverter).

    What the model makes goes through :func:`render` (Griffin-Lim or ``inverter`` for a :class:`LogMel`).
    ``mode="round-trip"``: ``prime`` through the model's representation and back (:meth:`Model.round_trip`).
    """
    n_samples = int(round(seconds * model.audio.sample_rate))
    if mode == "round-trip":
        return render(model.round_trip(np.asarray(prime)), prime.shape[1], inverter, seed)
    if mode is not None and mode not in model.modes():
        raise ValueError(f"{model.name} generates in modes {list(model.modes())}, not {mode!r}")
    if model.family == "vocoder":
        made = LogMel(np.stack([features.log_mel(np.asarray(p), model.audio) for p in prime]), model.audio)
        n_samples, inverter = prime.shape[1], model
    elif mode == "condition":
        made = model.conditioned(n, seconds, seed, **labels)
    elif mode == "continue" or "autonomous" not in model.modes():
        if prime is None:
            raise ValueError(f"{model.name} continues audio: give it a prime (held-out audio), as `musiclib generate` does")
        made = model.continuation(np.asarray(prime), seconds, seed)
    else:
        made = model.sample(n, seconds, seed)
    return render(made, n_samples, inverter, seed)
