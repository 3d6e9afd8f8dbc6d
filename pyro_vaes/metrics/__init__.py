"""Metrics; each works on any fitted model through the model/guide contract (``encode``, ``decode``, the Pyro
model and guide), never on a model's internals."""
