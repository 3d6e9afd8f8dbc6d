"""What the engine says about the choices it made for the user: notes, never printed by the library.

A :class:`Note` is a plain string worded for Python and command-line users alike (no option syntax in it); the
API returns them (``run.notes``) and logs each one at INFO on the ``pyro_vaes`` logger (:func:`log_notes`, the
record's ``note`` attribute is the note itself). The library configures no handler, so nothing appears unless the
user asks (``logging.basicConfig(level=logging.INFO)``); the ``pyro-vaes`` command line installs one that prints
them, with the option that changes the choice. A leaf module: it imports nothing of the engine.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

#: the package's logger: notes, evaluation rows and a comparison's progress, at INFO
LOGGER = logging.getLogger("pyro_vaes")


class Note(str):
    """One line about a choice made for the user (a ``str``: read, compare or store it as one); ``setting`` names the
    setting that changes the choice (e.g. ``"likelihood"``), or None."""

    setting: str | None

    def __new__(cls, text: str, setting: str | None = None) -> Note:
        note = super().__new__(cls, text)
        note.setting = setting
        return note


def log_notes(notes: Iterable[str]) -> None:
    """Log each note at INFO on the ``pyro_vaes`` logger, the note as the record's ``note`` attribute."""
    for note in notes:
        LOGGER.info("%s", note, extra={"note": note}, stacklevel=2)
