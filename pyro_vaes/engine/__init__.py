"""The training engine: build (every check before data loads), the learner (the trainable whole as one
``nn.Module``), the trainer (one loop for every model, guide and objective), run folders and checkpoints.

Its modules import one another in one direction: ``errors``, ``notes`` and ``learner`` import no other engine
module; ``checkpoint``, ``run_folder`` and ``distributed`` import ``errors``; ``build`` imports ``distributed`` and
``notes``; ``trainer`` imports the others (``tests/test_engine.py`` checks there is no cycle).
Nothing in the engine prints: what it has to say is returned (notes) or logged on the ``pyro_vaes`` logger.
"""

from pyro_vaes.engine import distributed
from pyro_vaes.engine.build import (
    Components,
    assemble,
    build,
    build_component,
    objectives_for,
    resolve_config,
    select_device,
)
from pyro_vaes.engine.errors import CheckpointError
from pyro_vaes.engine.learner import Learner
from pyro_vaes.engine.notes import LOGGER, Note, log_notes
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
from pyro_vaes.engine.trainer import Trainer, TrainingDiverged, TrainingInterrupted, trainer_for

__all__ = [
    "CHECKPOINT",
    "CONFIG",
    "CheckpointError",
    "Components",
    "FIGURES",
    "LOGGER",
    "Learner",
    "METRICS",
    "Note",
    "NewRunFolder",
    "RESULTS",
    "RunExistsError",
    "RunLockedError",
    "Trainer",
    "TrainingDiverged",
    "TrainingInterrupted",
    "assemble",
    "build",
    "build_component",
    "check_new_run_target",
    "check_output",
    "default_run_dir",
    "distributed",
    "log_notes",
    "objectives_for",
    "resolve_config",
    "run_lock",
    "select_device",
    "trainer_for",
    "truncate_metrics",
]
