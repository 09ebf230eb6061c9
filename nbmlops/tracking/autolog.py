"""Autolog for scikit-learn fits and matplotlib figures, active while a run with ``autolog=True`` is.

Every ``fit``/``fit_transform``/``fit_predict``/``partial_fit`` defined on a
``sklearn.base.BaseEstimator`` subclass (including classes defined later) is
wrapped once per process; outside an autologged run the wrapper only forwards
the call. A top-level fit (not one nested inside another estimator's fit, and
on the thread that started the run) records the estimator and fingerprints of
its ``X`` and ``y``. When the run ends, each recorded estimator's params, the
fitted model and its datasets are logged. Figures created during the run are
saved as PNG when they are closed (the inline backend closes them after each
cell) or when the run ends, whichever comes first.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
from typing import Any

from .fingerprint import fingerprint

_FITS = ("fit", "fit_transform", "fit_predict", "partial_fit")
_current: Autolog | None = None
_tls = threading.local()
_patched = False


def _wrap(method: Any) -> Any:
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        ctx = _current
        if ctx is None or getattr(_tls, "depth", 0) or threading.get_ident() != ctx.thread:
            return method(self, *args, **kwargs)
        _tls.depth = 1
        try:
            out = method(self, *args, **kwargs)
        finally:
            _tls.depth = 0
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

    BaseEstimator.__init_subclass__ = classmethod(__init_subclass__)  # type: ignore[assignment]
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

    def __init__(self, run: Any, hint: str | None = None) -> None:
        self.run = run
        self.hint = hint
        self.thread = threading.get_ident()
        self.fits: dict[int, tuple[Any, dict[str, Any] | None, dict[str, Any] | None, Any, Any]] = {}
        self._before: set[int] = set()
        self._captured: set[int] = set()
        self._gcf: Any = None
        self._originals: dict[str, Any] = {}

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
        _current = self
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
            _current = None
        self.capture_figures()
        if self._gcf is not None:
            for name, original in self._originals.items():
                setattr(self._gcf, name, original)
        self._log_fits()

    def _log_fits(self) -> None:
        from ..errors import NbmlopsError

        run, fits = self.run, list(self.fits.values())
        self.fits.clear()
        counts: dict[str, int] = {}
        explicit = run.params
        for est, fx, fy, X, y in fits:
            cls = type(est).__name__
            counts[cls] = counts.get(cls, 0) + 1
            name = cls if counts[cls] == 1 else f"{cls}_{counts[cls]}"
            prefix = "" if len(fits) == 1 else name + "."
            try:
                params = {prefix + k: v for k, v in _flat_params(est).items()
                          if prefix + k not in explicit}
                run.log_params(params)
            except NbmlopsError:
                pass
            shas = []
            for part, f in (("X", fx), ("y", fy)):
                if f is not None:
                    entry = {"name": f"{name}.{part}", **f, "role": "train"}
                    run._save({"datasets": [d for d in run._doc["datasets"] if d["name"] != entry["name"]] + [entry]})
                    shas.append(f["sha256"])
            try:
                run.log_model(est, name, datasets=shas, reference=(X, y))
            except NbmlopsError:
                pass
            run.set_tag(f"estimator.{name}" if prefix else "estimator", f"{type(est).__module__}.{cls}")
