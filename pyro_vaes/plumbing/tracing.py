"""Running a Pyro program only up to one of its sample sites."""

from __future__ import annotations

from collections.abc import Callable

import pyro.poutine as poutine
from pyro.poutine.runtime import Message, NonlocalExit


def trace_until(fn: Callable, site: str, *args) -> tuple[poutine.Trace, Message]:
    """Run ``fn(*args)`` up to its sample site ``site`` and stop there (Pyro's ``poutine.escape``): that site and
    everything after it are never drawn. Returns the trace of what ran before it and the site's message, whose
    ``"fn"`` is the site's distribution as the program wrote it (not sampled; no other handler has seen the message,
    so plates have not broadcast it and scales are not applied). A program without that site is a ``ValueError``."""
    tracer = poutine.trace(poutine.escape(fn, escape_fn=lambda msg: msg["type"] == "sample" and msg["name"] == site))
    try:
        tracer(*args)
    except NonlocalExit as stop:  # raised at ``site``; the handlers it passed through are already off the stack
        return tracer.msngr.trace, stop.site
    raise ValueError(f"{getattr(fn, '__qualname__', fn)} has no sample site {site!r}")
