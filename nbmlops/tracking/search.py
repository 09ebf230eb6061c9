"""search_runs: filter and sort runs, MLflow's filter syntax, pandas out.

Filters are clauses joined by ``and``: ``metrics.accuracy > 0.9 and params.model = 'rf'
and tags.team != 'x' and status = 'FINISHED'``. Operators: ``= == != < <= > >= like ilike
in (...) not in (...)``. Names with odd characters go in backticks: ``metrics.`val loss` < 1``.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput
from ..store import current_store
from . import experiments

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


def _getter(ident: str) -> Callable[[dict[str, Any]], Any]:
    if "." not in ident:
        ident = "attributes." + ident
    kind, key = ident.split(".", 1)
    kind = _PREFIX.get(kind.lower(), kind.lower())
    key = key.strip('`"')
    if kind == "metrics":
        return lambda d: (d["metrics"].get(key) or {}).get("value")
    if kind in ("params", "tags"):
        return lambda d: d[kind].get(key)
    if key not in _ATTRS:
        raise InvalidInput(f"unknown run attribute {key!r} in filter; use one of {', '.join(sorted(_ATTRS))}")
    field = _ATTRS[key]
    return lambda d: d.get(field)


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


def parse_filter(text: str | None) -> Callable[[dict[str, Any]], bool]:
    """Compile a filter string into a predicate over run documents."""
    if not text or not text.strip():
        return lambda d: True
    clauses: list[Callable[[dict[str, Any]], bool]] = []
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
        get = _getter(toks[0][1])
        op = re.sub(r"\s+", " ", toks[1][1].lower())
        value = _literal(toks[2][0], toks[2][1])
        if (op in ("in", "not in")) != isinstance(value, list):
            raise InvalidInput(f"in clause {part!r}, IN takes a list like ('a', 'b') "
                               "and other operators a single value")
        if op in ("like", "ilike"):
            rx = _like(str(value), re.I if op == "ilike" else 0)
            clauses.append(lambda d, get=get, rx=rx: (v := get(d)) is not None and bool(rx.match(str(v))))
        else:
            clauses.append(lambda d, get=get, op=op, value=value: _compare(op, get(d), value))
    return lambda d: all(c(d) for c in clauses)


_IDENT = (r"(?:(?:metrics|params|tags|attributes|attribute|metric|param|tag|run)\."
          r"(?:`[^`]+`|\"[^\"]+\"|[\w.\-/:]+)|[A-Za-z_]\w*)")
_ORDER = re.compile(r"^\s*(" + _IDENT + r")(?:\s+(asc|desc))?\s*$", re.I)


def parse_order(spec: object) -> tuple[Callable[[dict[str, Any]], Any], bool]:
    """``"metrics.auc desc"`` -> (getter, descending). Anything else after the name is refused."""
    m = _ORDER.match(spec) if isinstance(spec, str) else None
    if m is None:
        raise InvalidInput(f"cannot order by {spec!r}: write a column and optionally ASC or DESC, "
                           "e.g. \"metrics.accuracy desc\" or \"start_time\"")
    return _getter(m.group(1)), (m.group(2) or "").lower() == "desc"


def _sort(docs: list[dict[str, Any]], order_by: Iterable[str]) -> list[dict[str, Any]]:
    """``docs`` stably sorted by each key (the first most significant); runs without a key's value
    go last, either way. Each value is read once per key."""
    for spec in reversed(list(order_by)):
        get, desc = parse_order(spec)
        keyed = [(get(d), d) for d in docs]
        present = [kd for kd in keyed if kd[0] is not None]
        try:
            present.sort(key=_first, reverse=desc)
        except TypeError:
            present.sort(key=lambda kd: str(kd[0]), reverse=desc)
        docs = [d for _, d in present] + [d for v, d in keyed if v is None]
    return docs


def _first(kd: tuple[Any, Any]) -> Any:
    return kd[0]


def search_runs(experiment: str | list[str] | None = None, filter: str | None = None,
                order_by: str | list[str] | None = None, max_results: int | None = None,
                include_deleted: bool = False) -> pd.DataFrame:
    """Runs as a DataFrame with ``params.*``, ``metrics.*`` and ``tags.*`` columns, newest first.

    >>> nbmlops.search_runs("churn", "metrics.auc > 0.8", order_by="metrics.auc desc", max_results=5)
    """
    if max_results is not None and (not isinstance(max_results, int) or max_results < 0):
        raise InvalidInput(f"max_results must be a non-negative integer, got {max_results!r}")
    keep = parse_filter(filter)
    order = [order_by] if isinstance(order_by, str) else list(order_by or [])
    for spec in order:
        parse_order(spec)  # refused before the store is read
    store = current_store(create=False)
    exps = store.experiments.all()
    if experiment is not None:
        wanted = [experiment] if isinstance(experiment, str) else list(experiment)
        exps = [experiments.find(store, w) for w in wanted]
    names = {e["id"]: e["name"] for e in exps}
    docs = [d for e in exps for d in store.run_docs(e["id"]) if (include_deleted or not d.get("deleted")) and keep(d)]
    docs = _sort(docs, [*order, "start_time desc"])
    if max_results is not None:
        docs = docs[:max_results]
    return runs_frame(docs, names)


def runs_frame(docs: list[dict[str, Any]], names: dict[str, str], params: list[str] | None = None,
               metrics: list[str] | None = None, tags: list[str] | None = None) -> pd.DataFrame:
    """Run documents as ``search_runs``' DataFrame; the key lists default to those the documents use."""
    import pandas as pd

    params = sorted({k for d in docs for k in d["params"]}) if params is None else params
    metrics = sorted({k for d in docs for k in d["metrics"]}) if metrics is None else metrics
    tags = sorted({k for d in docs for k in d["tags"]}) if tags is None else tags
    base = ["run_id", "experiment", "run_name", "status", "start_time", "end_time", "duration", "user"]
    columns = base + [f"params.{k}" for k in params] + [f"metrics.{k}" for k in metrics] + [f"tags.{k}" for k in tags]
    rows = []
    for d in docs:
        row = [d["id"], names[d["experiment_id"]], d["name"], d["status"], d["start_time"], d["end_time"],
               d["duration"], d["user"]]
        p, m, t = d["params"], d["metrics"], d["tags"]
        row += [p.get(k) for k in params]
        row += [(m.get(k) or {}).get("value") for k in metrics]
        row += [t.get(k) for k in tags]
        rows.append(row)
    df = pd.DataFrame(rows, columns=columns)
    for i, col in ((4, "start_time"), (5, "end_time")):
        df[col] = _times([r[i] for r in rows])
    for k in metrics:
        df[f"metrics.{k}"] = df[f"metrics.{k}"].astype("float64")
    return df


def _times(ms: list[int | None]) -> Any:
    """Milliseconds (None for a run still going) as datetime64, NaT for None. Not through floats:
    pandas < 3 overflows on NaN there now and then (pandas-dev/pandas#58419)."""
    import numpy as np

    nat = np.iinfo(np.int64).min
    return np.array([nat if v is None else v for v in ms], dtype=np.int64).view("datetime64[ms]")
