"""The training engine: build (every check before data loads), the learner (the trainable whole as one
``nn.Module``), the trainer (one loop for every model, guide and objective), run folders and checkpoints."""

from pyro_vaes.engine import distributed
from pyro_vaes.engine.build import (
    Components,
    build,
    build_component,
    objectives_for,
    resolve_config,
    select_device,
)
from pyro_vaes.engine.learner import Learner
from pyro_vaes.engine.run_folder import (
    CHECKPOINT,
    CONFIG,
    FIGURES,
    METRICS,
    RESULTS,
    NewRunFolder,
    RunExistsError,
    RunLockedError,
    check_new_run_target,
    check_output,
    default_run_dir,
    run_lock,
    truncate_metrics,
)
from pyro_vaes.engine.trainer import Trainer, TrainingDiverged, TrainingInterrupted

__all__ = [
    "CHECKPOINT",
    "CONFIG",
    "Components",
    "FIGURES",
    "Learner",
    "METRICS",
    "NewRunFolder",
    "RESULTS",
    "RunExistsError",
    "RunLockedError",
    "Trainer",
    "TrainingDiverged",
    "TrainingInterrupted",
    "build",
    "build_component",
    "check_new_run_target",
    "check_output",
    "default_run_dir",
    "distributed",
    "objectives_for",
    "resolve_config",
    "run_lock",
    "select_device",
    "truncate_metrics",
]
