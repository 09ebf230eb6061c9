"""Argument helpers shared by the magics."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import parse_argstring


def parse(magic: Any, line: str) -> Any:
    """``parse_argstring`` for ``magic``, with an unbalanced quote (shlex's ValueError: "No closing
    quotation", "No escaped character") as one line instead of a traceback."""
    try:
        return parse_argstring(magic, line)
    except ValueError as exc:
        raise UsageError(f"%{getattr(magic, '__name__', 'magic')}: {exc} in {line.strip()!r}; "
                         "close the quote or escape it") from None


def unquote(text: str | None) -> str | None:
    """IPython's argument splitter keeps the quotes of ``-e "my experiment"``: drop them."""
    if text is not None and len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def parse_tags(items: list[str]) -> dict[str, str]:
    tags = {}
    for item in map(unquote, items):
        key, sep, value = item.partition("=")  # type: ignore[union-attr]
        if not sep or not key.strip():
            raise UsageError(f"-t takes KEY=VALUE, got {item!r}")
        tags[key.strip()] = unquote(value)  # type: ignore[assignment]
    return tags
