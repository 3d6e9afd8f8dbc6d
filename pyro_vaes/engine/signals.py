"""SIGTERM — a scheduler's preemption, ``kill``, torchrun stopping its workers — as a request to stop between steps.

While :func:`stop_on_sigterm` is active, the first SIGTERM only sets ``ranks.stop_requested``; the trainer finishes
the step it is in, writes a checkpoint at that step and raises
:class:`~pyro_vaes.engine.errors.TrainingInterrupted` saying where to resume (exit status 143 on the command line).
Under torchrun the request travels with the step's gradient all-reduce
(:meth:`~pyro_vaes.engine.distributed.Ranks.should_stop`), so every rank stops after the same step, whichever
ranks received the signal. A second SIGTERM ends the process at once, as SIGTERM does by default.

Only the main thread can install a handler: from any other thread (or where SIGTERM does not exist), nothing is
installed and SIGTERM keeps its default meaning.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: the command line's exit status after a SIGTERM (128 + 15, what a shell reports for a process it ended)
SIGTERM_EXIT = 128 + 15


@contextmanager
def stop_on_sigterm(ranks: Any) -> Iterator[None]:
    """For the ``with`` block: the first SIGTERM sets ``ranks.stop_requested`` (and clears nothing else); a second one
    ends the process with the default action. The previous handler is restored afterwards."""
    term = getattr(signal, "SIGTERM", None)
    ranks.stop_requested = ranks.stop_agreed = False
    if term is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def asked(signum: int, frame: Any) -> None:
        if ranks.stop_requested:  # asked twice: stop now
            signal.signal(term, signal.SIG_DFL)
            os.kill(os.getpid(), term)
            return
        ranks.stop_requested = True

    previous = signal.signal(term, asked)
    try:
        yield
    finally:
        signal.signal(term, previous if previous is not None else signal.SIG_DFL)
