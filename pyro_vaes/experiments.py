"""Paper experiments run by ``pyro-vaes reproduce NAME``; each registers itself in ``EXPERIMENTS``.

An experiment is a callable ``run(out: Path, scale: str, seed: int, data_root: Optional[str]) -> dict``
that writes its figures and a results table into ``out`` and returns the table.
"""
from pyro_vaes import experiments_ugvae  # noqa: F401
from pyro_vaes import experiments_chyvae  # noqa: F401
