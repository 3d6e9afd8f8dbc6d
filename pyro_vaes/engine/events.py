"""TensorBoard event files of a run, in ``RUN/tensorboard/`` (``tensorboard --logdir RUN/tensorboard``, or the
folder above several runs to compare them).

Written through :class:`torch.utils.tensorboard.SummaryWriter` when the ``tensorboard`` package is installed
(``pip install "pyro-vaes[tensorboard]"``); without it the run trains the same and says once, in a note, that the
events are off and how to turn them on. Only the process that writes the run folder writes them (rank 0 under
torchrun). Nothing here draws random numbers or touches a parameter: the events never change what is trained.

The trainer hands the scalars of a step to :meth:`EventLog.add` (every :data:`EVERY` steps and at each
evaluation); they are written to disk when the trainer writes ``metrics.jsonl`` or a checkpoint
(:meth:`EventLog.write`), from the run's first checkpoint on: the event file is created with the run's other files,
never before, and in the run's final folder (a run replacing another is swapped in at its first checkpoint). A
resumed run opens a new event file in the same folder whose first event tells TensorBoard to drop the events after
the checkpoint it resumed from (``purge_step``): steps written by the interrupted run after its last checkpoint are
replaced by the resumed run's, as ``metrics.jsonl``'s rows are.

Scalars (per datum, like ``metrics.jsonl``):

* ``loss/train`` — the step's loss over its whole batch; ``loss/train_average`` — its moving average (the
  ``train_loss`` of ``metrics.jsonl`` and the progress bar); ``loss/heldout`` — the held-out loss at each evaluation;
* ``terms/reconstruction`` (−log p(x | latents)), ``terms/kl/SITE`` (KL of each latent site) and
  ``terms/regularizer`` (the loss minus those two: the objective's regularizer, including a reweighted KL such as
  β-VAE-B's capacity term), for objectives built from the ELBO's terms
  (:class:`~pyro_vaes.objectives.terms.RegularizedELBO`); under torchrun they are rank 0's shard's;
* ``lr/main`` and ``lr/NETWORK`` — each optimizer's learning rate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyro_vaes.engine.notes import Note

#: the run folder's subfolder of event files
TENSORBOARD = "tensorboard"
#: the training scalars are recorded every this many steps (and at each evaluation)
EVERY = 10

_SAID_OFF = False  # the note that the events are off: once per process


def summary_writer() -> type | None:
    """:class:`torch.utils.tensorboard.SummaryWriter`, or None when the ``tensorboard`` package is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch.utils.tensorboard needs the tensorboard package
        return None
    return SummaryWriter


def off_note() -> Note | None:
    """The note that TensorBoard events are off (the package is missing), the first time it applies in this process;
    None otherwise."""
    global _SAID_OFF
    if _SAID_OFF or summary_writer() is not None:
        return None
    _SAID_OFF = True
    return Note(
        "TensorBoard events are off: the tensorboard package is not installed (pip install "
        "'pyro-vaes[tensorboard]' turns them on, in RUN/tensorboard)"
    )


class EventLog:
    """The scalars of one training session, buffered by :meth:`add` and written by :meth:`write` into
    ``run_dir/tensorboard``; ``resumed_from``: the checkpoint's step this session continues (None: a new run)."""

    def __init__(self, resumed_from: int | None = None):
        self.writer_class = summary_writer()
        self.resumed_from = resumed_from
        self.pending: list[tuple[str, float, int]] = []
        self.writer: Any = None
        self.log_dir: Path | None = None  # where the open event file is
        self.opened = False  # an event file of this session was opened (a later one purges nothing)

    @property
    def enabled(self) -> bool:
        return self.writer_class is not None

    def add(self, step: int, scalars: dict[str, float]) -> None:
        if self.enabled:
            self.pending.extend((tag, float(value), step) for tag, value in scalars.items())

    def write(self, run_dir: Path) -> None:
        """Write the buffered scalars (opening the event file in ``run_dir/tensorboard`` the first time)."""
        if not self.enabled or (self.writer is None and not self.pending):
            return
        log_dir = Path(run_dir) / TENSORBOARD
        if self.writer is not None and log_dir != self.log_dir:  # the run folder was renamed: a new event file
            try:
                self.writer.close()  # everything was written already (each write() flushes)
            except OSError:
                pass
            self.writer = None
        if self.writer is None:
            purge = None if self.resumed_from is None or self.opened else self.resumed_from + 1
            self.writer = self.writer_class(log_dir=str(log_dir), purge_step=purge)
            self.log_dir, self.opened = log_dir, True
        for tag, value, step in self.pending:
            self.writer.add_scalar(tag, value, step)
        self.pending.clear()
        self.writer.flush()

    def close(self) -> None:
        """Write what is buffered if the event file is already open (a session that never wrote its run folder
        leaves no event file), then close it."""
        if self.writer is not None:
            for tag, value, step in self.pending:
                self.writer.add_scalar(tag, value, step)
            self.pending.clear()
            self.writer.close()
            self.writer = None
