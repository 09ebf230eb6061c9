"""``%features``: the feature store from a notebook. Thin: parse the line, call the public API, display."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display

import nbmlops

from ._args import parse, usage_errors, variable_or_path

ACTIONS = ("apply", "list", "show", "get", "materialize", "online", "service")
# options each action accepts (the others are refused, so a misplaced option is not silently ignored)
_ALLOWED = {
    "apply": {"name", "entity", "timestamp", "created", "ttl", "online", "features", "force", "description"},
    "list": set(), "show": set(),
    "get": {"entity_df", "out", "full_names", "timestamp"},
    "materialize": {"start", "end", "views"},
    "online": {"entity", "out", "full_names"},
    "service": {"description"},
}
_DEFAULTS = {"name": None, "entity": [], "timestamp": None, "created": None, "ttl": None, "online": False,
             "features": None, "force": False, "description": None, "entity_df": None, "out": None,
             "full_names": False, "start": None, "end": None, "views": None}


def _refs(items: list[str]) -> list[str]:
    return [r for item in items for r in (item or "").split(",") if r]


@magics_class
class Features(Magics):
    """``%features``: define feature views, build point-in-time training sets, look features up online."""

    @magic_arguments()
    @argument("action", nargs="?", default="list", help=f"one of: {', '.join(ACTIONS)}")
    @argument("args", nargs="*", help="apply: DF_OR_PATH; show: VIEW; get/online: REFS or SERVICE; service: NAME REFS")
    @argument("--name", help="apply: the view's name")
    @argument("--entity", action="append", default=[],
              help="apply: join key column or entity name (repeat or comma-separate for a composite key); "
                   "online: KEY=V1,V2,... (repeat for a composite key)")
    @argument("--timestamp", help="apply: the source's event-timestamp column (default event_timestamp); "
                                  "get: the entity DataFrame's time column")
    @argument("--created", help="apply: created-timestamp column (breaks ties between equal event times)")
    @argument("--ttl", help="apply: how old a value may be and still count, e.g. 7d, 12h, 1d12h (default: no limit)")
    @argument("--online", action="store_true", help="apply: keep the view in the online store (materializable)")
    @argument("--features", help="apply: comma-separated feature columns (default: every other column)")
    @argument("--force", action="store_true", help="apply: replace a view even if the change is incompatible")
    @argument("--description", help="apply/service: a description")
    @argument("--entity-df", dest="entity_df", help="get: the variable holding the entity DataFrame")
    @argument("-o", "--out", help="get/online: store the result in this variable instead of showing it")
    @argument("--full-names", dest="full_names", action="store_true", help="get/online: columns named view__feature")
    @argument("--start", help="materialize: window start (a date/time; naive = UTC); without it: incremental")
    @argument("--end", help="materialize: window end (default: now)")
    @argument("--views", help="materialize: comma-separated views (default: every online view)")
    @line_magic
    def features(self, line: str) -> Any:
        """Feature store commands:

          %features apply DF_OR_PATH --name VIEW --entity KEY [--timestamp COL] [--created COL] [--ttl 7d] [--online]
          %features list
          %features show VIEW
          %features get REFS|SERVICE --entity-df VAR [-o OUT_VAR]
          %features materialize [--start T] [--end T]
          %features online REFS --entity KEY=V1,V2 [-o OUT_VAR]
          %features service NAME REFS

        REFS: view:feature references, comma- or space-separated ("view" alone: all its features).
        Bad input gives one line and writes nothing.
        """
        args = parse(self.features, line)
        if args.action not in ACTIONS:
            raise UsageError(f"unknown %features action {args.action!r}: use one of {', '.join(ACTIONS)}")
        misplaced = [f"--{k.replace('_', '-')}" for k, default in _DEFAULTS.items()
                     if getattr(args, k) != default and k not in _ALLOWED[args.action]]
        if misplaced:
            raise UsageError(f"%features {args.action} does not take {', '.join(misplaced)}")
        with usage_errors():
            return getattr(self, f"_{args.action}")(args)

    # -- actions ----------------------------------------------------------------------
    def _apply(self, args: Any) -> None:
        if len(args.args) != 1:
            raise UsageError("usage: %features apply DF_OR_PATH --name VIEW --entity KEY [--timestamp COL] "
                             "[--created COL] [--ttl 7d] [--online]")
        if not args.name:
            raise UsageError("%features apply needs --name VIEW")
        entities = _refs(args.entity)
        if not entities:
            raise UsageError("%features apply needs --entity KEY (the join key column)")
        source = self._source(args.args[0] or "")
        features = _refs([args.features]) if args.features else None
        view = nbmlops.FeatureView(args.name, entities, source, features=features, ttl=args.ttl,
                                   online=args.online, description=args.description or "",
                                   timestamp_field=args.timestamp, created_timestamp_column=args.created)
        print(repr(nbmlops.apply_features([view], force=args.force)))

    def _source(self, text: str) -> Any:
        import pandas as pd

        kind, value = variable_or_path(self.shell, text)
        if kind == "variable":
            if not isinstance(value, pd.DataFrame):
                raise UsageError(f"{text} is a {type(value).__name__}, not a DataFrame")
            return value
        if kind != "path" or not Path(value).is_file():
            raise UsageError(f"no DataFrame variable or file named {text!r}")
        return text

    def _list(self, args: Any) -> None:
        if args.args:
            raise UsageError("usage: %features list")
        from ..features.catalog import feature_catalog  # lazy: %load_ext stays fast

        display(feature_catalog())

    def _show(self, args: Any) -> None:
        if len(args.args) != 1:
            raise UsageError("usage: %features show VIEW")
        name = args.args[0] or ""
        from ..features.repo import find  # lazy: %load_ext stays fast

        if find("service", name) is not None:
            display(nbmlops.get_feature_service(name))
        else:
            display(nbmlops.get_feature_view(name))

    def _get(self, args: Any) -> Any:
        import pandas as pd

        refs = _refs(args.args)
        if not refs or not args.entity_df:
            raise UsageError("usage: %features get REFS|SERVICE --entity-df VAR [-o OUT_VAR]")
        var = args.entity_df or ""
        kind, df = variable_or_path(self.shell, var)
        if kind != "variable" or not isinstance(df, pd.DataFrame):
            raise UsageError(f"--entity-df {var}: no DataFrame variable by that name")
        out = self._out(args.out)
        features = refs[0] if len(refs) == 1 else refs
        result = nbmlops.get_historical_features(df, features, full_feature_names=args.full_names,
                                                 timestamp_field=args.timestamp)
        return self._give(out, result)

    def _materialize(self, args: Any) -> None:
        if args.args:
            raise UsageError("usage: %features materialize [--start T] [--end T] [--views V1,V2]")
        views = _refs([args.views]) if args.views else None
        end = args.end or "now"
        if args.start:
            lines = nbmlops.materialize(args.start, end, views)
        else:
            lines = nbmlops.materialize_incremental(end, views)
        print("\n".join(lines))

    def _online(self, args: Any) -> Any:
        from ..features.online import entity_rows_from_text  # lazy: %load_ext stays fast

        refs = _refs(args.args)
        if not refs or not args.entity:
            raise UsageError("usage: %features online REFS --entity KEY=V1,V2 [-o OUT_VAR]")
        values: dict[str, list[str]] = {}
        for item in args.entity:
            key, sep, rest = (item or "").partition("=")
            if not sep or not key or not rest:
                raise UsageError(f"--entity takes KEY=V1,V2,..., got {item!r}")
            values[key] = rest.split(",")
        out = self._out(args.out)
        features = refs[0] if len(refs) == 1 else refs
        rows = entity_rows_from_text(features, values)
        result = nbmlops.get_online_features(features, rows, full_feature_names=args.full_names).to_df()
        return self._give(out, result)

    def _service(self, args: Any) -> None:
        if len(args.args) < 2:
            raise UsageError("usage: %features service NAME REFS")
        name, refs = args.args[0], _refs(args.args[1:])
        service = nbmlops.FeatureService(name, refs, description=args.description or "")
        print(repr(nbmlops.apply_features([service])))

    def _give(self, out: str | None, result: Any) -> Any:
        """``result`` as the cell's value, or with ``-o OUT`` put in the user's namespace with a one-line note."""
        if out is None:
            return result
        self.shell.user_ns[out] = result
        print(f"{out}: {len(result):,} rows × {len(result.columns)} columns")
        return None

    @staticmethod
    def _out(name: str | None) -> str | None:
        if name is not None and not name.isidentifier():
            raise UsageError(f"-o takes a variable name, got {name!r}")
        return name
