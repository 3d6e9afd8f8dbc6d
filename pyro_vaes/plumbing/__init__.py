"""Pyro plumbing every layer above relies on: parameter registration (:mod:`~pyro_vaes.plumbing.params`), a Pyro
program run up to one site (:mod:`~pyro_vaes.plumbing.tracing`), isolated evaluation
(:mod:`~pyro_vaes.plumbing.isolation`) and the exact fast paths of the training step
(:mod:`~pyro_vaes.plumbing.fastpaths`)."""
