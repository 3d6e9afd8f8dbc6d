"""Disentanglement and downstream metrics; each works on any fitted model through encode/decode."""
