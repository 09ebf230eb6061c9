"""``%nbmlops``: where the store is and what it holds; ``%nbmlops store PATH`` chooses it."""

from __future__ import annotations

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display

import nbmlops

from ..errors import NbmlopsError
from ._args import parse


@magics_class
class Nbmlops(Magics):
    """``%nbmlops``: where the store is and what it holds; ``%nbmlops store PATH`` to choose it."""

    @magic_arguments()
    @argument("action", nargs="?", choices=["store", "info"], help="store [PATH]: show or set the store")
    @argument("path", nargs="?", help="store folder (or a folder holding .nbmlops/)")
    @line_magic
    def nbmlops(self, line: str) -> None:
        """Show the store in use and what it holds; `%nbmlops store PATH` switches to another store."""
        args = parse(self.nbmlops, line)
        if args.action == "store" and args.path:
            try:
                path = nbmlops.set_store(args.path)
            except NbmlopsError as exc:
                raise UsageError(str(exc)) from None
            print(f"nbmlops store: {path}")
            return
        if args.path:
            raise UsageError("usage: %nbmlops [store [PATH]]")
        try:
            display(nbmlops.store_info())
        except NbmlopsError as exc:
            raise UsageError(str(exc)) from None
