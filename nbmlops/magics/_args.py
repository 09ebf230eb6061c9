"""Argument helpers shared by the magics: parse a line (quotes dropped), turn nbmlops' errors into
one red line, and look a name up as a notebook variable or a path."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import parse_argstring

from ..errors import NbmlopsError


def parse(magic: Any, line: str) -> Any:
    """``parse_argstring`` for ``magic`` with the quotes of every text value dropped (``-e "my exp"``
    gives ``my exp``), and an unbalanced quote (shlex's ValueError: "No closing quotation", "No
    escaped character") as one line instead of a traceback."""
    try:
        args = parse_argstring(magic, line)
    except ValueError as exc:
        raise UsageError(f"%{getattr(magic, '__name__', 'magic')}: {exc} in {line.strip()!r}; "
                         "close the quote or escape it") from None
    for key, value in vars(args).items():
        if isinstance(value, str):
            setattr(args, key, unquote(value))
        elif isinstance(value, list):
            setattr(args, key, [unquote(v) if isinstance(v, str) else v for v in value])
    return args


def unquote(text: str | None) -> str | None:
    """IPython's argument splitter keeps the quotes of ``-e "my experiment"``: drop them."""
    if text is not None and len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


@contextmanager
def usage_errors(prefix: str = "", *also: type[Exception]) -> Iterator[None]:
    """nbmlops' errors (and ``also``) raised inside as one red line: ``UsageError(prefix + message)``."""
    try:
        yield
    except (NbmlopsError, *also) as exc:
        raise UsageError(f"{prefix}{exc}") from None


def variable_or_path(shell: Any, text: str) -> tuple[str, Any]:
    """What ``text`` names: ("variable", its value) for a notebook variable, ("path", the path with
    ``~`` expanded) for an existing file or folder, else ("text", ``text``)."""
    ns = shell.user_ns
    if text.isidentifier() and text in ns:
        return "variable", ns[text]
    path = Path(text).expanduser()
    if path.exists():
        return "path", str(path)
    return "text", text


def parse_tags(items: list[str]) -> dict[str, str]:
    """``-t KEY=VALUE ...`` (items already unquoted by :func:`parse`; a quoted VALUE is unquoted too)."""
    tags = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"-t takes KEY=VALUE, got {item!r}")
        tags[key.strip()] = unquote(value)
    return tags
