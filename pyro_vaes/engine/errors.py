"""The engine's error types, in a leaf module (it imports nothing of the engine): the run folder, the checkpoint, the
trainer and the data-parallel layer all raise them, and :mod:`pyro_vaes.engine.distributed` passes them between
ranks by name. Each is re-exported where it was first defined (``engine.trainer``, ``engine.run_folder``,
``engine.checkpoint``) and by :mod:`pyro_vaes.engine`."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read (truncated, corrupt, or not a pyro_vaes checkpoint)."""


class RunExistsError(FileExistsError):
    """The run folder exists and neither resume nor overwrite was asked for."""


class RunLockedError(RuntimeError):
    """Another live process holds the run folder's lock."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite, or jumped far above its running level; the last good checkpoint is kept."""


class TrainingInterrupted(RuntimeError):
    """Ctrl-C or SIGTERM: training stopped; the message says where and how to resume. ``exit_status`` is the command
    line's (130 after Ctrl-C, 143 after SIGTERM: 128 + the signal's number)."""

    def __init__(self, message: str = "", exit_status: int = 130):
        super().__init__(message)
        self.exit_status = exit_status
