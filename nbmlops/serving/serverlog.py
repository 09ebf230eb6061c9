"""The serving process's own log (``server.log``): bounded and rotated like the request log.

The process's stdout and stderr (fd 1 and 2, where ``serve()`` sent them) follow the current
file across rotations, so prints, warnings and crashes land in it too. Tracebacks are kept
once per place they come from; a repeat is one line, so a client that triggers the same
error again and again cannot fill the disk.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

MAX_BYTES = 8 << 20
KEEP = 3  # server.log and server.log.1, .2: at most 24 MiB with the defaults


class _Rotating(logging.handlers.RotatingFileHandler):
    def doRollover(self) -> None:  # noqa: N802 (logging's name)
        super().doRollover()
        if self.stream is not None:  # fd 1 and 2 follow the new file
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(self.stream.fileno(), 1)
            os.dup2(self.stream.fileno(), 2)


class OnceTraceback(logging.Filter):
    """A traceback the first time an error comes from a place; one line when it comes again."""

    def __init__(self, remember: int = 256) -> None:
        super().__init__()
        self.seen: set[tuple[str, str, int]] = set()
        self.remember = remember

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or record.exc_info[1] is None:
            return True
        exc = record.exc_info[1]
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = (type(exc).__name__, tb.tb_frame.f_code.co_filename if tb else "", tb.tb_lineno if tb else 0)
        if where in self.seen:
            record.msg = f"{record.getMessage()}: {where[0]} at {Path(where[1]).name}:{where[2]} (again; " \
                         "the first traceback is above)"
            record.args, record.exc_info, record.exc_text = None, None, None
        elif len(self.seen) < self.remember:
            self.seen.add(where)
        return True


def setup(path: Path, max_bytes: int = MAX_BYTES, keep: int = KEEP) -> logging.Handler:
    """Send the process's logging (and fd 1 and 2) to ``path``, rotated at ``max_bytes``, ``keep`` files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = _Rotating(path, maxBytes=max_bytes, backupCount=max(0, keep - 1), encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(OnceTraceback())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(handler.stream.fileno(), 1)
    os.dup2(handler.stream.fileno(), 2)
    return handler
