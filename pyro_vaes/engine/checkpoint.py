"""Atomic checkpoints that load with weights-only unpickling (opening a run never executes its code)."""

from __future__ import annotations

import errno
import os
import pickle
import random
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pyro_vaes.engine.errors import CheckpointError


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``: the old file stays whole
    until the new one is complete (a full disk or a kill leaves it as it was, and no temporary file behind)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        full = isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)
        if full or _writer_failed(err):
            kept = (
                f"the previous {path.name} is kept whole: free some space, then resume from it "
                f"(pyro-vaes fit --resume {path.parent})"
                if path.exists()
                else "nothing was written: free some space, then rerun"
            )
            raise OSError(
                err.errno if full else errno.ENOSPC,
                f"no space left on the device (the disk is full, or over its quota) while writing {path}; {kept}",
            ) from None
        raise


def _writer_failed(err: BaseException) -> bool:
    """torch's zip writer failing to write (a full disk): it raises a RuntimeError, not an OSError, such as
    ``[enforce fail at inline_container.cc:672] . unexpected pos 123 vs 456`` or ``PytorchStreamWriter failed
    writing file data/0: file write failed``."""
    text = str(err)
    return isinstance(err, RuntimeError) and (
        "inline_container" in text or "PytorchStreamWriter" in text or "file write failed" in text
    )


def load(path: Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint with weights-only unpickling: a file that holds code, or is truncated or corrupt, is refused
    with one line naming it (its content is never executed)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():  # torch warns about a pickle protocol other than 2 before refusing the file
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except (
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,
        ValueError,
        KeyError,
        AttributeError,
        TypeError,
        IndexError,
        UnicodeDecodeError,
        OSError,
    ) as err:
        what = (
            "is corrupt or holds objects other than tensors and plain values"
            if isinstance(err, pickle.UnpicklingError)
            else "is truncated or corrupt"
        )
        raise CheckpointError(
            f"checkpoint {path} cannot be loaded ({type(err).__name__}): it {what}; restore it from a "
            "copy, or refit into another folder"
        ) from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"checkpoint {path} is not a pyro_vaes checkpoint (no model state in it)")
    return state


def rng_state() -> dict[str, Any]:
    """Every random state a training step reads: torch (CPU and CUDA), numpy and Python's ``random``."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def auxiliary_states(state: dict[str, Any], names: list[str]) -> dict[str, dict[str, Any]]:
    """``{name: {"network": ..., "optimizer": ...}}`` for the auxiliary networks ``names`` from a checkpoint.

    Reads ``auxiliaries`` / ``aux_optimizers`` (name -> state) and, from checkpoints written by 0.1.0, the single
    ``auxiliary`` / ``aux_optimizer`` of an objective with one auxiliary network.
    """
    if "auxiliaries" in state:
        missing = [n for n in names if n not in state["auxiliaries"]]
        if missing:
            raise ValueError(f"the checkpoint has no state for the auxiliary network(s) {', '.join(missing)}")
        return {n: {"network": state["auxiliaries"][n], "optimizer": state["aux_optimizers"][n]} for n in names}
    if "auxiliary" in state and len(names) == 1:
        return {names[0]: {"network": state["auxiliary"], "optimizer": state["aux_optimizer"]}}
    if names:
        raise ValueError(f"the checkpoint has no state for the auxiliary network(s) {', '.join(names)}")
    return {}
