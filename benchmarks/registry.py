"""Registry benchmark: nbmlops against MLflow (file store and sqlite) and the plain-Python floor, in one run.

    python benchmarks/registry.py            # full run (a few minutes on 2 cores), writes benchmarks/RESULTS.md
    python benchmarks/registry.py --quick    # smoke test at small sizes (< 60 s), prints the table only

One 100-tree RandomForestClassifier (make_classification, 5,000 x 20, seed 0) is registered, aliased and
loaded back by each tool, each in a fresh directory under ``benchmarks/.work/`` (removed at the end):

* floor: ``joblib.dump`` + sha256 of the file, ``joblib.load`` + sha256 (and the same with plain pickle,
  protocol 5, with and without an fsync, for context);
* nbmlops: ``register_model`` of a fitted object (no run); a model logged by a run then registered by run
  id; ``load_model(uri)`` (the validating wrapper) and ``load_model(uri, raw=True)``; ``set_alias``;
  ``load_model`` + a one-row predict;
* MLflow (file store, sqlite): ``mlflow.sklearn.log_model(..., registered_model_name=...)`` outside a run;
  ``log_model`` in a run + ``mlflow.register_model``; ``MlflowClient().set_registered_model_alias``;
  ``mlflow.pyfunc.load_model("models:/name@alias")`` and ``mlflow.sklearn.load_model``.

Every repetition registers a forest whose bytes differ (one dummy attribute changes), on every side, so
that nbmlops' content-addressed blob store cannot deduplicate a repeat. The floor, nbmlops and both MLflow
stores are timed in interleaved rounds (each once per round, in a rotating order), so that load from other
work on this shared machine hits all of them alike; only MLflow with its defaults (seconds per call, because
it infers pip requirements) gets rounds of its own. Medians; "MLflow best / nbmlops" is the faster MLflow
store's time divided by nbmlops' time (above 1: nbmlops is faster). Afterwards each nbmlops call is
profiled (cProfile, one call at a time, medians) to show where its time goes.

Only the section "## Registry (benchmarks/registry.py)" of RESULTS.md is replaced; other sections stay.
"""

from __future__ import annotations

import os

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import cProfile  # noqa: E402
import gc  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import logging  # noqa: E402
import pickle  # noqa: E402
import pstats  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable, Iterator  # noqa: E402

if __package__:  # python -m benchmarks.registry
    from ._common import log, machine, publish
else:  # python benchmarks/registry.py
    from _common import log, machine, publish

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
RESULTS = HERE / "RESULTS.md"
PACKAGES = ("nbmlops", "mlflow", "scikit-learn", "joblib", "numpy", "tinydb", "sqlalchemy", "cloudpickle")
SECTION = "## Registry (benchmarks/registry.py)"

# reps: interleaved rounds of the registrations (floor, nbmlops, MLflow given pip_requirements);
# mlflow_reps: rounds of MLflow with its defaults (it infers pip requirements: seconds per call)
FULL = dict(samples=5_000, features=20, trees=100, reps=25, mlflow_reps=5, load_reps=25, predict_reps=30,
            alias_reps=30, profile_reps=15)
QUICK = dict(samples=1_000, features=20, trees=20, reps=3, mlflow_reps=1, load_reps=3, predict_reps=5,
             alias_reps=5, profile_reps=2)
SLACK = 1.10  # the target: register and load within 10% of joblib.dump/load plus hashing


def interleaved(ops: dict[str, tuple[Callable[[], Any] | None, Callable[[], Any]]], reps: int,
                warmup: bool = True) -> dict[str, float]:
    """Median of each op over ``reps`` rounds; every round runs each op once, in an order that rotates, so
    that a neighbour's burst of load on this shared machine hits every tool alike. An op is
    ``(prepare, work)``: ``prepare`` runs untimed first (make the forest's bytes differ, switch backend)."""
    names = list(ops)
    if warmup:
        for prepare, work in ops.values():
            if prepare is not None:
                prepare()
            work()
    times: dict[str, list[float]] = {k: [] for k in names}
    for i in range(reps):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            prepare, work = ops[name]
            if prepare is not None:
                prepare()
            t = time.perf_counter()
            work()
            times[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def make_model(S: dict[str, Any]) -> tuple[Any, Any]:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_classification(n_samples=S["samples"], n_features=S["features"], n_informative=10, random_state=0)
    return RandomForestClassifier(n_estimators=S["trees"], random_state=0, n_jobs=1).fit(X, y), X


def variant(model: Any, tag: Any) -> Any:
    """The same forest with a distinct attribute, so its bytes differ and no store can dedupe a repeat."""
    model._bench_rep = tag
    return model


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """MLflow prints 'Successfully registered model…' straight to stderr and warns about signatures."""
    with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# -- where nbmlops' time goes ----------------------------------------------------------------------
def profile_nbmlops(S: dict[str, Any], model: Any, row: Any) -> dict[str, tuple[float, list[tuple[str, float]]]]:
    """Each nbmlops call under cProfile, its time split into named parts. Every call is profiled on its own;
    the total and each part are medians over the calls (robust to a neighbour's burst on a shared machine)."""
    import nbmlops

    n = S["profile_reps"]
    tags = iter(range(10**9))
    Parts = list[tuple[str, float]]

    def prof(fn: Callable[[Any], Any], parts: Callable[[dict[Any, Any]], Parts],
             setup: Callable[[int], Any] | None = None) -> tuple[float, Parts]:
        totals, per_call = [], []
        for i in range(n):
            arg = setup(i) if setup else i
            pr = cProfile.Profile()
            t = time.perf_counter()
            pr.enable()
            fn(arg)
            pr.disable()
            totals.append(time.perf_counter() - t)
            per_call.append(parts(pstats.Stats(pr).stats))  # type: ignore[attr-defined]
        total = statistics.median(totals)
        med = [(name, statistics.median(call[k][1] for call in per_call)) for k, (name, _) in enumerate(per_call[0])]
        med = [(k, v) for k, v in med if v > 0]
        return total, med + [("other (TinyDB, ids, paths, Python)", max(0.0, total - sum(v for _, v in med)))]

    def cum(st: dict[Any, Any], where: str, *names: str) -> float:
        """Cumulative time of the functions ``names`` defined in a file whose path contains ``where``."""
        return sum(v[3] for (f, _, fn), v in st.items() if where in f and fn in names)

    def builtin(st: dict[Any, Any], name: str, caller: str | None = None) -> float:
        total = 0.0
        for (f, _, fn), v in st.items():
            if f == "~" and fn == name:
                if caller is None:
                    total += v[3]
                else:
                    total += sum(c[3] for (_, _, cn), c in v[4].items() if cn == caller)
        return total

    def doc_parts(st: dict[Any, Any]) -> Parts:
        fs = builtin(st, "<built-in method posix.fsync>", "atomic_write")
        return [("fsync of the JSON documents", fs),
                ("writing + renaming the JSON documents", cum(st, "nbmlops/store/documents.py", "atomic_write") - fs),
                ("reading + parsing the JSON documents", cum(st, "nbmlops/store/documents.py", "read")),
                ("cross-process file locks (filelock)", cum(st, "filelock", "__enter__", "__exit__"))]

    def blob_read(st: dict[Any, Any], why: str = "") -> Parts:
        return [(f"sha256 of the blob{why}", cum(st, "nbmlops/store/blobs.py", "sha256_file")),
                ("pickle.load", builtin(st, "<built-in method _pickle.load>"))]

    out: dict[str, tuple[float, Parts]] = {}
    out["register"] = prof(lambda i: nbmlops.register_model(model, "forest"), lambda st: [
        ("pickle.dump (protocol 5)", builtin(st, "<built-in method _pickle.dump>")),
        ("sha256 of the new blob (re-read + hash)", cum(st, "nbmlops/store/blobs.py", "sha256_file")),
        ("fsync of the blob", builtin(st, "<built-in method posix.fsync>", "put_path")),
        ("rename of the blob into place", builtin(st, "<built-in method posix.replace>", "put_path")),
        *doc_parts(st),
        ("check_fitted + signature.infer", cum(st, "nbmlops/registry/signature.py", "check_fitted", "infer")),
    ], setup=lambda i: variant(model, f"p{next(tags)}"))

    def logged(i: int) -> str:
        variant(model, f"r{next(tags)}")
        with nbmlops.start_run() as run:
            nbmlops.log_model(model, "m")
        return run.id

    out["register_run"] = prof(lambda run_id: nbmlops.register_model(run_id, "forest-run"), lambda st: [
        *blob_read(st, " logged by the run (verify before unpickling)"),
        *doc_parts(st),
        ("signature.infer", cum(st, "nbmlops/registry/signature.py", "infer")),
    ], setup=logged)
    resolve = ("resolve name@alias (models.json + versions file)",)
    for key, raw in (("load", False), ("load_raw", True)):
        out[key] = prof(lambda i: nbmlops.load_model("forest@champion", raw=raw), lambda st: [
            *blob_read(st, " (verify before unpickling)"),
            (*resolve, cum(st, "nbmlops/registry/models.py", "get_model_version")),
        ])
    out["load_predict"] = prof(lambda i: nbmlops.load_model("forest@champion").predict(row), lambda st: [
        *blob_read(st),
        (*resolve, cum(st, "nbmlops/registry/models.py", "get_model_version")),
        ("signature.validate of the row", cum(st, "nbmlops/registry/signature.py", "validate")),
        (f"RandomForest.predict (scikit-learn: joblib Parallel over {S['trees']} trees)",
         cum(st, "sklearn/ensemble/_forest.py", "predict")),
    ])
    moves = iter(range(10**9))
    out["alias"] = prof(lambda i: nbmlops.set_alias("forest", "champion", 1 + next(moves) % 2), doc_parts)
    log("profiled nbmlops: " + ", ".join(f"{k} {v[0] * 1e3:.1f} ms" for k, v in out.items()))
    return out


# -- one MLflow backend ------------------------------------------------------------------------------
class MLflowSide:
    """One MLflow store (file or sqlite). MLflow keeps its tracking/registry URI and experiment in globals,
    so ``use()`` (untimed) points them at this store before each of its operations."""

    def __init__(self, backend: str, root: Path) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        self.backend = backend
        self.uri = (root / "mlruns").as_uri() if backend == "file" else f"sqlite:///{root / 'mlflow.db'}"
        self.client = MlflowClient(self.uri, registry_uri=self.uri)
        self.exp_id = self.client.create_experiment("bench-registry", artifact_location=(root / "artifacts").as_uri())
        self.use()

    def use(self) -> None:
        import mlflow

        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)
        mlflow.set_experiment(experiment_id=self.exp_id)


# -- the benchmark: floor, nbmlops and both MLflow stores, interleaved ----------------------------------
def bench(S: dict[str, Any], dirs: dict[str, Path], model: Any, X: Any) -> dict[str, Any]:
    import joblib
    import mlflow
    import mlflow.pyfunc
    import mlflow.sklearn
    import sklearn

    import nbmlops

    logging.getLogger("mlflow").setLevel(logging.ERROR)  # after import: mlflow configures its loggers then
    r: dict[str, Any] = {}
    root = dirs["nbmlops"]
    floor = root / "floor"
    floor.mkdir()
    nbmlops.set_store(root / "store")
    sides = {b: MLflowSide(b, dirs[b]) for b in ("file", "sqlite")}
    pip = {"pip_requirements": [f"scikit-learn=={sklearn.__version__}"]}
    row, expected = X[:1], model.predict(X[:50])
    tags = iter(range(10**9))
    steps: dict[str, list[float]] = {}
    ALIAS = "forest@champion"

    def fresh() -> None:
        variant(model, next(tags))

    # -- floor
    def joblib_dump() -> None:
        p = floor / f"j-{model._bench_rep}.joblib"
        joblib.dump(model, p)
        sha256_file(p)

    def pickle_dump(sync: bool = False) -> None:
        p = floor / f"p{'s' if sync else ''}-{model._bench_rep}.pkl"
        with open(p, "wb") as f:
            pickle.dump(model, f, protocol=5)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        sha256_file(p)

    # -- nbmlops
    def nb_run() -> None:
        with nbmlops.start_run() as run:
            nbmlops.log_model(model, "m")
        t = time.perf_counter()
        nbmlops.register_model(run.id, "forest-run")
        steps.setdefault("nb_run_register", []).append(time.perf_counter() - t)

    # -- MLflow
    def mf_log(name: str, fast: bool, registered: str | None = None) -> Any:
        return mlflow.sklearn.log_model(model, name=name, registered_model_name=registered,
                                        serialization_format="cloudpickle", **(pip if fast else {}))

    def mf_register(fast: bool) -> Callable[[], Any]:
        name = "forest" if fast else "forest-default"
        return lambda: mf_log("forest", fast, registered=name)

    def mf_run(side: MLflowSide, fast: bool) -> Callable[[], None]:
        def go() -> None:
            with mlflow.start_run():
                info = mf_log("m", fast)
            t = time.perf_counter()
            mlflow.register_model(info.model_uri, "forest-run" if fast else "forest-run-default")
            steps.setdefault(f"{side.backend}:run_register", []).append(time.perf_counter() - t)
        return go

    def on(side: MLflowSide, bytes_differ: bool = True) -> Callable[[], None]:
        def prepare() -> None:
            side.use()
            if bytes_differ:
                fresh()
        return prepare

    # set up: version 1 of "forest" on every side is the forest loaded below, through the alias "champion"
    with quiet():
        variant(model, "v1")
        nbmlops.register_model(model, "forest")
        nbmlops.set_alias("forest", "champion", 1)
        for side in sides.values():
            side.use()
            mf_log("forest", True, registered="forest")
            side.client.set_registered_model_alias("forest", "champion", 1)
            if S["mlflow_reps"] > 1:  # imports and caches behind the pip inference (--quick: one round, no warm-up)
                mf_log("warmup", False)
        jpath, ppath = floor / "j-v1.joblib", floor / "p-v1.pkl"
        joblib_dump()
        pickle_dump()
    r["model_size"] = nbmlops.get_model_version("forest/1").doc["size"]
    r["joblib_size"] = jpath.stat().st_size

    # 1. register (fast paths), interleaved
    ops: dict[str, tuple[Callable[[], Any] | None, Callable[[], Any]]] = {
        "floor_joblib_dump": (fresh, joblib_dump),
        "floor_pickle_dump": (fresh, pickle_dump),
        "floor_pickle_dump_fsync": (fresh, lambda: pickle_dump(sync=True)),
        "nb_register": (fresh, lambda: nbmlops.register_model(model, "forest")),
        "nb_run": (fresh, nb_run),
    }
    for b, side in sides.items():
        ops[f"{b}:register_pip"] = (on(side), mf_register(fast=True))
        ops[f"{b}:run_pip"] = (on(side), mf_run(side, fast=True))
    with quiet():
        r.update(interleaved(ops, S["reps"]))
    log("register: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in r.items() if k in ops))

    # 2. MLflow with its defaults (it infers pip requirements: seconds per call), the two stores interleaved
    ops = {}
    for b, side in sides.items():
        ops[f"{b}:register"] = (on(side), mf_register(fast=False))
        ops[f"{b}:run"] = (on(side), mf_run(side, fast=False))
    with quiet():
        r.update(interleaved(ops, S["mlflow_reps"], warmup=False))
    for key, values in steps.items():
        r[key] = statistics.median(values[1:] if len(values) > 1 else values)  # [0]: the warm-up
    log("MLflow defaults: " + ", ".join(f"{k} {v:.2f} s" for k, v in r.items() if k in ops))

    # 3. loads, interleaved
    def joblib_load() -> Any:
        sha256_file(jpath)
        return joblib.load(jpath)

    def pickle_load() -> Any:
        sha256_file(ppath)
        with open(ppath, "rb") as f:
            return pickle.load(f)

    ops = {
        "floor_joblib_load": (None, joblib_load),
        "floor_pickle_load": (None, pickle_load),
        "floor_load_predict": (None, lambda: joblib_load().predict(row)),
        "nb_load": (None, lambda: nbmlops.load_model(ALIAS)),
        "nb_load_raw": (None, lambda: nbmlops.load_model(ALIAS, raw=True)),
        "nb_load_predict": (None, lambda: nbmlops.load_model(ALIAS).predict(row)),
    }
    for b, side in sides.items():
        ops[f"{b}:load"] = (on(side, False), lambda: mlflow.pyfunc.load_model(f"models:/{ALIAS}"))
        ops[f"{b}:load_raw"] = (on(side, False), lambda: mlflow.sklearn.load_model(f"models:/{ALIAS}"))
        ops[f"{b}:load_predict"] = (on(side, False), lambda: mlflow.pyfunc.load_model(f"models:/{ALIAS}").predict(row))
    with quiet():
        r.update(interleaved(ops, S["load_reps"]))
    log("load: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in r.items() if k in ops))

    # 4. one-row predict on models already loaded (all of version 1), interleaved; predictions checked
    loaded = {"floor_predict": joblib_load(), "nb_predict": nbmlops.load_model(ALIAS)}
    with quiet():
        for b, side in sides.items():
            side.use()
            loaded[f"{b}:predict"] = mlflow.pyfunc.load_model(f"models:/{ALIAS}")
            assert (mlflow.sklearn.load_model(f"models:/{ALIAS}").predict(X[:50]) == expected).all(), b
    for key, m in loaded.items():
        assert (m.predict(X[:50]) == expected).all(), key
    assert (nbmlops.load_model(ALIAS, raw=True).predict(X[:50]) == expected).all()
    with quiet():
        r.update(interleaved({k: (None, (lambda m: lambda: m.predict(row))(m)) for k, m in loaded.items()},
                             S["predict_reps"]))

    # 5. alias moves, each a real move between the versions of "forest" (every side has as many)
    n_versions = nbmlops.get_model_version("forest").version
    moves = {k: iter(range(10**9)) for k in ("nb", *sides)}

    def target(k: str) -> int:
        return 1 + next(moves[k]) % n_versions

    ops = {"nb_alias": (None, lambda: nbmlops.set_alias("forest", "champion", target("nb")))}
    for b, side in sides.items():
        ops[f"{b}:alias"] = (on(side, False), (lambda b, side: lambda: side.client.set_registered_model_alias(
            "forest", "champion", target(b)))(b, side))
    with quiet():
        r.update(interleaved(ops, S["alias_reps"]))
    log("alias: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in r.items() if k in ops))

    r["profile"] = profile_nbmlops(S, model, row)
    nbmlops.set_store(None)
    return r


# -- report ----------------------------------------------------------------------------------------
def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms" if seconds < 0.1 else f"{seconds * 1e3:.0f} ms"
    return f"{seconds * 1e6:.3g} µs"


def ratio(nb: float | None, mf: list[float | None]) -> str:
    vals = [v for v in mf if v is not None]
    if nb is None or not vals or nb <= 0:
        return "—"
    x = min(vals) / nb
    return f"**{x:.0f}×**" if x >= 10 else f"**{x:.1f}×**" if x >= 1 else f"{x:.2f}× (nbmlops slower)"


def vs_floor(nb: float | None, floor: float | None) -> str:
    if nb is None or floor is None or floor <= 0:
        return "—"
    return f"{nb / floor:.2f}"


PROFILE_LABELS = {
    "register": "`register_model(model, name)`",
    "register_run": "`register_model(run_id, name)` (the register step only)",
    "load": "`load_model(uri)`",
    "load_raw": "`load_model(uri, raw=True)`",
    "load_predict": "`load_model(uri).predict(one row)`",
    "alias": "`set_alias` (alias move)",
}


def report(S: dict[str, Any], nb: dict[str, Any], quick: bool, wall: float) -> tuple[str, list[tuple[str, bool]]]:
    dump, load = nb["floor_joblib_dump"], nb["floor_joblib_load"]
    rows: list[tuple[str, float | None, float, str]] = [  # label, floor, nbmlops, MLflow key
        ("register a fitted object, no run — nbmlops `register_model(model, name)`; MLflow "
         "`sklearn.log_model(model, registered_model_name=name)` outside a run, defaults (infers pip requirements)",
         dump, nb["nb_register"], "register"),
        ("the same, MLflow given `pip_requirements=[...]` (skips the inference)", dump, nb["nb_register"],
         "register_pip"),
        ("log in a run, then register — `start_run` + `log_model` + end + `register_model(run.id, name)`; "
         "MLflow the same with `mlflow.register_model(info.model_uri, name)`, defaults",
         dump, nb["nb_run"], "run"),
        ("the same, MLflow given `pip_requirements`", dump, nb["nb_run"], "run_pip"),
        ("… of which the register step alone", None, nb["nb_run_register"], "run_register"),
        ("`load_model(\"forest@champion\")` (validating wrapper) / "
         "`mlflow.pyfunc.load_model(\"models:/forest@champion\")`",
         load, nb["nb_load"], "load"),
        ("`load_model(uri, raw=True)` (bare estimator) / `mlflow.sklearn.load_model(\"models:/forest@champion\")`",
         load, nb["nb_load_raw"], "load_raw"),
        ("load + one-row `predict` (floor: `joblib.load` + sha256 + `predict`)", nb["floor_load_predict"],
         nb["nb_load_predict"], "load_predict"),
        ("one-row `predict` on the loaded model (floor: the bare estimator)", nb["floor_predict"], nb["nb_predict"],
         "predict"),
        ("alias move — `set_alias(name, \"champion\", v)` / `MlflowClient().set_registered_model_alias`", None,
         nb["nb_alias"], "alias"),
    ]
    size = nb["model_size"] / 2**20
    out = [SECTION, "", machine(PACKAGES, f"Mode: {'--quick (small sizes)' if quick else 'full'}."), "",
           f"Model: RandomForestClassifier, {S['trees']} trees, fitted on `make_classification` "
           f"({S['samples']:,} × {S['features']}, seed 0): {size:.1f} MiB pickled (protocol 5), "
           f"{nb['joblib_size'] / 2**20:.1f} MiB as joblib.", "",
           "| work | floor (joblib + sha256) | nbmlops | nbmlops / floor | MLflow file store | MLflow sqlite | "
           "MLflow best / nbmlops |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    for label, fl, a, key in rows:
        b, c = nb.get(f"file:{key}"), nb.get(f"sqlite:{key}")
        out.append(f"| {label} | {fmt(fl)} | {fmt(a)} | {vs_floor(a, fl)} | {fmt(b)} | {fmt(c)} | {ratio(a, [b, c])} |")
    out += ["", "| floor (plain Python, same forest, same disk, interleaved with the rest) | median |", "| --- | --- |",
            f"| `joblib.dump` + sha256 of the file | {fmt(dump)} |",
            f"| `pickle.dump` (protocol 5) + sha256 | {fmt(nb['floor_pickle_dump'])} |",
            "| `pickle.dump` + fsync + sha256 (what nbmlops does to a model blob) | "
            f"{fmt(nb['floor_pickle_dump_fsync'])} |",
            f"| sha256 + `joblib.load` | {fmt(load)} |",
            f"| sha256 + `pickle.load` | {fmt(nb['floor_pickle_load'])} |",
            f"| one-row `predict` on the bare estimator | {fmt(nb['floor_predict'])} |", ""]
    targets = [
        ("`register_model` of a fitted object", nb["nb_register"], dump, "`joblib.dump` + sha256"),
        ("`start_run` + `log_model` + `register_model(run.id)`", nb["nb_run"], dump, "`joblib.dump` + sha256"),
        ("`load_model(uri)`", nb["nb_load"], load, "sha256 + `joblib.load`"),
        ("`load_model(uri, raw=True)`", nb["nb_load_raw"], load, "sha256 + `joblib.load`"),
    ]
    pick = {"`joblib.dump` + sha256": nb["floor_pickle_dump"], "sha256 + `joblib.load`": nb["floor_pickle_load"]}
    out += [f"| target (nbmlops): within {SLACK - 1:.0%} of the joblib floor | nbmlops | floor | nbmlops / floor | "
            "nbmlops / pickle floor | status |", "| --- | --- | --- | --- | --- | --- |"]
    status = []
    for label, value, fl, flname in targets:
        ok = value <= SLACK * fl
        status.append((label, ok))
        out.append(f"| {label} | {fmt(value)} | {fmt(fl)} ({flname}) | {value / fl:.2f} | "
                   f"{value / pick[flname]:.2f} | {'pass' if ok else '**FAIL**'} |")
    out += ["", "Where nbmlops' time goes (cProfile, each call profiled on its own; medians over "
            f"{S['profile_reps']} calls of the total and of each part; profiler overhead included):", "",
            "| nbmlops call | per call | parts |", "| --- | --- | --- |"]
    for key, (total, parts) in nb["profile"].items():
        text = "; ".join(f"{name} {fmt(v)}" for name, v in sorted(parts, key=lambda p: -p[1]))
        out.append(f"| {PROFILE_LABELS[key]} | {fmt(total)} | {text} |")
    out += ["",
            "Medians over rounds in which the floor, nbmlops and both MLflow stores each run once, in a rotating "
            f"order (this 2-core machine is shared, so load from elsewhere hits all of them alike): {S['reps']} rounds "
            f"of registrations, {S['load_reps']} of loads, {S['predict_reps']} of predicts, {S['alias_reps']} of alias "
            f"moves; MLflow with its defaults (seconds per call) over {S['mlflow_reps']} rounds of its own. The "
            "register step of the run path is a median over all its rounds (MLflow: with and without "
            "`pip_requirements`, which it does not use). Each registration, on every "
            "side, is of the forest with one dummy attribute changed, so its bytes differ and nbmlops' "
            "content-addressed store cannot deduplicate it (an identical re-registration skips the blob write and "
            "its fsync). MLflow `log_model` uses `serialization_format=\"cloudpickle\"` (its default skops format "
            "refuses a forest); without `pip_requirements` it infers them, which is nearly all of its time. MLflow "
            "gets no input example, so it stores no signature; nbmlops infers one (features, classes) at every "
            "registration, and its `load_model` wrapper checks inputs against it. nbmlops writes the model with "
            "`pickle` protocol 5 (joblib can still read it), hashes it, fsyncs it and its two JSON documents; "
            "the joblib floor neither fsyncs nor writes any metadata. `register_model(run_id)` reads back, "
            "verifies and unpickles the logged blob to infer the signature. All reads hit a warm page cache.",
            "", f"Whole benchmark: {wall:.0f} s. Load average (1 min) of this shared machine: "
            f"{nb['load_start']:.1f} at the start, {nb['load_end']:.1f} at the end.", ""]
    return "\n".join(out), status


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke test (< 60 s)")
    ap.add_argument("--results", type=Path, default=None,
                    help="markdown file to update (default: benchmarks/RESULTS.md for a full run; "
                         "a --quick run only prints its table unless this is given)")
    args = ap.parse_args()
    S = QUICK if args.quick else FULL
    out = args.results if args.results is not None else (None if args.quick else RESULTS)

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="mlflow")
    t0 = time.perf_counter()
    WORK.mkdir(exist_ok=True)
    dirs = {k: Path(tempfile.mkdtemp(prefix=f"registry-{k}-", dir=WORK)) for k in ("nbmlops", "file", "sqlite")}
    cwd = os.getcwd()
    try:
        os.chdir(dirs["nbmlops"])  # nothing either tool drops in the working directory lands in the repo
        log(f"fitting a {S['trees']}-tree forest on {S['samples']:,} x {S['features']}")
        model, X = make_model(S)
        gc.collect()
        load_start = os.getloadavg()[0]
        nb = bench(S, dirs, model, X)
        nb["load_start"], nb["load_end"] = load_start, os.getloadavg()[0]
    finally:
        os.chdir(cwd)
        for d in dirs.values():
            shutil.rmtree(d, ignore_errors=True)
        with contextlib.suppress(OSError):
            WORK.rmdir()  # only if no other benchmark is using it
    text, status = report(S, nb, args.quick, time.perf_counter() - t0)
    failed = [t for t, ok in status if not ok]
    publish(text, out, SECTION, failed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
