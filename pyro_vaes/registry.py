"""One table per kind of component: models, guides, objectives, datasets and experiments.

The CLI, the tests and ``pyro-vaes list`` all read these tables; nothing in the engine dispatches on a
string comparison. A component registers itself with a decorator where it is defined::

    @MODELS.register("vae")
    class VAE(ModelBase): ...

    @GUIDES.register("diagonal", models=("vae",), default_for=("vae",))
    class DiagonalGaussianGuide(GuideBase): ...

This module is a leaf: it imports nothing of the components at module import. The first lookup imports
every module of the component packages (``models/``, ``guides/``, ``pyro_vaes/objectives/``,
``pyro_vaes/data/``, ``pyro_vaes/experiments/``), so a new component is one new file in its package; importing
them changes no global state.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class UnknownNameError(KeyError):
    """An unknown registry name; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


@dataclass
class Entry:
    name: str
    obj: Any
    help: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


class Registry:
    """A name -> component table with helpful errors. ``meta`` names the keyword arguments :meth:`register` takes
    besides ``help`` (e.g. a guide's ``models`` and ``default_for``); any other is refused, so a typo such as
    ``default_fro=`` fails at import instead of being ignored."""

    def __init__(self, kind: str, meta: tuple[str, ...] = ()):
        self.kind = kind
        self.meta_keys = tuple(meta)
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, help: str = "", **meta: Any) -> Callable[[Any], Any]:
        unknown = sorted(set(meta) - set(self.meta_keys))
        if unknown:
            takes = ", ".join(("help", *self.meta_keys))
            raise TypeError(f"{self.kind.upper()}S.register({name!r}) takes no {', '.join(unknown)}; it takes: {takes}")

        def decorator(obj: Any) -> Any:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            doc = help or (obj.__doc__ or "").strip().split("\n")[0]
            self._entries[name] = Entry(name, obj, doc, dict(meta))
            return obj

        return decorator

    def names(self) -> list[str]:
        _load_components()
        return sorted(self._entries)

    def entry(self, name: str) -> Entry:
        _load_components()
        if name not in self._entries:
            close = difflib.get_close_matches(name, self.names(), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownNameError(f"unknown {self.kind} {name!r}.{hint} Valid {self.kind}s: {', '.join(self.names())}")
        return self._entries[name]

    def get(self, name: str) -> Any:
        return self.entry(name).obj

    def entries(self) -> list[Entry]:
        _load_components()
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: str) -> bool:
        _load_components()
        return name in self._entries

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for components registered by tests or user code at run time)."""
        self._entries.pop(name, None)


MODELS = Registry("model")
#: ``models``: the models a guide is written for; ``default_for``: those of them it is the default guide of
GUIDES = Registry("guide", meta=("models", "default_for"))
OBJECTIVES = Registry("objective")
#: ``kind``: where the data comes from (synthetic, procedural, real, ...); ``shape``: one datum's shape as text;
#: ``factors``: the ground-truth factor names, where the dataset has them
DATASETS = Registry("dataset", meta=("kind", "shape", "factors"))
EXPERIMENTS = Registry("experiment")


def guides_for(model: str) -> list[str]:
    """Names of the guides registered for ``model`` (the default first)."""
    MODELS.entry(model)
    names = [e.name for e in GUIDES.entries() if model in e.meta.get("models", ())]
    default = default_guide(model)
    return [default] + [n for n in names if n != default] if default else names


def default_guide(model: str) -> str | None:
    for e in GUIDES.entries():
        if model in e.meta.get("models", ()) and model in e.meta.get("default_for", ()):
            return e.name
    return None


def check_guide_fits(model: str, guide: str) -> None:
    """Refuse a guide that was not written for ``model`` before anything is built."""
    GUIDES.entry(guide)
    valid = guides_for(model)
    if guide not in valid:
        raise ValueError(f"guide {guide!r} does not fit model {model!r}. Guides for {model!r}: {', '.join(valid)}")


#: the packages whose modules register components (imported on the first lookup)
COMPONENT_PACKAGES = (
    "pyro_vaes.data",
    "pyro_vaes.models",
    "pyro_vaes.guides",
    "pyro_vaes.objectives",
    "pyro_vaes.experiments",
)
_LOADED = False


def _load_components() -> None:
    """Import every module of the component packages (once), so that each registers what it defines."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for package_name in COMPONENT_PACKAGES:
        package = importlib.import_module(package_name)
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if not info.name.startswith("_"):
                importlib.import_module(f"{package_name}.{info.name}")
