"""The run folder: ``config.json``, ``metrics.jsonl``, ``checkpoint.pt``, ``figures/`` and ``results.json``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pyro_vaes.config import FitConfig

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
RESULTS = "results.json"
FIGURES = "figures"


class RunExistsError(FileExistsError):
    """The run folder exists and neither resume nor overwrite was asked for."""


def default_run_dir(config: FitConfig) -> Path:
    return Path("runs") / f"{config.model}-{config.data}-seed{config.seed}"


def prepare_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Create an empty run folder; an existing non-empty one is kept unless ``overwrite``."""
    run_dir = Path(run_dir)
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise RunExistsError(
                f"run folder {run_dir} already exists; pass --resume {run_dir} to continue it, --overwrite to "
                "replace it, or --out to choose another folder"
            )
        shutil.rmtree(run_dir)
    (run_dir / FIGURES).mkdir(parents=True, exist_ok=True)


def truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop metric rows written after ``step`` (a crash between an evaluation and the next checkpoint)."""
    path = Path(run_dir) / METRICS
    if path.exists():
        rows = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        path.write_text("".join(r + "\n" for r in rows))
