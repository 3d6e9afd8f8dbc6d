"""Datasets (registered by name in :data:`pyro_vaes.registry.DATASETS`) and batch builders.

Each dataset registers itself where it is defined; the registry imports every module of this package on its
first lookup, so a new dataset is one new file here.
"""

from pyro_vaes.data.base import ArraySplit, FactorSource, VAEData, binarize, data_root, iterate_batches

__all__ = ["ArraySplit", "FactorSource", "VAEData", "binarize", "data_root", "iterate_batches", "load_dataset"]


def load_dataset(name: str, root=None, seed: int = 0, **data_args) -> VAEData:
    """Build the registered dataset ``name`` with ``data_args``."""
    import inspect

    from pyro_vaes.registry import DATASETS

    builder = DATASETS.get(name)
    params = [p for p in inspect.signature(builder).parameters if p not in ("root", "seed")]
    unknown = [k for k in data_args if k not in params]
    if unknown:
        raise ValueError(
            f"--data-arg {unknown[0]}: dataset {name!r} takes no argument {unknown[0]!r}; it takes: {', '.join(params)}"
        )
    return builder(root=root, seed=seed, **data_args)
