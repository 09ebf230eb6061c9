"""search_runs: filter and sort runs, MLflow's filter syntax, pandas out.

Filters are clauses joined by ``and``: ``metrics.accuracy > 0.9 and params.model = 'rf'
and tags.team != 'x' and status = 'FINISHED'``. Operators: ``= == != < <= > >= like ilike
in (...) not in (...)``. Names with odd characters go in backticks: ``metrics.`val loss` < 1``.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import InvalidInput
from ..store import current_store
from . import experiments, selection

if TYPE_CHECKING:
    import pandas as pd

_ATTRS = {"run_id": "id", "id": "id", "run_name": "name", "name": "name", "status": "status", "user": "user",
          "start_time": "start_time", "end_time": "end_time", "duration": "duration", "notebook": "notebook",
          "experiment_id": "experiment_id", "git_commit": "git_commit"}
_TOKEN = re.compile(r"""\s*(?:
    (?P<op>==|!=|<=|>=|=|<|>|\bnot\s+in\b|\bin\b|\bilike\b|\blike\b)
  | (?P<ident>(?:metrics|params|tags|attributes|attribute|metric|param|tag|run)
     \.(?:`[^`]+`|"[^"]+"|[\w.\-/:]+)|[A-Za-z_]\w*)
  | (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<list>\((?:[^()'"]|'[^']*'|"[^"]*")*\))
)""", re.X | re.I)
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}
_PREFIX = {"metric": "metrics", "param": "params", "tag": "tags", "attribute": "attributes", "run": "attributes"}


def _field(ident: str) -> tuple[str, str]:
    """(kind, key) of a filter or order name: kind is metrics, params, tags or attributes (then key
    is the run document's field)."""
    if "." not in ident:
        ident = "attributes." + ident
    kind, key = ident.split(".", 1)
    kind = _PREFIX.get(kind.lower(), kind.lower())
    key = key.strip('`"')
    if kind in ("metrics", "params", "tags"):
        return kind, key
    if key not in _ATTRS:
        raise InvalidInput(f"unknown run attribute {key!r} in filter; use one of {', '.join(sorted(_ATTRS))}")
    return "attributes", _ATTRS[key]


_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|x[0-9a-fA-F]{2}|[0-7]{1,3}|.)", re.S)


def _literal(kind: str, text: str) -> Any:
    if kind == "num":
        return float(text) if any(c in text for c in ".eE") else int(text)
    if kind == "str":  # escapes decoded one by one: the rest of the text stays as typed (é, ü, 中)
        return _ESCAPE.sub(lambda m: codecs.decode(m.group(0), "unicode_escape"), text[1:-1])
    items = re.findall(r"""'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|([-+]?[\d.]+(?:[eE][-+]?\d+)?)""", text[1:-1])
    return [a or b or (float(c) if any(x in c for x in ".eE") else int(c)) for a, b, c in items]


def _like(pattern: str, flags: int) -> re.Pattern[str]:
    return re.compile("^" + re.escape(pattern).replace("%", ".*").replace("_", ".") + "$", flags | re.S)


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is None:
        return op == "!=" and right is not None
    if op in ("in", "not in"):
        hit = left in right or str(left) in [str(r) for r in right]
        return hit if op == "in" else not hit
    if isinstance(right, (int, float)) and not isinstance(left, (int, float)):
        try:
            left = float(left)
        except (TypeError, ValueError):
            return op == "!="
    elif isinstance(right, str) and not isinstance(left, str):
        left = str(left)
    try:
        return _OPS[op](left, right)
    except TypeError:
        return False


class Clause(NamedTuple):
    """One condition of a filter: the run's value of (kind, key) passes ``test`` (None: no value)."""
    kind: str
    key: str
    op: str
    value: Any
    test: Callable[[Any], bool]


def parse_clauses(text: str | None) -> list[Clause]:
    """The conditions of a filter string (none for an empty one); a malformed one raises InvalidInput."""
    if not text or not text.strip():
        return []
    clauses: list[Clause] = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.I):
        pos, toks = 0, []
        while pos < len(part):
            m = _TOKEN.match(part, pos)
            if not m or m.end() == pos:
                raise InvalidInput(f"cannot parse filter near {part[pos:]!r}; write e.g. "
                                   "\"metrics.accuracy > 0.9 and params.model = 'rf'\"")
            pos = m.end()
            toks.append((m.lastgroup, m.group(m.lastgroup)))
        if len(toks) != 3 or toks[0][0] != "ident" or toks[1][0] != "op" or toks[2][0] not in ("num", "str", "list"):
            raise InvalidInput(f"filter clause {part!r} must be NAME OPERATOR VALUE, e.g. metrics.accuracy > 0.9")
        kind, key = _field(toks[0][1])
        op = re.sub(r"\s+", " ", toks[1][1].lower())
        value = _literal(toks[2][0], toks[2][1])
        if (op in ("in", "not in")) != isinstance(value, list):
            raise InvalidInput(f"in clause {part!r}, IN takes a list like ('a', 'b') "
                               "and other operators a single value")
        if op in ("like", "ilike"):
            rx = _like(str(value), re.I if op == "ilike" else 0)
            test: Callable[[Any], bool] = lambda v, rx=rx: v is not None and bool(rx.match(str(v)))  # noqa: E731
        else:
            test = lambda v, op=op, value=value: _compare(op, v, value)  # noqa: E731
        clauses.append(Clause(kind, key, op, value, test))
    return clauses


_IDENT = (r"(?:(?:metrics|params|tags|attributes|attribute|metric|param|tag|run)\."
          r"(?:`[^`]+`|\"[^\"]+\"|[\w.\-/:]+)|[A-Za-z_]\w*)")
_ORDER = re.compile(r"^\s*(" + _IDENT + r")(?:\s+(asc|desc))?\s*$", re.I)


def parse_order(spec: object) -> tuple[str, str, bool]:
    """``"metrics.auc desc"`` -> ("metrics", "auc", descending). Anything else after the name is refused."""
    m = _ORDER.match(spec) if isinstance(spec, str) else None
    if m is None:
        raise InvalidInput(f"cannot order by {spec!r}: write a column and optionally ASC or DESC, "
                           "e.g. \"metrics.accuracy desc\" or \"start_time\"")
    return (*_field(m.group(1)), (m.group(2) or "").lower() == "desc")


def search_runs(experiment: str | list[str] | None = None, filter: str | None = None,
                order_by: str | list[str] | None = None, max_results: int | None = None,
                include_deleted: bool = False) -> pd.DataFrame:
    """Runs as a DataFrame with ``params.*``, ``metrics.*`` and ``tags.*`` columns, newest first.

    >>> nbmlops.search_runs("churn", "metrics.auc > 0.8", order_by="metrics.auc desc", max_results=5)
    """
    if max_results is not None and (not isinstance(max_results, int) or max_results < 0):
        raise InvalidInput(f"max_results must be a non-negative integer, got {max_results!r}")
    clauses = parse_clauses(filter)
    specs = [order_by] if isinstance(order_by, str) else list(order_by or [])
    orders = [parse_order(spec) for spec in specs]  # refused before the store is read
    store = current_store(create=False)
    exps = store.experiments.all()
    if experiment is not None:
        wanted = [experiment] if isinstance(experiment, str) else list(experiment)
        exps = [experiments.find(store, w) for w in wanted]
    names = {e["id"]: e["name"] for e in exps}
    table = selection.runs_table(store, [e["id"] for e in exps])
    rows = selection.select(table, clauses, include_deleted)
    for kind, key, desc in reversed([*orders, ("attributes", "start_time", True)]):
        rows = selection.order(table, rows, kind, key, desc)
    if max_results is not None:
        rows = rows[:max_results]
    return selection.frame(table, rows, names)
