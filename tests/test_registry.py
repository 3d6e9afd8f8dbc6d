"""The registry refuses what it would otherwise ignore."""

from __future__ import annotations

import pytest

from pyro_vaes.registry import DATASETS, GUIDES, MODELS


def test_register_refuses_an_unknown_keyword():
    """A typo in a registration (``default_fro``) fails at once, naming what ``register`` takes."""
    with pytest.raises(TypeError, match=r"takes no default_fro; it takes: help, models, default_for"):
        GUIDES.register("typo-guide", models=("vae",), default_fro=("vae",))
    with pytest.raises(TypeError, match="takes no shapes"):
        DATASETS.register("typo-data", shapes="1x2")
    with pytest.raises(TypeError, match="takes no models"):
        MODELS.register("typo-model", models=("vae",))
    assert "typo-guide" not in GUIDES and "typo-data" not in DATASETS and "typo-model" not in MODELS


def test_register_takes_the_declared_keywords():
    GUIDES.register("ok-guide", models=("vae",), default_for=())(object)
    try:
        assert GUIDES.entry("ok-guide").meta == {"models": ("vae",), "default_for": ()}
    finally:
        GUIDES.unregister("ok-guide")
