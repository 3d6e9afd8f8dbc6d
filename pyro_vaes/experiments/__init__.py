"""The papers' experiments, one module per paper, run by ``pyro-vaes reproduce NAME [--scale S] [--set KEY=VALUE]``.

Each experiment registers itself in :data:`pyro_vaes.registry.EXPERIMENTS` (the registry imports every module of
this package on its first lookup) and shares :mod:`pyro_vaes.experiments.common`: scales and overrides, fitting
into run folders, results tables, figures and the command that reruns it.
"""
