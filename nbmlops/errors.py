"""One family of errors: catch ``NbmlopsError`` to catch them all.

In a notebook an ``NbmlopsError`` raised by an API call shows as one red line
(``_render_traceback_``), because it is the user's to fix, not a crash.
"""

from __future__ import annotations

__all__ = ["NbmlopsError", "StoreError", "NotFound", "InvalidInput", "IntegrityError", "ServingError"]


class NbmlopsError(Exception):
    """Root of every error nbmlops raises on purpose."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


class StoreError(NbmlopsError):
    """The store cannot be opened or written (wrong version, bad path, locked)."""


class NotFound(NbmlopsError, LookupError):
    """A run, experiment, artifact or model that does not exist."""


class InvalidInput(NbmlopsError, ValueError):
    """An argument the caller must change; the message says how."""


class IntegrityError(NbmlopsError):
    """Stored bytes do not match the hash recorded for them."""


class ServingError(NbmlopsError):
    """A model server failed to start or to answer; the message carries the server's own output."""
