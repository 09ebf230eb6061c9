"""Argument helpers shared by the magics."""

from __future__ import annotations

from IPython.core.error import UsageError


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
