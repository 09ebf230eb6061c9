"""Model names, aliases and the one URI form used everywhere.

``NAME`` is the latest version, ``NAME@ALIAS`` the version an alias points at, ``NAME/3``
version 3. A ``models:/`` prefix (MLflow's) is accepted and ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidInput

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")


def check_name(name: object) -> str:
    """A model name reaches file names and URIs: letters, digits, '_', '-', '.', no path tricks."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise InvalidInput(f"invalid model name {name!r}: use 1-100 letters, digits, '_', '-' or '.', "
                           "starting with a letter or digit (no '/', '..' or spaces)")
    return name


def check_alias(alias: object) -> str:
    if not isinstance(alias, str) or not _ALIAS.match(alias):
        raise InvalidInput(f"invalid alias {alias!r}: a word of letters, digits, '_' or '-' that starts with a letter "
                           "(e.g. production, staging, champion)")
    return alias


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}/{self.version}"
        return f"{self.name}@{self.alias}" if self.alias else self.name


def parse(uri: object) -> ModelRef:
    """``"churn"``, ``"churn@production"``, ``"churn/3"`` (or with ``models:/`` in front)."""
    if not isinstance(uri, str):
        raise InvalidInput(f"a model URI is a string like 'churn', 'churn@production' or 'churn/3', got {uri!r}")
    text = uri.strip()
    if text.startswith("models:/"):
        text = text[len("models:/"):]
    if "@" in text:
        name, alias = text.split("@", 1)
        return ModelRef(check_name(name), alias=check_alias(alias))
    if "/" in text:
        name, version = text.rsplit("/", 1)
        if not version.isdigit() or int(version) < 1:
            raise InvalidInput(f"in {uri!r}, the version must be a positive number (e.g. {name}/3)")
        return ModelRef(check_name(name), version=int(version))
    return ModelRef(check_name(text))
