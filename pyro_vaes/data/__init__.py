"""Datasets (registered by name in :data:`pyro_vaes.registry.DATASETS`) and batch builders.

Each dataset registers itself where it is defined; the registry imports every module of this package on its
first lookup, so a new dataset is one new file here.
"""

from pyro_vaes.data.base import ArraySplit, FactorSource, VAEData, binarize, data_root, iterate_batches

__all__ = ["ArraySplit", "FactorSource", "VAEData", "binarize", "data_root", "iterate_batches", "load_dataset"]


def load_dataset(name: str, root=None, seed: int = 0, **data_args) -> VAEData:
    """Build the registered dataset ``name`` with ``data_args``."""
    from pyro_vaes.registry import DATASETS

    builder = DATASETS.get(name)
    try:
        return builder(root=root, seed=seed, **data_args)
    except TypeError as err:
        import inspect

        params = [p for p in inspect.signature(builder).parameters if p not in ("root", "seed")]
        raise TypeError(f"bad data arguments for dataset {name!r} ({err}); it takes: {', '.join(params)}") from None
