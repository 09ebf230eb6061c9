"""Dataset versions: the data itself, not only its fingerprint.

``log_dataset(df, "sales", snapshot=True)`` stores the rows as a Parquet blob (content-addressed,
so the same bytes are kept once) and records them as version N of dataset ``sales``:

    db/datasets.json              one document per dataset (name, id, next version number)
    db/datasets/<dataset id>.json its versions: fingerprint, shape, dtypes, per-column summary,
                                  the Parquet blob's sha256 (or why there is none), run, source

Logging data equal to the latest version (same fingerprint) returns that version instead of
adding one. Data bigger in memory than the snapshot limit (``NBMLOPS_SNAPSHOT_LIMIT``, default
1 GB, or ``max_bytes=``) keeps only its fingerprint and summary; the version says so.

Inside a pipeline step, ``load_dataset("sales")`` returns the version the pipeline passes to
the step, not the latest one: the step installs a resolver (``tracking.session.set_dataset_resolver``;
``nbmlops.pipelines.context`` does).
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from .._util import check_key, new_id, now_ms
from ..errors import InvalidInput, NotFound, StoreError
from ..store import SCHEMA, DamagedFile, Store, current_store
from ..store.records import DatasetBlob, DatasetRecord, DatasetVersionRecord, RunDataset
from . import environment
from .fingerprint import fingerprint
from .session import active_run, dataset_resolver

if TYPE_CHECKING:
    import pandas as pd

    from .runs import Run

DEFAULT_LIMIT = 1_000_000_000
TOP_VALUES = 20
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?i?b?)?\s*$", re.I)
_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "kib": 1024, "m": 1e6, "mb": 1e6, "mib": 1024**2,
          "g": 1e9, "gb": 1e9, "gib": 1024**3, "t": 1e12, "tb": 1e12, "tib": 1024**4}
_READERS = {".csv": "read_csv", ".tsv": "read_csv", ".parquet": "read_parquet", ".pq": "read_parquet",
            ".json": "read_json", ".jsonl": "read_json", ".feather": "read_feather"}


# -- sizes ----------------------------------------------------------------------------------
def parse_size(value: Any) -> int:
    """Bytes from ``1_000_000``, ``"500MB"``, ``"2 GiB"``."""
    if isinstance(value, bool):
        raise InvalidInput(f"a size is a number of bytes or a text like '500MB', not {value!r}")
    if isinstance(value, (int, float)) and value >= 0:
        return int(value)
    m = _SIZE.match(str(value)) if isinstance(value, str) else None
    if not m or (m.group(2) or "").lower() not in _UNITS:
        raise InvalidInput(f"a size is a number of bytes or a text like '500MB' or '2GiB', not {value!r}")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])


def snapshot_limit(max_bytes: Any = None) -> int:
    """The size in memory above which a dataset keeps only its fingerprint."""
    if max_bytes is not None:
        return parse_size(max_bytes)
    env = os.environ.get("NBMLOPS_SNAPSHOT_LIMIT")
    return parse_size(env) if env else DEFAULT_LIMIT


def _mb(n: float) -> str:
    if n < 1e3:
        return f"{n:.0f} bytes"
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


# -- references -----------------------------------------------------------------------------
def parse_ref(ref: Any) -> tuple[str, int | None]:
    """``"sales"`` -> ("sales", None); ``"sales@3"`` -> ("sales", 3); ``"sales@latest"`` -> ("sales", None)."""
    if not isinstance(ref, str):
        raise InvalidInput(f"a dataset reference is a string like 'sales' or 'sales@3', not {type(ref).__name__}")
    name, at, version = ref.strip().rpartition("@")
    if not at:
        return check_key("dataset", ref.strip()), None
    if version == "latest":
        return check_key("dataset", name), None
    if not version.isdigit() or int(version) < 1:
        raise InvalidInput(f"in {ref!r}, the version after '@' must be a positive number or 'latest' (e.g. {name}@3)")
    return check_key("dataset", name), int(version)


# -- turning input into a frame ---------------------------------------------------------------
def _as_frame(data: Any) -> tuple[Any, dict[str, Any]]:
    """(DataFrame or None, how to give the data back). None: not tabular (sparse), fingerprint only."""
    import numpy as np
    import pandas as pd

    if isinstance(data, (str, Path)):
        path = Path(data).expanduser()
        if not path.exists():
            raise InvalidInput(f"cannot log dataset: no file {str(data)!r}")
        reader = _READERS.get(path.suffix.lower())
        if path.is_dir() or reader is None:
            raise InvalidInput(f"cannot log dataset from {path.name!r}: give a DataFrame or a .csv, .parquet, "
                               ".json, .jsonl or .feather file")
        kwargs: dict[str, Any] = {"sep": "\t"} if path.suffix.lower() == ".tsv" else {}
        if path.suffix.lower() == ".jsonl":
            kwargs["lines"] = True
        try:
            df = getattr(pd, reader)(path, **kwargs)
        except (ValueError, OSError, ImportError) as exc:
            raise InvalidInput(f"cannot read {path.name!r}: {exc}") from None
        return df, {"kind": "DataFrame", "source": str(path.resolve())}
    if isinstance(data, pd.DataFrame):
        return data, {"kind": "DataFrame"}
    if isinstance(data, pd.Series):
        name = data.name if data.name is not None else "value"
        series_name = None if data.name is None else str(data.name)
        return data.to_frame(str(name)), {"kind": "Series", "series_name": series_name}
    sparse = sys.modules.get("scipy.sparse")
    if sparse is not None and sparse.issparse(data):
        return None, {"kind": "sparse"}
    try:
        arr = np.asarray(data)
    except Exception as exc:
        raise InvalidInput(f"cannot log a {type(data).__name__} as a dataset: {exc}") from None
    if arr.ndim not in (1, 2):
        raise InvalidInput(f"cannot snapshot a {arr.ndim}-dimensional array; give a table (1 or 2 dimensions)")
    width = arr.shape[1] if arr.ndim == 2 else 1
    frame = pd.DataFrame(arr.reshape(len(arr), -1), columns=[f"x{i}" for i in range(width)])
    return frame, {"kind": "ndarray", "ndim": int(arr.ndim)}


def _column_names(df: Any) -> tuple[Any, str | None]:
    """Parquet wants text column names: ints become text (and come back as ints)."""
    cols = list(df.columns)
    if all(isinstance(c, str) for c in cols):
        return df, None
    if all(isinstance(c, int) and not isinstance(c, bool) for c in cols):
        return df.rename(columns=str), "int"
    return df.rename(columns=str), "str"


def _to_parquet(df: Any) -> bytes:
    buf = io.BytesIO()
    try:
        df.to_parquet(buf)
    except Exception as exc:  # pyarrow's ArrowInvalid/ArrowTypeError: mixed-type object columns and the like
        raise InvalidInput(f"cannot store this data as Parquet: {exc} (convert the column to one type, e.g. "
                           "df[col].astype(str))") from None
    return buf.getvalue()


def summarize(df: Any) -> dict[str, Any]:
    """Per-column numbers that a diff compares (kept even when the rows are not)."""
    import numpy as np
    import pandas as pd

    out: dict[str, Any] = {}
    n = len(df)
    for col in df.columns:
        s = df[col]
        nulls = int(s.isna().sum())
        entry: dict[str, Any] = {"dtype": str(s.dtype), "nulls": nulls, "null_share": nulls / n if n else 0.0}
        if pd.api.types.is_bool_dtype(s.dtype) or not (pd.api.types.is_numeric_dtype(s.dtype)
                                                       or pd.api.types.is_datetime64_any_dtype(s.dtype)):
            counts = s.astype("object").where(s.notna(), None).dropna().astype(str).value_counts()
            entry.update(kind="categorical", n_unique=int(len(counts)),
                         top={str(k): int(v) for k, v in counts.head(TOP_VALUES).items()})
        elif pd.api.types.is_datetime64_any_dtype(s.dtype):
            v = s.dropna()
            entry.update(kind="datetime", min=str(v.min()) if len(v) else None, max=str(v.max()) if len(v) else None)
        else:
            v = s.dropna().to_numpy(dtype="float64")
            v = v[np.isfinite(v)]
            if len(v):
                q = np.quantile(v, [0.25, 0.5, 0.75])
                entry.update(kind="numeric", mean=float(v.mean()), std=float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                             min=float(v.min()), q25=float(q[0]), median=float(q[1]), q75=float(q[2]),
                             max=float(v.max()))
            else:
                entry.update(kind="numeric", mean=None, std=None, min=None, q25=None, median=None, q75=None, max=None)
        out[str(col)] = entry
    return out


# -- writing --------------------------------------------------------------------------------
def log_version(data: Any, name: str, *, run: Run | None = None, role: str | None = None,
                max_bytes: Any = None, store: Store | None = None) -> DatasetVersion:
    """Store ``data`` as the next version of dataset ``name`` (see the module doc).

    With ``run`` (default: the active run, if any) the version is also recorded on the run, so
    a model registered from it names this exact version in its lineage."""
    check_key("dataset", name)
    limit = snapshot_limit(max_bytes)
    if run is None:
        run = active_run()
    if run is not None:
        run._check_open()
    frame, how = _as_frame(data)
    fp = fingerprint(frame if "source" in how else data)
    store = store or (run._store if run is not None else current_store())
    store.ensure()
    blob, note, summary = None, None, None
    if frame is None:
        note = f"a {type(data).__name__} is not a table: only its fingerprint was kept"
    else:
        summary = summarize(frame)
        size = int(frame.memory_usage(deep=True, index=True).sum())
        if size > limit:
            note = (f"not stored: {_mb(size)} in memory is over the snapshot limit of {_mb(limit)} "
                    "(raise it with max_bytes= or NBMLOPS_SNAPSHOT_LIMIT); only the fingerprint and column "
                    "summaries were kept")
            warnings.warn(f"dataset {name!r}: {note}", stacklevel=3)
    latest = _latest(store, name)
    if latest is not None and _same_as_latest(latest, fp, note):
        doc = latest  # the same data as the latest version: that version, not a new one (checked again under the lock)
    else:
        if frame is not None:
            renamed, how["column_names"] = _column_names(frame)
            if note is None:
                blob = _same_content(store, name, fp["sha256"])
                if blob is None:
                    sha, size_b = store.blobs.put_bytes(_to_parquet(renamed))
                    blob = {"sha256": sha, "size": size_b, "format": "parquet"}
        doc = _insert(store, name, fp, blob, note, summary, how, run)
    version = DatasetVersion(store, doc)
    if run is not None:
        record_on_run(run, version, role)
    return version


def _insert(store: Store, name: str, fp: dict[str, Any], blob: DatasetBlob | None, note: str | None,
            summary: dict[str, Any] | None, how: dict[str, Any], run: Run | None) -> DatasetVersionRecord:
    version: dict[str, Any] = {
        "schema": SCHEMA, "id": new_id(), "name": name, "version": None, "sha256": fp["sha256"],
        "kind": how["kind"], "shape": fp["shape"], "rows": fp["shape"][0] if fp["shape"] else None,
        "columns": fp["columns"], "dtypes": fp["dtypes"], "blob": blob, "note": note, "summary": summary,
        "restore": {k: v for k, v in how.items() if k not in ("kind", "source")}, "source": how.get("source"),
        "created": now_ms(), "user": environment.user(),
        "run_id": run.id if run is not None else None, "run_name": run.name if run is not None else None,
    }
    with store.datasets().edit() as datasets:
        found = datasets.get(name=name)
        ds = found or {"schema": SCHEMA, "id": new_id(), "name": name, "next_version": 1, "created": now_ms()}
        with store.dataset_versions(ds["id"]).edit() as versions:
            latest = max(versions.all(), key=lambda v: v["version"], default=None)
            if _same_as_latest(latest, fp, note):  # a writer logged the same data since we looked
                return json.loads(json.dumps(latest))
            existing = latest["version"] if latest else 0
            version["dataset_id"] = ds["id"]
            version["version"] = max(ds["next_version"], existing + 1)
            versions.insert(version)
        ds.update(next_version=version["version"] + 1, updated=now_ms(), latest=version["version"])
        if found:
            datasets.update(ds, id=ds["id"])
        else:
            datasets.insert(ds)
    return version  # type: ignore[return-value]


def _same_as_latest(latest: DatasetVersionRecord | dict[str, Any] | None, fp: dict[str, Any], note: str | None) -> bool:
    """Whether logging data with fingerprint ``fp`` gives back ``latest`` instead of a new version:
    same data, and either kept in the store or not to be kept now either."""
    return latest is not None and latest["sha256"] == fp["sha256"] and bool(latest["blob"] or note)


def record_on_run(run: Run, version: DatasetVersion, role: str | None = None) -> RunDataset:
    """Name this exact version in the run's datasets (its lineage)."""
    doc = version.doc
    entry: RunDataset = {
        "name": doc["name"], "sha256": doc["sha256"], "kind": doc["kind"], "shape": doc["shape"],
        "columns": doc["columns"], "dtypes": doc["dtypes"], "version": doc["version"], "dataset_id": doc["dataset_id"],
        "snapshot": doc["blob"]["sha256"] if doc["blob"] else None, **({"role": role} if role else {})}  # type: ignore[typeddict-item]
    with run._lock:
        kept = [d for d in run._doc["datasets"] if d["name"] != doc["name"]]
        run._save({"datasets": [*kept, entry]})
    return entry


# -- reading --------------------------------------------------------------------------------
def _datasets(store: Store) -> list[DatasetRecord]:
    return cast(list[DatasetRecord], store.datasets().all())


def _dataset_doc(store: Store, name: str) -> DatasetRecord | None:
    for d in _datasets(store):
        if d["name"] == name:
            return d
    return None


def _versions(store: Store, ds: DatasetRecord) -> list[DatasetVersionRecord]:
    return sorted(cast(list[DatasetVersionRecord], store.dataset_versions(ds["id"]).all()), key=lambda d: d["version"])


def _latest(store: Store, name: str) -> DatasetVersionRecord | None:
    ds = _dataset_doc(store, name)
    if ds is None:
        return None
    versions = _versions(store, ds)
    return json.loads(json.dumps(versions[-1])) if versions else None


def _same_content(store: Store, name: str, sha: str) -> DatasetBlob | None:
    """The blob of an earlier version with this fingerprint (logging it again writes nothing)."""
    ds = _dataset_doc(store, name)
    for v in reversed(_versions(store, ds) if ds else []):
        blob = v.get("blob")
        if v["sha256"] == sha and blob and store.blobs.path(blob["sha256"]).exists():
            return blob.copy()
    return None


def resolve(ref: str, store: Store | None = None) -> DatasetVersionRecord:
    """The version document ``ref`` (``name`` or ``name@N``) names; NotFound says what exists."""
    name, number = parse_ref(ref)
    store = store or current_store(create=False)
    docs = _datasets(store) if store.exists() else []
    ds = next((d for d in docs if d["name"] == name), None)
    if ds is None:
        have = ", ".join(sorted(d["name"] for d in docs)) or "none yet"
        raise NotFound(f"no dataset named {name!r} (datasets: {have}); log one with "
                       f"nbmlops.log_dataset(df, {name!r}, snapshot=True)")
    versions = _versions(store, ds)
    if number is None:
        if not versions:
            raise NotFound(f"dataset {name!r} has no versions")
        return json.loads(json.dumps(versions[-1]))
    for v in versions:
        if v["version"] == number:
            return json.loads(json.dumps(v))
    have = _ranges([v["version"] for v in versions])
    raise NotFound(f"dataset {name!r} has no version {number} (versions: {have})")


def _ranges(numbers: list[int]) -> str:
    if not numbers:
        return "none"
    out, start, prev = [], numbers[0], numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(out)


def get_dataset_version(ref: str) -> DatasetVersion:
    """The record of a dataset version: ``"sales"`` (latest) or ``"sales@3"``."""
    store = current_store(create=False)
    return DatasetVersion(store, resolve(_in_step(ref), store))


def load_dataset(ref: str) -> Any:
    """The data of a dataset version, as it was logged (a DataFrame, Series or array).

    >>> train = nbmlops.load_dataset("churn@3")

    Inside a pipeline step, an unpinned name gives the version the pipeline passes to the step."""
    resolver = dataset_resolver()
    local = resolver.load_local(ref) if resolver is not None else None
    if local is not None:
        return local
    return get_dataset_version(ref).load()


def _in_step(ref: str) -> str:
    """``name@N`` when a pipeline step receives dataset ``name`` as an input, else ``ref``."""
    resolver = dataset_resolver()
    if resolver is not None and isinstance(ref, str) and "@" not in ref:
        return resolver.pinned(ref) or ref
    return ref


def list_datasets(name: str | None = None) -> pd.DataFrame:
    """Datasets (one row each), or with ``name`` the versions of that dataset."""
    import pandas as pd

    store = current_store(create=False)
    docs = _datasets(store) if store.exists() else []
    if name is not None:
        ds = next((d for d in docs if d["name"] == check_key("dataset", name)), None)
        if ds is None:
            resolve(name, store)  # raises NotFound naming what exists
        rows = [{"version": v["version"], "rows": v["rows"], "columns": len(v["columns"] or []),
                 "stored": bool(v["blob"]), "size": v["blob"]["size"] if v["blob"] else None,
                 "sha256": v["sha256"][:12], "run": v.get("run_name"), "created": pd.Timestamp(v["created"], unit="ms"),
                 "note": v.get("note")}
                for v in _versions(store, ds)]  # type: ignore[arg-type]
        return pd.DataFrame(rows, columns=["version", "rows", "columns", "stored", "size", "sha256", "run",
                                           "created", "note"])
    rows = []
    for ds in sorted(docs, key=lambda d: d["name"]):
        try:
            versions: list[DatasetVersionRecord] | None = _versions(store, ds)
        except StoreError as exc:  # one damaged versions file: name it, list the other datasets
            warnings.warn(f"left out of the listing: {exc}", DamagedFile, stacklevel=2)
            versions = None
        last: Mapping[str, Any] = versions[-1] if versions else {}
        blobs = {blob["sha256"]: blob["size"] for v in versions or [] if (blob := v.get("blob"))}
        rows.append({"name": ds["name"], "latest_version": last.get("version"),
                     "versions": None if versions is None else len(versions),
                     "rows": last.get("rows"), "columns": len(last.get("columns") or []),
                     "stored_bytes": None if versions is None else sum(blobs.values()),
                     "updated": pd.Timestamp(ds.get("updated") or ds["created"], unit="ms")})
    return pd.DataFrame(rows, columns=["name", "latest_version", "versions", "rows", "columns", "stored_bytes",
                                       "updated"])


def read_frame(store: Store, doc: DatasetVersionRecord) -> Any:
    """The stored DataFrame of a version document (its blob checked against its sha256)."""
    import pandas as pd

    blob = doc.get("blob")
    if not blob:
        raise NotFound(f"dataset {doc['name']}@{doc['version']} has no stored data: "
                       f"{doc.get('note') or 'only its fingerprint was kept'}")
    df = pd.read_parquet(store.blobs.verified_path(blob["sha256"]))
    if (doc.get("restore") or {}).get("column_names") == "int":
        df.columns = [int(c) for c in df.columns]
    return df


class DatasetVersion:
    """One version of a dataset: ``name``, ``version``, ``uri`` (``name@N``), ``load()``."""

    def __init__(self, store: Store, doc: DatasetVersionRecord) -> None:
        self.store = store
        self.doc = doc

    name = property(lambda self: self.doc["name"])
    version = property(lambda self: self.doc["version"])
    sha256 = property(lambda self: self.doc["sha256"])
    rows = property(lambda self: self.doc["rows"])
    columns = property(lambda self: list(self.doc["columns"] or []))
    summary = property(lambda self: self.doc.get("summary"))

    @property
    def uri(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def stored(self) -> bool:
        """Whether the rows themselves are in the store (False: over the size limit, fingerprint only)."""
        return bool(self.doc.get("blob"))

    def load(self) -> Any:
        """The data as logged: a DataFrame (or the Series / array it was)."""
        df = read_frame(self.store, self.doc)
        restore = self.doc.get("restore") or {}
        kind = self.doc["kind"]
        if kind == "Series":
            s = df.iloc[:, 0]
            s.name = restore.get("series_name")
            return s
        if kind == "ndarray":
            arr = df.to_numpy()
            return arr.reshape(-1) if restore.get("ndim") == 1 else arr
        return df

    def __repr__(self) -> str:
        blob = self.doc.get("blob")
        stored = f"{_mb(blob['size'])} stored" if blob else "fingerprint only"
        shape = "×".join(map(str, self.doc["shape"] or []))
        return f"<DatasetVersion {self.uri} {shape} {self.sha256[:12]} {stored}>"

    def _repr_html_(self) -> str:
        from ..display.datasets import version_card  # display sits above the domain: only this delegation

        return version_card(self)
