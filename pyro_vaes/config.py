"""Every setting of a fit, in one dataclass that round-trips through ``config.json`` (and YAML files), and the
one ``KEY=VALUE`` parser every command line option that takes them uses."""

from __future__ import annotations

import json
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

BACKENDS = ("torch", "svi")
#: the keys of a config.json written by pyro_vaes 0.1.0 (it had no "version")
V1_KEYS = frozenset(
    {
        "model",
        "guide",
        "objective",
        "data",
        "model_args",
        "guide_args",
        "objective_args",
        "data_args",
        "data_root",
        "steps",
        "batch_size",
        "lr",
        "aux_lr",
        "eval_every",
        "eval_batches",
        "checkpoint_every",
        "seed",
        "device",
        "backend",
        "out",
        "figures",
    }
)
#: the shortcut settings and the argument group each one fills: ``latent_dim=8`` (``pyro-vaes fit --latent-dim 8``) is
#: ``model_args={"latent_dim": 8}``; the command line and :func:`pyro_vaes.fit` take the same ones
SHORTCUTS: dict[str, str] = {
    "latent_dim": "model_args",
    "likelihood": "model_args",
    "beta": "objective_args",
    "num_particles": "objective_args",
}
#: the version of the config.json layout: 1 = pyro_vaes 0.1.0 (no "version" key), 2 = the contract of docs/design.md
CONFIG_VERSION = 2


@dataclass
class FitConfig:
    """Settings of one training run. Every field can come from the CLI or a JSON/YAML config file."""

    model: str = "vae"
    guide: str | None = None  # None: the model's default guide
    objective: str | None = None  # None: the model's default objective
    data: str = "shapes2d"
    model_args: dict[str, Any] = field(default_factory=dict)
    guide_args: dict[str, Any] = field(default_factory=dict)
    objective_args: dict[str, Any] = field(default_factory=dict)
    data_args: dict[str, Any] = field(default_factory=dict)
    data_root: str | None = None
    steps: int = 1000
    batch_size: int = 128
    lr: float = 1e-3
    aux_lr: float = 1e-4
    eval_every: int = 250
    eval_batches: int = 4
    checkpoint_every: int = 250
    seed: int = 0
    device: str = "cpu"
    backend: str = "torch"
    out: str | None = None
    figures: bool = True
    #: stop when the per-datum loss exceeds its running average by more than this many times the average's
    #: magnitude (plus one); 0 turns the check off (non-finite losses always stop training)
    divergence: float = 100.0
    version: int = CONFIG_VERSION

    def __post_init__(self) -> None:
        """Type-check every field against its declared type (ints stay ints, booleans are booleans)."""
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            setattr(self, f.name, coerce(getattr(self, f.name), hints[f.name], f.name))

    def validate(self) -> None:
        """Refuse impossible settings before anything is built."""
        for name in ("steps", "batch_size", "eval_every", "checkpoint_every", "eval_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0 or not self.aux_lr > 0:
            raise ValueError(f"learning rates must be > 0, got lr={self.lr}, aux_lr={self.aux_lr}")
        if not self.divergence >= 0:
            raise ValueError(f"divergence must be >= 0 (0 turns the check off), got {self.divergence}")
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; valid: {', '.join(BACKENDS)}")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"unknown device {self.device!r}; valid: cpu, cuda, cuda:N")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FitConfig:
        """The config of a mapping of fields and shortcuts (:data:`SHORTCUTS`, moved into their groups by
        :func:`apply_shortcuts`); an unknown key is refused, naming the valid ones."""
        d = apply_shortcuts(d)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"unknown config keys: {', '.join(unknown)}; valid keys: {', '.join(sorted(known))} "
                f"(and the shortcuts {', '.join(SHORTCUTS)})"
            )
        if "version" not in d and set(d) == V1_KEYS:  # a config.json written by 0.1.0
            return cls(**d, version=1)
        return cls(**d)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")


def apply_shortcuts(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` (:class:`FitConfig` fields and shortcuts) as a new dict with every shortcut moved into its
    argument group: ``{"latent_dim": 8}`` -> ``{"model_args": {"latent_dim": 8}}`` (a shortcut set to None counts as
    not given). A shortcut whose group gives the same argument another value is refused; ``settings`` is not
    changed."""
    out = dict(settings)
    for key, group in SHORTCUTS.items():
        if key not in out:
            continue
        value = out.pop(key)
        if value is None:
            continue
        args = out.get(group)
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise ValueError(f"{group}: expected a mapping of names to values, got {args!r}")
        if key in args and args[key] != value:
            raise ValueError(
                f"{key} is given twice with different values: {value!r} (the shortcut) and {args[key]!r} (in "
                f"{group}); give it once"
            )
        out[group] = {**args, key: value}
    return out


def read_config_file(path: str) -> dict[str, Any]:
    """Read a JSON or YAML config file into a dict of :class:`FitConfig` fields."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"config file {p} does not exist")
    if not p.is_file():
        raise IsADirectoryError(f"config file {p} is a folder; give a JSON or YAML file")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"config file {p} cannot be read ({type(err).__name__})") from None
    try:
        data = json.loads(text) if p.suffix == ".json" else (yaml.safe_load(text) or {})
    except (ValueError, yaml.YAMLError) as err:
        problem = " ".join(str(err).split())
        raise ValueError(
            f"config file {p} is not valid {'JSON' if p.suffix == '.json' else 'YAML'} ({problem})"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {p} must hold a mapping of settings, got {type(data).__name__}")
    return data


def coerce(value: Any, annotation: Any, where: str) -> Any:
    """``value`` checked against a type annotation (``int``, ``float``, ``bool``, ``str``, ``Optional``, ``Dict``,
    ``Sequence``, ``Any``): an integer stays an integer (an integral float becomes one), a number in quotes
    (YAML 1.1 reads ``1e-3`` as text) becomes a float, a boolean must be ``true`` or ``false``. Anything else is
    refused with a message naming ``where``."""
    if annotation is Any or annotation is None:
        return value
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(value, arg, where)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError(errors[0] if len(errors) == 1 else f"{where}: {value!r} is not a valid value")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{where}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and math.isfinite(value) and value == int(value):
            return int(value)
        raise ValueError(f"{where}: expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _FLOAT.match(value.strip()):
            return float(value)
        raise ValueError(f"{where}: expected a number, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"{where}: expected text, got {value!r}")
    if origin in (dict, dict) or annotation is dict:
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return dict(value)
        raise ValueError(f"{where}: expected a mapping of names to values, got {value!r}")
    if origin in (list, tuple, typing.Sequence, Sequence) or annotation in (list, tuple):
        if isinstance(value, (list, tuple)):
            return value
        raise ValueError(f"{where}: expected a list, got {value!r}")
    return value


def parse_assignments(items: Sequence[str] | None, flag: str) -> dict[str, Any]:
    """``["key=value", ...]`` -> dict, for every option that takes ``KEY=VALUE`` (``--model-arg``, ``--data-arg``,
    ``--set``, ...). Keys may use ``-`` for ``_``; values are read as YAML scalars or collections
    (``3`` -> 3, ``1e-3`` -> 0.001, ``true`` -> True, ``null`` -> None, ``[1, 2]`` -> [1, 2]; any other text,
    ``none`` included, stays a string)."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"{flag} expects KEY=VALUE, got {item!r}")
        out[key] = parse_value(value, f"{flag} {item!r}")
    return out


_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def parse_value(text: str, where: str) -> Any:
    """One ``VALUE`` read as YAML, with numbers such as ``1e-3`` read as floats (YAML 1.1 reads them as text)."""
    if not text.strip():
        return ""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        problem = str(err).splitlines()[0]
        raise ValueError(f"{where}: the value is not valid YAML ({problem}); quote it") from None
    if isinstance(value, str) and _FLOAT.match(value.strip()):
        return float(value)
    return value
