"""``%nbmlops``: where the store is and what it holds; ``%nbmlops store PATH`` chooses it."""

from __future__ import annotations

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display

import nbmlops

from ._args import parse, usage_errors


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
            with usage_errors():
                path = nbmlops.set_store(args.path)
            print(f"nbmlops store: {path}")
            return
        if args.path:
            raise UsageError("usage: %nbmlops [store [PATH]]")
        with usage_errors():
            display(nbmlops.store_info())
