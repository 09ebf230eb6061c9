"""The registry widget: pick a model, see its versions side by side, move an alias, see lineage."""

from __future__ import annotations

from html import escape
from typing import Any

import ipywidgets as w

import nbmlops

from ..display.html import as_of
from ..display.registry import versions_table
from ..display.style import BOX, RED
from ..errors import NbmlopsError
from ._static import StaticFallback


class RegistryWidget(StaticFallback, w.VBox):
    """A panel over ``list_models``/``list_versions``/``set_alias``/``get_model_version``."""

    def __init__(self, name: str | None = None) -> None:
        self.model = w.Dropdown(description="model", options=[])
        self.versions = w.HTML(layout=w.Layout(width="100%"))  # its table scrolls inside, never widens the panel
        self.alias = w.Combobox(description="alias", placeholder="production", ensure_option=False,
                                options=["production", "staging"], value="production")
        self.version = w.Dropdown(description="version", options=[])
        self.move = w.Button(description="Move alias", button_style="primary", icon="arrow-right",
                             layout=w.Layout(width="auto", flex="0 0 auto"))
        self.status = w.HTML()
        self.lineage = w.HTML()
        self.refresh_button = w.Button(description="Refresh", icon="refresh",
                                       layout=w.Layout(width="auto", flex="0 0 auto"))
        self.model.observe(lambda _: self.refresh(), names="value")
        self.version.observe(lambda _: self._show_version(), names="value")
        self.move.on_click(lambda _: self.move_alias())
        self.refresh_button.on_click(lambda _: self.refresh(models=True))
        wrap = w.Layout(flex_flow="row wrap", align_items="center")  # a narrow cell wraps controls, never cuts them
        super().__init__([w.HBox([self.model, self.refresh_button], layout=wrap), self.versions,
                          w.HBox([self.alias, self.version, self.move], layout=wrap), self.status, self.lineage])
        self.refresh(models=True, select=name)

    def refresh(self, models: bool = False, select: str | None = None) -> None:
        if models:
            names = list(nbmlops.list_models()["name"])
            current = select or self.model.value
            self.model.options = names
            if names:
                self.model.value = current if current in names else names[0]
        name = self.model.value
        if not name:
            self.versions.value = "<i>no registered models yet</i>"
            return
        df = nbmlops.list_versions(name)
        self.versions.value = versions_table(df)
        keep = self.version.value
        self.version.options = [int(v) for v in df["version"]][::-1]
        if keep in self.version.options:
            self.version.value = keep
        elif self.version.options:  # ipywidgets 8 leaves a Dropdown empty when its options change
            self.version.value = self.version.options[0]
        aliases = sorted({a for cell in df["aliases"] for a in cell.split(", ") if a} | {"production", "staging"})
        self.alias.options = aliases
        self._show_version()

    def _show_version(self) -> None:
        if self.model.value and self.version.value is not None:
            version = nbmlops.get_model_version(f"{self.model.value}/{self.version.value}")
            self.lineage.value = version._repr_html_()

    def move_alias(self) -> None:
        try:
            moved = nbmlops.set_alias(self.model.value, self.alias.value, int(self.version.value))
        except (NbmlopsError, TypeError, ValueError) as exc:
            self.status.value = f'<span style="color:{RED}">{escape(str(exc))}</span>'
            return
        self.status.value = f"@{escape(self.alias.value)} → version {moved.version}"
        self.refresh()

    def _static_html(self) -> str:
        """The versions table and the chosen version's lineage card (both escaped where rendered)."""
        name = self.model.value
        title = (f"<b>model {escape(name)}</b>" if name else "<b>model registry</b>") + as_of()
        return f'<div style="{BOX};max-width:none">{title}{self.versions.value}{self.lineage.value}</div>'


def registry_widget(name: str | None = None) -> Any:
    """An ipywidgets panel of the registry (``name`` preselects a model)."""
    return RegistryWidget(name)
