"""``diff_datasets``: what changed between two dataset versions.

Schema (columns added, removed, retyped), row counts and per-column summary shifts come from the
summaries stored with each version, so they work even for versions too big to snapshot. With
``key``, the rows themselves are compared: added, removed and changed rows by key.
"""

from __future__ import annotations

import math
from typing import Any

from .._util import json_ready
from ..errors import InvalidInput
from ..store import current_store
from . import datasets as ds
from .fingerprint import fingerprint

ROW_LIMIT = 1000  # rows of each kind kept on the diff object


def _side(data: Any, label: str) -> tuple[str, dict[str, Any], Any]:
    """(label, version-like document, loader) for a reference or an in-memory DataFrame."""
    import pandas as pd

    if isinstance(data, ds.DatasetVersion):
        doc = data.doc
        return data.uri, doc, lambda: ds.read_frame(data.store, doc)
    if isinstance(data, pd.DataFrame):
        fp = fingerprint(data)
        doc = {"name": label, "version": None, "sha256": fp["sha256"], "rows": len(data),
               "columns": fp["columns"], "dtypes": fp["dtypes"], "summary": ds.summarize(data), "blob": {}}
        return label, doc, lambda: data
    if not isinstance(data, str):
        raise InvalidInput(f"diff_datasets compares dataset references ('sales@2') or DataFrames, "
                           f"not {type(data).__name__}")
    store = current_store(create=False)
    doc = ds.resolve(ds._in_step(data), store)
    return f"{doc['name']}@{doc['version']}", doc, lambda: ds.read_frame(store, doc)


def diff_datasets(a: Any, b: Any, key: str | list[str] | None = None) -> DatasetDiff:
    """Compare dataset version ``a`` with ``b`` (``"sales@2"``, ``"sales@3"``, or DataFrames).

    >>> d = nbmlops.diff_datasets("sales@2", "sales@3", key="order_id")
    >>> d.schema, d.rows, d.added.head()
    """
    keys = [key] if isinstance(key, str) else list(key) if key is not None else []
    la, da, load_a = _side(a, "a")
    lb, db, load_b = _side(b, "b")
    for k in keys:
        for label, doc in ((la, da), (lb, db)):
            if k not in (doc["columns"] or []):
                raise InvalidInput(f"key column {k!r} is not in {label} (columns: {', '.join(doc['columns'] or [])})")
    diff = DatasetDiff(la, lb, da, db, keys)
    if keys:
        for label, doc in ((la, da), (lb, db)):
            if doc.get("blob") is None:
                raise InvalidInput(f"{label} has no stored rows ({doc.get('note')}): diff without key= to compare "
                                   "its schema and column summaries")
        diff._rows(load_a(), load_b())
    return diff


def _shift(sa: dict[str, Any], sb: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": sb.get("kind"), "null_share": (sa.get("null_share"), sb.get("null_share"))}
    if sa.get("kind") == sb.get("kind") == "numeric":
        for stat in ("mean", "std", "min", "median", "max"):
            out[stat] = (sa.get(stat), sb.get(stat))
        ma, mb, sd = sa.get("mean"), sb.get("mean"), sa.get("std")
        out["mean_shift_sd"] = ((mb - ma) / sd if sd else (0.0 if mb == ma else math.inf)) \
            if None not in (ma, mb) else None
    elif sa.get("kind") == sb.get("kind") == "categorical":
        ta, tb = sa.get("top") or {}, sb.get("top") or {}
        out["n_unique"] = (sa.get("n_unique"), sb.get("n_unique"))
        complete = (sa.get("n_unique", 0) <= len(ta)) and (sb.get("n_unique", 0) <= len(tb))
        out["new_values"] = [v for v in tb if v not in ta] if complete else [v for v in tb if v not in ta][:5]
        out["gone_values"] = [v for v in ta if v not in tb] if complete else []
        na, nb = sum(ta.values()) or 1, sum(tb.values()) or 1
        out["top_share"] = {v: (ta.get(v, 0) / na, tb.get(v, 0) / nb) for v in list(dict.fromkeys([*ta, *tb]))[:10]}
    elif sa.get("kind") == sb.get("kind") == "datetime":
        out["min"] = (sa.get("min"), sb.get("min"))
        out["max"] = (sa.get("max"), sb.get("max"))
    return out


NOTABLE_SD = 0.05


def _notable(sh: dict[str, Any]) -> bool:
    """Worth a line of its own: values appeared or went, missing share moved, or the mean moved 0.05 sd."""
    if sh.get("new_values") or sh.get("gone_values"):
        return True
    na, nb = sh["null_share"]
    if na != nb:
        return True
    shift = sh.get("mean_shift_sd")
    if shift is not None and abs(shift) >= NOTABLE_SD:
        return True
    if sh.get("kind") == "numeric" and None not in sh.get("std", (None, None)):
        sa, sb = sh["std"]
        return abs(sb - sa) > NOTABLE_SD * max(sa, 1e-12)  # the spread moved by 5% or more
    return sh.get("kind") not in ("numeric", "categorical")


def _changed(sh: dict[str, Any]) -> bool:
    for k, v in sh.items():
        if isinstance(v, tuple) and v[0] != v[1]:
            return True
        if k in ("new_values", "gone_values") and v:
            return True
    return False


class DatasetDiff:
    """Differences between two dataset versions: ``schema``, ``rows``, ``columns`` (summary shifts),
    and with a key ``added``, ``removed``, ``changed`` (DataFrames, at most 1,000 rows each)."""

    def __init__(self, la: str, lb: str, da: dict[str, Any], db: dict[str, Any], keys: list[str]) -> None:
        self.a, self.b = la, lb
        self.keys = keys
        self.identical = da["sha256"] == db["sha256"]
        self.rows = (da["rows"], db["rows"])
        ca, cb = list(da["columns"] or []), list(db["columns"] or [])
        ta, tb = dict(zip(ca, da["dtypes"] or [])), dict(zip(cb, db["dtypes"] or []))
        self.schema = {"added": [c for c in cb if c not in ta], "removed": [c for c in ca if c not in tb],
                       "retyped": {c: (ta[c], tb[c]) for c in ca if c in tb and ta[c] != tb[c]}}
        sa, sb = da.get("summary") or {}, db.get("summary") or {}
        self.columns = {c: _shift(sa[c], sb[c]) for c in ca if c in sb and c in sa}
        self.counts: dict[str, int] | None = None
        self.added = self.removed = self.changed = None

    @property
    def changed_columns(self) -> list[str]:
        """Common columns whose summary moved (any statistic, null share, or set of values)."""
        return [c for c, sh in self.columns.items() if _changed(sh)]

    def _rows(self, fa: Any, fb: Any) -> None:
        import pandas as pd

        k = self.keys
        for label, f in ((self.a, fa), (self.b, fb)):
            dup = int(f.duplicated(subset=k).sum())
            if dup:
                raise InvalidInput(f"key {', '.join(k)} is not unique in {label} ({dup:,} repeated keys); "
                                   "give columns that identify a row")
        common = [c for c in fa.columns if c in fb.columns and c not in k]
        merged = fa[[*k, *common]].merge(fb[[*k, *common]], on=k, how="outer", suffixes=("_a", "_b"), indicator=True)
        only_a, only_b = merged["_merge"] == "left_only", merged["_merge"] == "right_only"
        both = merged[merged["_merge"] == "both"]
        diff_mask = pd.Series(False, index=both.index)
        for c in common:
            x, y = both[f"{c}_a"], both[f"{c}_b"]
            diff_mask |= ~((x == y) | (x.isna() & y.isna()))
        self.counts = {"added": int(only_b.sum()), "removed": int(only_a.sum()), "changed": int(diff_mask.sum()),
                       "unchanged": int(len(both) - diff_mask.sum())}
        keys_added = merged.loc[only_b, k]
        keys_removed = merged.loc[only_a, k]
        self.added = fb.merge(keys_added, on=k).head(ROW_LIMIT)
        self.removed = fa.merge(keys_removed, on=k).head(ROW_LIMIT)
        changed = both[diff_mask].head(ROW_LIMIT)
        self.changed = changed[[*k, *[f"{c}_{s}" for c in common for s in ("a", "b")]]].reset_index(drop=True)

    def to_dict(self) -> dict[str, Any]:
        return json_ready({"a": self.a, "b": self.b, "identical": self.identical, "rows": list(self.rows),
                      "schema": self.schema, "changed_columns": self.changed_columns,
                      "columns": {c: {k: list(v) if isinstance(v, tuple) else v for k, v in sh.items()}
                                  for c, sh in self.columns.items()},
                      "keys": self.keys, "row_counts": self.counts})

    def lines(self) -> list[str]:
        """The diff in plain words, one fact a line."""
        if self.identical:
            return [f"{self.a} and {self.b} hold the same data"]
        ra, rb = self.rows
        out = [f"{self.a} → {self.b}: rows {ra:,} → {rb:,} ({rb - ra:+,})"]
        s = self.schema
        if s["added"]:
            out.append(f"columns added: {', '.join(s['added'])}")
        if s["removed"]:
            out.append(f"columns removed: {', '.join(s['removed'])}")
        for c, (x, y) in s["retyped"].items():
            out.append(f"column {c}: type {x} → {y}")
        if self.counts is not None:
            n = self.counts
            out.append(f"by {', '.join(self.keys)}: {n['added']:,} rows added, {n['removed']:,} removed, "
                       f"{n['changed']:,} changed, {n['unchanged']:,} unchanged")
        slight = []
        for c in self.changed_columns:
            sh = self.columns[c]
            if not _notable(sh):
                slight.append(c)
                continue
            parts = []
            if "mean" in sh and sh["mean"][0] != sh["mean"][1] and None not in sh["mean"]:
                sd = sh.get("mean_shift_sd")
                parts.append(f"mean {sh['mean'][0]:.4g} → {sh['mean'][1]:.4g}"
                             + (f" ({sd:+.2f} sd)" if sd not in (None, math.inf) else ""))
            if sh.get("new_values"):
                parts.append(f"new values {', '.join(map(str, sh['new_values'][:5]))}")
            if sh.get("gone_values"):
                parts.append(f"values gone {', '.join(map(str, sh['gone_values'][:5]))}")
            na, nb = sh["null_share"]
            if na != nb and None not in (na, nb):
                parts.append(f"missing {na:.1%} → {nb:.1%}")
            if not parts:
                parts.append("distribution moved")
            out.append(f"column {c}: {'; '.join(parts)}")
        if slight:
            out.append(f"moved slightly (mean within {NOTABLE_SD} sd, spread within 5%): {', '.join(slight)}")
        return out

    def __repr__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        from ..display.datasets import diff_card  # display delegation (listed in pyproject)

        return diff_card(self)
