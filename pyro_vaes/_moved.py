"""Import paths that moved in 0.2.0, kept working for one release.

0.1.0 had fourteen modules side by side in ``pyro_vaes/``; 0.2.0 groups them by layer: Pyro plumbing in
:mod:`pyro_vaes.plumbing`, analysis in :mod:`pyro_vaes.analysis`, observation models in
:mod:`pyro_vaes.distributions`. An old path (``import pyro_vaes.evaluation``, ``from pyro_vaes import plots``)
still imports, with a :class:`DeprecationWarning`, and gives the *same* module object as the new path, so
monkeypatching either is the same.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: old module path -> new module path
MOVED = {
    **{f"pyro_vaes.{m}": f"pyro_vaes.plumbing.{m}" for m in ("params", "tracing", "isolation", "fastpaths")},
    **{
        f"pyro_vaes.{m}": f"pyro_vaes.analysis.{m}"
        for m in ("evaluation", "inference_gap", "comparison", "switch", "plots")
    },
    "pyro_vaes.likelihoods": "pyro_vaes.distributions.likelihoods",
}


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old path in :data:`MOVED` and loads it as the module at the new path."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        new = MOVED[spec.name]
        warnings.warn(f"{spec.name} moved to {new}; the old path goes in 0.3.0", DeprecationWarning, stacklevel=3)
        return importlib.import_module(new)

    def exec_module(self, module) -> None:  # the module at the new path is already executed
        pass


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
