"""The nbmlops dashboard as a Jupyter Server extension: a page at ``<base_url>nbmlops/`` and a JSON
API under ``<base_url>nbmlops/api/``, over the same local store the notebooks use.

Enabled by ``etc/jupyter/jupyter_server_config.d/nbmlops.json`` (installed with the package).
One store for the server and its kernels, resolved at start in this order: ``--NbmlopsDashboard.store=PATH``,
``$NBMLOPS_STORE``, the nearest ``.nbmlops/`` at or above the server's ``root_dir``, else
``<root_dir>/.nbmlops``; it is put in the server's ``NBMLOPS_STORE`` so every kernel the server starts
(whatever folder its notebook is in) writes where the dashboard reads. Other stores below the root are
listed by the API and can be shown instead (``stores.py``).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from traitlets import Unicode
from traitlets.config import Configurable

import nbmlops

from . import stores

__all__ = ["NbmlopsDashboard", "store_path"]


class NbmlopsDashboard(Configurable):
    """Settings of the dashboard extension."""

    store = Unicode("", config=True, help="The store of the dashboard and of the kernels this server starts "
                                          "(default: $NBMLOPS_STORE, else the nearest .nbmlops/ at or above the "
                                          "server's root_dir, else <root_dir>/.nbmlops).")


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nbmlops.jupyter_server"}]


def store_path(configured: str, root_dir: str | os.PathLike[str]) -> Path:
    """The store the dashboard uses (see the module doc)."""
    return stores.resolve(configured, root_dir)[0]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from .handlers import handlers  # lazy: tornado handlers load only when the server loads the extension

    settings = NbmlopsDashboard(parent=serverapp)
    path, source = stores.resolve(settings.store, serverapp.root_dir)
    # jupyter_server starts kernels with a copy of its environment: each kernel gets this one store,
    # whether its notebook sits at the root or in a subfolder (where it would otherwise find or make its own)
    os.environ["NBMLOPS_STORE"] = str(path)
    nbmlops.set_store(path)
    web_app = serverapp.web_app
    web_app.settings["nbmlops_stores"] = stores.Stores(Path(serverapp.root_dir).expanduser().resolve(), path, source)
    web_app.add_handlers(".*$", handlers(web_app.settings["base_url"]))
    # the first API call would otherwise pay for importing pandas (~0.3 s) and reading the store
    threading.Thread(target=_warm, name="nbmlops-dashboard-warm", daemon=True).start()
    serverapp.log.info("nbmlops dashboard at %snbmlops/ over the store %s (%s), handed to this server's kernels",
                       web_app.settings["base_url"], path, source)


def _warm() -> None:
    try:
        nbmlops.list_experiments()
    except Exception:  # noqa: BLE001 - best effort: the real request reports any problem itself
        pass


# the pre-2.0 name, for jupyter_server's legacy loader
load_jupyter_server_extension = _load_jupyter_server_extension
