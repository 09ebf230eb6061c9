"""The nbmlops dashboard as a Jupyter Server extension: a page at ``<base_url>nbmlops/`` and a JSON
API under ``<base_url>nbmlops/api/``, over the same local store the notebooks use.

Enabled by ``etc/jupyter/jupyter_server_config.d/nbmlops.json`` (installed with the package).
The store is, in this order: ``--NbmlopsDashboard.store=PATH`` (also handed to the kernels this
server starts, through ``NBMLOPS_STORE``), ``$NBMLOPS_STORE``, the nearest ``.nbmlops/`` at or
above the server's ``root_dir`` (as a kernel started in ``root_dir`` finds it).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from traitlets import Unicode
from traitlets.config import Configurable

__all__ = ["NbmlopsDashboard", "store_path"]


class NbmlopsDashboard(Configurable):
    """Settings of the dashboard extension."""

    store = Unicode("", config=True, help="The store folder the dashboard shows (default: $NBMLOPS_STORE, else "
                                          "the nearest .nbmlops/ at or above the server's root_dir).")


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nbmlops.jupyter_server"}]


def store_path(configured: str, root_dir: str | os.PathLike[str]) -> Path:
    """The store the dashboard uses (see the module doc)."""
    from ..store import _resolve_named, locate

    if configured:
        return _resolve_named(Path(configured))
    return locate(Path(root_dir).expanduser())


def _load_jupyter_server_extension(serverapp: Any) -> None:
    import nbmlops

    from .handlers import handlers

    settings = NbmlopsDashboard(parent=serverapp)
    path = store_path(settings.store, serverapp.root_dir)
    if settings.store:
        os.environ["NBMLOPS_STORE"] = str(path)  # kernels started by this server use it too
    nbmlops.set_store(path)
    web_app = serverapp.web_app
    web_app.add_handlers(".*$", handlers(web_app.settings["base_url"]))
    # the first API call would otherwise pay for importing pandas (~0.3 s) and reading the store
    threading.Thread(target=_warm, name="nbmlops-dashboard-warm", daemon=True).start()
    serverapp.log.info("nbmlops dashboard at %snbmlops/ over the store %s", web_app.settings["base_url"], path)


def _warm() -> None:
    import nbmlops

    try:
        nbmlops.list_experiments()
    except Exception:  # noqa: BLE001 - best effort: the real request reports any problem itself
        pass


# the pre-2.0 name, for jupyter_server's legacy loader
load_jupyter_server_extension = _load_jupyter_server_extension
