"""``%register``: put a fitted model (or a run's model) in the registry, move aliases, list."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display

import nbmlops

from ._args import parse, parse_tags, usage_errors, variable_or_path

USAGE = ("usage: %register VARIABLE NAME [--alias A] [--tag K=V ...] [--description TEXT] [-o VAR] | "
         "%register --run RUN_ID[:MODEL] NAME [...] | %register NAME --alias A --version N | %register --list [NAME]")


@magics_class
class Register(Magics):
    @magic_arguments()
    @argument("args", nargs="*", help="VARIABLE NAME, or NAME (with --run, or --alias and --version, or --list)")
    @argument("--run", metavar="RUN_ID[:MODEL]", help="register the model a run logged")
    @argument("-a", "--alias", help="point this alias (e.g. production) at the version")
    @argument("-v", "--version", type=int, help="with --alias: the version to point it at")
    @argument("-t", "--tag", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help="version tags")
    @argument("-d", "--description", help="what this version is")
    @argument("-l", "--list", action="store_true", help="show the registered models, or the versions of NAME")
    @argument("-o", "--output", metavar="VAR", help="keep the new version (a ModelVersion) in this notebook variable")
    @line_magic
    def register(self, line: str) -> None:
        """Register a fitted model from a notebook variable (linked to the %%track run that fitted
        it), or a run's model; move an alias; or list the registry."""
        args = parse(self.register, line)
        names, out = list(args.args), args.output
        tags = parse_tags(args.tag)
        if out is not None and (not out.isidentifier() or args.list or args.version is not None):
            raise UsageError(f"-o takes a variable name and only goes with registering, got {out!r}")
        with usage_errors():
            if args.list:
                if len(names) > 1 or args.run or args.version is not None:
                    raise UsageError(USAGE)
                display(nbmlops.list_versions(names[0]) if names else nbmlops.list_models())
                return
            if args.version is not None:
                if len(names) != 1 or not args.alias or args.run:
                    raise UsageError("to move an alias: %register NAME --alias ALIAS --version N")
                display(nbmlops.set_alias(names[0], args.alias, args.version))
                return
            source = self._source(args.run, names)
            version = nbmlops.register_model(source, names[0], alias=args.alias, tags=tags,
                                             description=args.description)
            if out is not None:
                self.shell.user_ns[out] = version
            display(version)

    def _source(self, run: str | None, names: list[str]) -> Any:
        """What to register: ``--run RUN_ID[:MODEL]``, or the notebook variable named first (popped from ``names``)."""
        if run:
            if len(names) != 1:
                raise UsageError(USAGE)
            return run
        if len(names) != 2:
            raise UsageError(USAGE)
        variable = names.pop(0)
        kind, value = variable_or_path(self.shell, variable)
        if kind != "variable":
            raise UsageError(f"no variable {variable!r} in the notebook")
        return value
