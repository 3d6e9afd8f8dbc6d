"""The training engine: build (every check before data loads), the learner (the trainable whole as one
``nn.Module``), the trainer (one loop for every model, guide and objective), run folders and checkpoints."""

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
    RunExistsError,
    default_run_dir,
    prepare_run_dir,
    truncate_metrics,
)
from pyro_vaes.engine.trainer import Trainer, TrainingDiverged

__all__ = ["CHECKPOINT", "CONFIG", "Components", "FIGURES", "Learner", "METRICS", "RESULTS", "RunExistsError",
           "Trainer", "TrainingDiverged", "build", "build_component", "default_run_dir", "objectives_for",
           "prepare_run_dir", "resolve_config", "select_device", "truncate_metrics"]
