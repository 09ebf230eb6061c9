"""Autolog for scikit-learn fits and matplotlib figures, active while a run with ``autolog=True`` is.

Every ``fit``/``fit_transform``/``fit_predict``/``partial_fit`` defined on a
``sklearn.base.BaseEstimator`` subclass (including classes defined later) is
wrapped once per process; outside an autologged run the wrapper only forwards
the call. Only the user's own fits are recorded: a fit on the thread that
started the run, not nested inside another patched fit (a thread-local depth:
a Pipeline's steps, GridSearchCV's candidates and refit), and called from the
user's code rather than from a library (the caller's frame is not in
site-packages, the standard library, scikit-learn or nbmlops: the
``LabelEncoder`` that ``f1_score`` fits, the clones ``cross_val_score`` fits).
When the run ends, each recorded estimator's params (plain names when there is
one, ``Class.name`` when there are several), the fitted model and its datasets
are logged. A fitted ``GridSearchCV``/``RandomizedSearchCV`` logs its best
estimator as the model with that estimator's params, ``best_cv_score``, a few
``search.*`` params, the ``cv_results.csv`` table, and one nested child run
for each of the best ``MAX_TUNING_RUNS`` candidates (as MLflow's autolog
does, with its default of 5). Figures created during the run are saved as
PNG when they are closed (the inline backend closes them after each cell) or
when the run ends, whichever comes first.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import re
import sys
import threading
import warnings
from collections.abc import Callable
from typing import Any

from ..errors import NbmlopsError
from . import experiments
from .fingerprint import fingerprint

_FITS = ("fit", "fit_transform", "fit_predict", "partial_fit")
_current: Autolog | None = None
_tls = threading.local()
_patched = False
MAX_TUNING_RUNS: int | None = 5  # child runs for the best candidates of a parameter search (None: all)
# callers whose fits are the library's own business, whatever their file
_LIBRARIES = frozenset({"sklearn", "joblib", "scipy", "numpy", "pandas", "nbmlops", "imblearn", "xgboost",
                        "lightgbm", "catboost", "threadpoolctl"})
# wrappers that sit between the user's call and ours (sklearn's set_output wraps fit_transform)
_TRANSPARENT = frozenset({"sklearn.utils._set_output", __name__})
_library_files: dict[str, bool] = {}
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /:]")  # what a metric name may not hold (``check_key``)


@functools.lru_cache(maxsize=1)
def _library_roots() -> tuple[str, ...]:
    import site
    import sysconfig

    paths = {sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths.update(getattr(site, "getsitepackages", list)())
    paths.add(site.getusersitepackages())
    paths.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # nbmlops itself
    return tuple(os.path.realpath(p) + os.sep for p in paths if p)


def _in_library(frame: Any) -> bool:
    if (frame.f_globals.get("__name__") or "").partition(".")[0] in _LIBRARIES:
        return True
    name = frame.f_code.co_filename
    hit = _library_files.get(name)
    if hit is None:
        hit = name.startswith("<frozen") or (not name.startswith("<")
                                              and os.path.realpath(name).startswith(_library_roots()))
        _library_files[name] = hit
    return hit


def _called_by_user(frame: Any, est: Any) -> bool:
    """Whether the code calling ``est``'s fit (``frame``) is the user's: a notebook cell, a script,
    the user's own modules; not a library's. Transparent wrappers, and library methods of ``est``
    itself (``TransformerMixin.fit_transform`` calling ``self.fit``), pass the question up."""
    while frame is not None:
        if frame.f_globals.get("__name__") in _TRANSPARENT or (_in_library(frame)
                                                                and frame.f_locals.get("self") is est):
            frame = frame.f_back
        else:
            return not _in_library(frame)
    return False


def _wrap(method: Any) -> Any:
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        ctx = _current
        if ctx is None or getattr(_tls, "depth", 0) or threading.get_ident() != ctx.thread:
            return method(self, *args, **kwargs)
        by_user = _called_by_user(sys._getframe(1), self)
        _tls.depth = 1  # fits made inside this one are its own business
        try:
            out = method(self, *args, **kwargs)
        finally:
            _tls.depth = 0
        if by_user:
            ctx.record(self, args[0] if args else kwargs.get("X"), args[1] if len(args) > 1 else kwargs.get("y"))
        return out

    wrapper._nbmlops_autolog = True  # type: ignore[attr-defined]
    return wrapper


def _patch_class(cls: type) -> None:
    for name in _FITS:
        f = cls.__dict__.get(name)
        if inspect.isfunction(f) and not getattr(f, "_nbmlops_autolog", False):
            setattr(cls, name, _wrap(f))


def _patch_sklearn() -> None:
    """Wrap fit methods of every estimator class, now and when new ones are defined."""
    global _patched
    if _patched:
        return
    from sklearn.base import BaseEstimator

    seen, todo = set(), [BaseEstimator]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        _patch_class(cls)
        todo.extend(cls.__subclasses__())
    previous = BaseEstimator.__dict__.get("__init_subclass__")

    def __init_subclass__(cls: type, **kwargs: Any) -> None:
        if previous is not None:
            previous.__get__(None, cls)(**kwargs)
        else:
            super(BaseEstimator, cls).__init_subclass__(**kwargs)
        _patch_class(cls)

    BaseEstimator.__init_subclass__ = classmethod(__init_subclass__)
    _patched = True


def _flat_params(est: Any) -> dict[str, Any]:
    out = {}
    for k, v in est.get_params(deep=True).items():
        if hasattr(v, "get_params"):
            v = type(v).__name__
        elif isinstance(v, (list, tuple)) and any(hasattr(x, "get_params") or isinstance(x, tuple) for x in v):
            continue  # Pipeline.steps and the like: the steps' own params are listed separately
        out[k] = v
    return out


class Autolog:
    """The autolog session of one run."""

    def __init__(self, run: Any, hint: str | None = None, start_run: Callable[..., Any] | None = None) -> None:
        self.run = run
        self.hint = hint
        self.start_run = start_run  # ``tracking.runs.start_run``, for the child runs of a parameter search
        self.thread = threading.get_ident()
        self.fits: dict[int, tuple[Any, dict[str, Any] | None, dict[str, Any] | None, Any, Any]] = {}
        self._before: set[int] = set()
        self._captured: set[int] = set()
        self._gcf: Any = None
        self._originals: dict[str, Any] = {}
        self._outer: Autolog | None = None  # the autolog of the run this one is nested in, resumed at the end

    def _wants(self, module: str, words: tuple[str, ...]) -> bool:
        if module in sys.modules:
            return True
        return self.hint is None or any(w in self.hint for w in words)

    def start(self) -> Autolog:
        global _current
        if self._wants("sklearn", ("sklearn",)):
            try:
                _patch_sklearn()
            except ImportError:
                pass
        if self._wants("matplotlib", ("matplotlib", "plt", "pyplot", ".plot(", "seaborn", "sns")):
            try:
                from matplotlib._pylab_helpers import Gcf
            except ImportError:
                Gcf = None
            if Gcf is not None:
                self._hook_figures(Gcf)
        self._outer, _current = _current, self
        return self

    # -- scikit-learn -------------------------------------------------------------
    def record(self, est: Any, X: Any, y: Any) -> None:
        def fp(data: Any) -> dict[str, Any] | None:
            if data is None:
                return None
            try:
                return fingerprint(data)
            except Exception:
                return None

        self.fits.pop(id(est), None)
        self.fits[id(est)] = (est, fp(X), fp(y), X, y)

    # -- matplotlib --------------------------------------------------------------
    def _hook_figures(self, Gcf: Any) -> None:
        self._gcf = Gcf
        self._before = {id(m.canvas.figure) for m in Gcf.get_all_fig_managers()}
        for name in ("destroy", "destroy_fig", "destroy_all"):
            original = Gcf.__dict__[name]
            self._originals[name] = original

            def hooked(cls: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
                self.capture_figures()
                return _original.__func__(cls, *args, **kwargs)

            setattr(Gcf, name, classmethod(hooked))

    def capture_figures(self) -> None:
        """Save every figure opened since the run started that is not saved yet."""
        if self._gcf is None or self.run.status != "RUNNING":
            return
        for manager in list(self._gcf.get_all_fig_managers()):
            fig = manager.canvas.figure
            if id(fig) in self._before or id(fig) in self._captured or not fig.axes:
                continue
            self._captured.add(id(fig))
            try:
                self.run.log_figure(fig)
            except Exception:
                pass

    # -- the end ---------------------------------------------------------------
    def finish(self) -> None:
        global _current
        if _current is self:
            outer = self._outer  # a nested autolog run ended: its parent, still going, records again
            _current = outer if outer is not None and outer.run.status == "RUNNING" else None
        self.capture_figures()
        if self._gcf is not None:
            for name, original in self._originals.items():
                setattr(self._gcf, name, original)
        self._log_fits()

    def _log_fits(self) -> None:
        fits = list(self.fits.values())
        self.fits.clear()
        counts: dict[str, int] = {}
        for est, fx, fy, X, y in fits:
            search = est if _is_search(est) else None
            model = getattr(est, "best_estimator_", None) if search is not None else est
            cls = type(model if model is not None else est.estimator).__name__
            counts[cls] = counts.get(cls, 0) + 1
            name = cls if counts[cls] == 1 else f"{cls}_{counts[cls]}"
            prefix = "" if len(fits) == 1 else name + "."
            try:  # a user's estimator may break sklearn's conventions (get_params raising): log the others
                self._log_fit(est, search, model, name, prefix, fx, fy, X, y)
            except Exception as exc:
                warnings.warn(f"autolog: {name} was not logged: {type(exc).__name__}: {exc}", stacklevel=2)

    def _log_fit(self, est: Any, search: Any, model: Any, name: str, prefix: str, fx: Any, fy: Any, X: Any,
                 y: Any) -> None:
        run = self.run
        try:
            params = _flat_params(model) if model is not None else _best_params(est)
        except Exception as exc:  # get_params of a class that breaks sklearn's conventions: keep the model
            params = {}
            warnings.warn(f"autolog: the params of {name} were not logged: {type(exc).__name__}: {exc}", stacklevel=3)
        self._log_params(prefix, params)
        shas = []
        for part, f in (("X", fx), ("y", fy)):
            if f is not None:
                entry = {"name": f"{name}.{part}", **f, "role": "train"}
                run._save({"datasets": [d for d in run._doc["datasets"] if d["name"] != entry["name"]] + [entry]})
                shas.append(f["sha256"])
        if model is not None:
            self._log_model(model, name, shas, (X, y))
            run.set_tag(f"estimator.{name}" if prefix else "estimator", _qualname(model))
        if search is not None:
            try:
                self._log_search(search, prefix, name)
            except Exception as exc:  # the run must still end; say what was left out
                warnings.warn(f"autolog: the results of {type(search).__name__} were not all logged: {exc}",
                              stacklevel=2)

    def _log_params(self, prefix: str, params: dict[str, Any]) -> None:
        explicit = self.run.params
        try:
            self.run.log_params({prefix + k: v for k, v in params.items() if prefix + k not in explicit})
        except NbmlopsError:
            pass

    def _log_model(self, model: Any, name: str, shas: list[str], reference: Any) -> None:
        try:
            self.run.log_model(model, name, datasets=shas, reference=reference)
        except NbmlopsError:
            pass

    # -- parameter searches ------------------------------------------------------
    def _log_search(self, search: Any, prefix: str, name: str) -> None:
        """``best_cv_score``, ``search.*`` params, ``cv_results.csv`` and the best candidates' child runs."""
        import pandas as pd

        run = self.run
        table = pd.DataFrame(search.cv_results_)
        self._log_params(prefix, {"search.class": type(search).__name__, "search.cv": _described(search.cv),
                                  "search.scoring": _described(search.scoring), "search.candidates": len(table)})
        best = getattr(search, "best_score_", None)
        if best is not None and _finite(best):
            run.log_metric(prefix + "best_cv_score", float(best))
        run.set_tag(f"search.{name}" if prefix else "search", _qualname(search))
        run.log_text(table.to_csv(index=False), f"{name}.cv_results.csv" if prefix else "cv_results.csv")
        limit = MAX_TUNING_RUNS
        if limit is None or limit > 0:
            self._child_runs(search, table, name, limit)

    def _child_runs(self, search: Any, table: Any, name: str, limit: int | None) -> None:
        """One finished child run per candidate, best first: the candidate's full params and
        its aggregate scores (mean/std/rank of each score, fit and score times)."""
        from sklearn.base import clone

        run, start_run = self.run, self.start_run
        if start_run is None:
            return
        rank = next((c for c in table.columns if c == "rank_test_score"), None) or \
            next((c for c in table.columns if str(c).startswith("rank_test_")), None)
        order = table.sort_values(rank, kind="stable") if rank else table
        if limit is not None:
            order = order.head(limit)
        exp = experiments.find(run._store, run.experiment_id)["name"]
        for n, (index, row) in enumerate(order.iterrows(), 1):
            try:
                params = _flat_params(clone(search.estimator).set_params(**row["params"]))
            except Exception:
                params = dict(row["params"])
            metrics = {_UNSAFE.sub("_", str(k)).replace("..", "._"): float(v) for k, v in row.items()  # user's names
                       if not str(k).startswith(("param", "split")) and _finite(v)}
            tags = {"parent_run_id": run.id, "search.candidate": index, "search.rank_order": n,
                    "estimator": _qualname(search.estimator)}
            with start_run(experiment=exp, name=f"{run.name}-cv{n}", tags=tags, nested=True) as child:
                child.log_params(params)
                child.log_metrics(metrics)


def _is_search(est: Any) -> bool:
    """A fitted parameter search (GridSearchCV, RandomizedSearchCV, the halving ones)."""
    return hasattr(est, "cv_results_") and hasattr(est, "estimator") and hasattr(est, "get_params")


def _best_params(search: Any) -> dict[str, Any]:
    """The params of the best candidate of a search fitted with ``refit=False``; with no best
    candidate (several scorers, no refit), only the params every candidate shared: a value the
    search varied is not the run's."""
    from sklearn.base import clone

    try:
        return _flat_params(clone(search.estimator).set_params(**search.best_params_))
    except Exception:
        varied = {k for candidate in search.cv_results_.get("params", []) for k in candidate}
        return {k: v for k, v in _flat_params(search.estimator).items() if k not in varied}


def _described(value: Any) -> Any:
    """A search setting as a param that is the same from one process to the next (a scorer
    function by its name, not its address; several scorers by their names)."""
    if isinstance(value, dict):
        return ",".join(str(k) for k in value)
    if callable(value) and not hasattr(value, "get_n_splits"):
        return getattr(value, "__name__", type(value).__name__)
    return value


def _qualname(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__name__}"


def _finite(v: Any) -> bool:
    try:
        return not isinstance(v, (bool, str)) and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False
