"""From a :class:`~pyro_vaes.config.FitConfig` to built components, with every check that needs no data first.

:func:`resolve_config` checks names, fills in the model's default guide and objective, refuses a guide or an
objective that does not fit the model (naming what does), and checks every component argument against the
component's signature — all before any data is read — and returns a new config (its argument is never changed).
:func:`build` then loads the data, checks what the model needs of it (labels, binary values), builds model, guide
and objective, and binds them; its :class:`Components` hold a new, resolved config (with what was chosen from the
data, such as the likelihood) and the notes saying what was chosen (:mod:`pyro_vaes.engine.notes`). Nothing here
prints. :func:`assemble` is :func:`build` for a config that is resolved already (a fit resolves it once).
"""

from __future__ import annotations

import copy
import inspect
import re
import typing
from dataclasses import dataclass, field, replace
from typing import Any

import pyro
import torch

from pyro_vaes.config import CONFIG_VERSION, FitConfig, coerce
from pyro_vaes.data import VAEData, load_dataset
from pyro_vaes.distributions import likelihoods
from pyro_vaes.engine import distributed
from pyro_vaes.engine.notes import Note
from pyro_vaes.registry import DATASETS, GUIDES, MODELS, OBJECTIVES, Registry, check_guide_fits, default_guide

#: constructor parameters filled in by the engine, never by the user
ENGINE_ARGS = {"self", "input_shape", "model", "root", "seed", "num_classes", "num_labels"}


def signature_params(obj: Any) -> list[str]:
    """The keyword arguments a registered component takes (those the engine fills in left out)."""
    return [
        n
        for n, p in inspect.signature(obj).parameters.items()
        if n not in ENGINE_ARGS and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def _type_hints(obj: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(obj.__init__ if isinstance(obj, type) else obj)
    except Exception:  # an annotation that cannot be resolved: no type check for that component
        return {}


def check_arguments(registry: Registry, name: str, args: dict[str, Any], option: str) -> None:
    """Refuse an argument the component does not take, naming the option, what it takes and any rename, and check
    each value against the component's annotation (``args`` gets the checked values: ints stay ints, ...)."""
    obj = registry.get(name)
    params = signature_params(obj)
    takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in inspect.signature(obj).parameters.values())
    renamed = getattr(obj, "renamed_args", {})
    hints = _type_hints(obj)
    for key in list(args):
        if key not in params and not takes_kwargs:
            hint = f" (renamed {renamed[key]!r})" if key in renamed else ""
            raise ValueError(
                f"{option} {key}: {registry.kind} {name!r} takes no argument {key!r}{hint}; "
                f"it takes: {', '.join(params) or 'nothing'}"
            )
        if key in hints:
            args[key] = coerce(args[key], hints[key], f"{option} {key}")


def build_component(registry: Registry, name: str, *args: Any, **kwargs: Any) -> Any:
    """Construct a registered component, turning bad keyword arguments into a clear error."""
    cls = registry.get(name)
    try:
        return cls(*args, **kwargs)
    except TypeError as err:
        raise ValueError(
            f"bad arguments for {registry.kind} {name!r}: {err}. It takes: "
            f"{', '.join(signature_params(cls)) or 'nothing'}"
        ) from None


def objective_incompatibility(objective: str, model: str, guide: str | None) -> str | None:
    """Why ``objective`` cannot fit ``model`` with ``guide``, or None."""
    guide_cls = GUIDES.get(guide) if guide is not None else None
    return OBJECTIVES.get(objective).incompatibility(model, MODELS.get(model), guide, guide_cls)


def objectives_for(model: str, guide: str | None) -> list[str]:
    """Every registered objective that fits ``model`` with ``guide``."""
    return [o for o in OBJECTIVES.names() if objective_incompatibility(o, model, guide) is None]


def migrate(config: FitConfig) -> FitConfig:
    """Bring a config.json written by an older version up to date (argument renames declared by the model)."""
    if config.version < CONFIG_VERSION:
        model_cls = MODELS.get(config.model)
        renamed = getattr(model_cls, "renamed_args", {})
        config.model_args = {
            **getattr(model_cls, "legacy_args", {}),
            **{renamed.get(k, k): v for k, v in config.model_args.items()},
        }
        config.version = CONFIG_VERSION
    return config


def resolve_config(config: FitConfig) -> FitConfig:
    """A new config: ``config`` migrated to the current layout, with the default guide and objective filled in and
    every name, setting and argument checked (no data loaded). ``config`` itself is not changed."""
    config = copy.deepcopy(config)
    config.validate()
    model_cls = MODELS.get(config.model)
    DATASETS.entry(config.data)
    migrate(config)
    if config.guide is None and model_cls.has_guide:
        config.guide = default_guide(config.model)
        if config.guide is None:
            raise ValueError(f"model {config.model!r} has no default guide; pass --guide")
    if config.guide is not None:
        if not model_cls.has_guide:
            raise ValueError(f"model {config.model!r} is trained without a guide; drop --guide")
        check_guide_fits(config.model, config.guide)
    if config.objective is None:
        guide_default = GUIDES.get(config.guide).default_objective if config.guide is not None else None
        config.objective = guide_default or model_cls.default_objective
    OBJECTIVES.entry(config.objective)
    why = objective_incompatibility(config.objective, config.model, config.guide)
    if why is not None:
        pair = f"model {config.model!r}" + (f" with guide {config.guide!r}" if config.guide else "")
        raise ValueError(
            f"objective {config.objective!r} does not fit {pair}: {why}. Objectives that fit: "
            f"{', '.join(objectives_for(config.model, config.guide)) or 'none'}"
        )
    check_arguments(MODELS, config.model, config.model_args, "--model-arg")
    if config.guide is not None:
        check_arguments(GUIDES, config.guide, config.guide_args, "--guide-arg")
    check_arguments(OBJECTIVES, config.objective, config.objective_args, "--objective-arg")
    check_arguments(DATASETS, config.data, config.data_args, "--data-arg")
    return config


def select_device(name: str) -> torch.device:
    """``--device name`` as a device; under torchrun ``cuda`` is the GPU of the rank's LOCAL_RANK. A name that is not
    cpu, cuda or cuda:N is refused in one line (torch's own error is a RuntimeError)."""
    if not isinstance(name, str) or not re.fullmatch(r"cpu|cuda(:\d+)?", name):
        raise ValueError(f"--device {name}: unknown device; valid: cpu, cuda, cuda:N")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name} was asked for but CUDA is not available on this machine")
    return distributed.select_device(name) or torch.device(name)


@dataclass
class Components:
    """Everything a fit or a loaded run holds: the resolved config they were built from and the notes saying what
    was chosen for the user while building them (e.g. the likelihood, from the data)."""

    config: FitConfig
    data: VAEData
    model: Any
    guide: Any
    objective: Any
    device: torch.device
    notes: list[str] = field(default_factory=list)


def label_args(model_cls: type, data: VAEData, model_args: dict[str, Any]) -> dict[str, Any]:
    """The label sizes a label-conditioned model is built with, read from the data unless given."""
    if model_cls.labels is None:
        return {}
    kind, size = data.label_kind()
    if kind != model_cls.labels:
        need = {"class": "one integer class per example", "binary": "0/1 labels, one column per attribute"}
        raise ValueError(
            f"model {model_cls.__name__} needs {need[model_cls.labels]} (labels={model_cls.labels!r}), "
            f"but dataset {data.name!r} has " + ("no labels" if kind is None else f"{kind} labels")
        )
    key = "num_classes" if kind == "class" else "num_labels"
    return {} if key in model_args else {key: size}


def resolve_likelihood(model_cls: type, data: VAEData, model_args: dict[str, Any]) -> tuple[dict[str, Any], list[Note]]:
    """The model arguments with ``likelihood`` chosen from the data, for a model whose likelihood defaults to
    ``"auto"`` (a new dict; ``model_args`` is not changed), and notes saying what was chosen and why ([] and
    ``model_args`` as they are when nothing was chosen). When that choice is Gaussian and ``obs_scale`` was not given,
    the Gaussian's standard deviation is chosen from the data too (:func:`gaussian_scale`): a fixed 1.0 fits data of
    another spread badly."""
    params = inspect.signature(model_cls).parameters
    param = params.get("likelihood")
    if param is None or param.default != "auto" or model_args.get("likelihood", "auto") != "auto":
        return model_args, []
    x = data.train.x[:1000]
    name, why = likelihoods.for_data(x)
    chosen = {**model_args, "likelihood": name}
    notes = [Note(f"likelihood {name!r} chosen for {data.name!r} ({why})", "likelihood")]
    if name == "gaussian" and "obs_scale" in params and "obs_scale" not in model_args:
        latent = model_args.get("latent_dim", params["latent_dim"].default if "latent_dim" in params else None)
        scale, how = gaussian_scale(x, latent if isinstance(latent, int) else None)
        chosen["obs_scale"] = scale
        notes.append(
            Note(
                f"obs_scale = {scale:g} chosen for the Gaussian likelihood: {how}; set the model argument obs_scale "
                "to choose another"
            )
        )
    return chosen, notes


def gaussian_scale(x: torch.Tensor, latent_dim: int | None) -> tuple[float, str]:
    """The standard deviation of a Gaussian likelihood for observations ``x`` (N, ...) and a code of ``latent_dim``
    dimensions, and how it was found: the larger of a tenth of the data's spread (the root mean per-dimension
    variance) and, when the code has fewer dimensions than the data, the noise probabilistic PCA leaves with
    ``latent_dim`` components (the mean of the other eigenvalues of the covariance: the variance a linear decoder
    of that code cannot explain; Tipping & Bishop, 1999). Three significant digits."""
    x = x.flatten(1).double()
    x = x - x.mean(0)
    n, d = x.shape
    total = float(x.pow(2).sum()) / max(n - 1, 1)  # the trace of the covariance
    spread = (total / d) ** 0.5
    floor = 0.1 * spread
    how = f"a tenth of the data's spread ({spread:.3g} per dimension)"
    if latent_dim is not None and latent_dim < d and latent_dim < n - 1:
        top = torch.linalg.svdvals(x)[:latent_dim].pow(2).sum().item() / max(n - 1, 1)
        ppca = (max(total - top, 0.0) / (d - latent_dim)) ** 0.5
        if ppca > floor:
            floor = ppca
            how = (
                f"the noise probabilistic PCA with {latent_dim} components finds in the data (its spread: "
                f"{spread:.3g} per dimension)"
            )
    if not floor > 0:  # constant data: any positive scale
        return 1.0, "the data is constant"
    return float(f"{floor:.3g}"), how


def build(config: FitConfig, data: VAEData | None = None) -> Components:
    """Resolve ``config`` (:func:`resolve_config`), load the data and build model, guide and objective (seeded, not
    trained). ``config`` is not changed: the components hold a new, resolved config, with what was chosen from the
    data (recorded in config.json), and the notes saying what was chosen."""
    return assemble(resolve_config(config), data)


def assemble(config: FitConfig, data: VAEData | None = None) -> Components:
    """:func:`build` for a config :func:`resolve_config` returned (it is not resolved again, nor changed): load the
    data unless given, check what the model needs of it, build and bind model, guide and objective."""
    if config.objective is None or (config.guide is None and MODELS.get(config.model).has_guide):
        raise ValueError("assemble() takes a resolved config: pass it through resolve_config first, or call build()")
    device = select_device(config.device)
    pyro.set_rng_seed(config.seed)
    pyro.clear_param_store()
    objective = build_component(OBJECTIVES, config.objective, **config.objective_args)  # cheap checks first
    if data is None:
        data = load_dataset(config.data, root=config.data_root, seed=config.seed, **config.data_args)
    if config.batch_size > len(data.train):
        raise ValueError(
            f"--batch-size {config.batch_size} is larger than the training set of {data.name!r} "
            f"({len(data.train)} examples); use a smaller batch or more data"
        )
    if len(data.test) == 0:
        raise ValueError(f"dataset {data.name!r} has no test examples for the held-out loss; give it some (n_test)")
    model_cls = MODELS.get(config.model)
    chosen, chosen_notes = resolve_likelihood(model_cls, data, config.model_args)
    notes: list[str] = list(chosen_notes)
    config = replace(config, model_args=chosen)  # the components' own config, with what the data chose
    model_args = {**config.model_args, **label_args(model_cls, data, config.model_args)}
    model = build_component(MODELS, config.model, data.shape, **model_args)
    if hasattr(model, "likelihood"):
        likelihoods.check_data(model.likelihood, data.train.x[:1000])
    guide = build_component(GUIDES, config.guide, model, **config.guide_args) if config.guide is not None else None
    model.to(device)
    if guide is not None:
        guide.to(device)
    objective.bind(model, guide, num_data=len(data.train))
    for net in objective.networks().values():
        net.module.to(device)
    return Components(config, data, model, guide, objective, device, notes)
