"""Distributions Pyro and torch do not have."""
