"""Shared test setup: a clean Pyro state per test, seeded RNGs, and the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pyro
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PYRO_VAES_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def clean_pyro_state():
    """Each test starts with an empty param store, validation on, seed 0 and one torch thread."""
    pyro.clear_param_store()
    pyro.enable_validation(True)
    pyro.set_rng_seed(0)
    torch.set_default_dtype(torch.float32)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is faster, and far faster on busy shared cores
    yield
    torch.set_num_threads(threads)
    pyro.clear_param_store()


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (or $PYRO_VAES_DATA); the test is skipped with the reason when it is absent."""
    if not SHARED_DATA.exists():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (set PYRO_VAES_DATA to run this test)")
    return SHARED_DATA
