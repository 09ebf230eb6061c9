"""Warm kernels: the notebook steps of one pipeline run share a kernel, each step in a fresh namespace.

A new kernel costs a process start and the imports of the step (pandas, scikit-learn, nbmlops): most
of a small step. A pipeline run keeps its kernels (:class:`KernelPool`, one per notebook step
running at once) and, before each later step, resets in the kernel what a step may have changed
(:func:`reset`), so the step sees what a new kernel would show it:

- the user namespace, ``Out``/``_``, the execution count (from 1 again) and the history session;
- the working directory (the step's notebook folder), environment variables, ``sys.path``, ``sys.argv``;
- warning filters (and the "shown once" registries), the root logger, ``%xmode``, ``%precision``, ``%pdb``;
- IPython event callbacks, magics and extensions added by a step (``%load_ext`` loads again);
- modules a step imported from outside the installed packages (a ``helpers.py`` beside the
  notebook is imported afresh); installed packages stay imported: that is the speed-up;
- matplotlib (figures closed, rcParams and backend as on import, the inline backend's settings),
  pandas options, numpy print and error settings, the random seeds of numpy and ``random``;
- nbmlops runs a step left open are taken off the kernel's run stack (they stay RUNNING until the
  stale-run sweep, as when their kernel exits).

What a namespace reset cannot undo stays: threads a step started, module-level state of installed
packages beyond the above, files it wrote. ``isolate="kernel"`` runs each step in a new kernel.
A kernel whose step failed, timed out or died is shut down; the next step gets a new one.
"""

from __future__ import annotations

import importlib
import logging
import os
import queue
import random
import site
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from ..errors import NbmlopsError
from ..tracking.session import active_runs, pop_run

# the step kernel's own log (TCP notices, shutdown) would land in the caller's cell
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]
_ME = __name__
_SNAPSHOT = f"__import__({_ME!r}, fromlist=['snapshot']).snapshot(get_ipython())"
_RESET = f"__import__({_ME!r}, fromlist=['reset']).reset(get_ipython(), {{cwd!r}})"


class KernelGone(NbmlopsError):
    """A warm kernel cannot take another step (it died, hangs, or could not be reset)."""


# -- in this process ----------------------------------------------------------------------------
class WarmKernel:
    """One kernel of a pipeline run, started in ``cwd`` and kept between its steps."""

    def __init__(self, name: str, cwd: Path, start_timeout: float = 60) -> None:
        from jupyter_client.manager import KernelManager  # heavy: loaded when a notebook step runs

        self.name = name
        self._lock = threading.Lock()
        self._down = False
        # nbclient drives the kernel through an asyncio client; our own calls use a blocking one
        self.km = KernelManager(kernel_name=name, client_class="jupyter_client.asynchronous.AsyncKernelClient")
        self.km.start_kernel(cwd=str(cwd), extra_arguments=KERNEL_ARGUMENTS)
        self._kc = self.km.blocking_client()
        self._kc.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
        try:
            self._call(_SNAPSHOT, start_timeout)
        except KernelGone:
            self.shutdown(now=True)
            raise

    def reset(self, cwd: Path, timeout: float = 30) -> None:
        """Make the kernel look new to the next step, started in ``cwd``; KernelGone if it cannot."""
        self._call(_RESET.format(cwd=str(cwd)), timeout)

    def _call(self, code: str, timeout: float) -> None:
        """Run ``code`` silently (no output, no execution count); KernelGone on an error or no reply."""
        msg_id = self._kc.execute(code, silent=True, store_history=False, allow_stdin=False)
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = self._kc.get_shell_msg(timeout=0.2)
            except queue.Empty:
                if not self.km.is_alive():
                    raise KernelGone(f"kernel {self.name} died") from None
                if time.monotonic() > deadline:
                    raise KernelGone(f"kernel {self.name} did not answer in {timeout:.0f} s") from None
                continue
            if reply["parent_header"].get("msg_id") != msg_id:
                continue
            content = reply["content"]
            if content.get("status") != "ok":
                raise KernelGone(f"kernel {self.name} could not prepare the step: {content.get('ename')}: "
                                 f"{content.get('evalue')}")
            return

    def shutdown(self, now: bool = False) -> None:
        """Stop the kernel (``now``: kill it, for one that hangs or died); once, from any thread."""
        with self._lock:
            if self._down:
                return
            self._down = True
        self._kc.stop_channels()
        try:
            self.km.shutdown_kernel(now=now or not self.km.is_alive())
        except Exception:  # it died meanwhile: what is left is its connection file and sockets
            self.km.cleanup_resources()


class KernelPool:
    """The warm kernels of one pipeline run: one per notebook step running at once, by kernel name."""

    def __init__(self) -> None:
        self._idle: dict[str, list[WarmKernel]] = {}
        self._busy: set[WarmKernel] = set()
        self._lock = threading.Lock()
        self._closed = False

    def acquire(self, name: str, cwd: Path) -> WarmKernel:
        """An idle kernel reset for a step in ``cwd``, else a new kernel started there."""
        while True:
            with self._lock:
                if self._closed:
                    raise KernelGone("the pipeline run is over")
                idle = self._idle.get(name) or []
                k = idle.pop() if idle else None
                if k is not None:
                    self._busy.add(k)
            if k is None:
                break
            try:
                k.reset(cwd)
                return k
            except KernelGone:
                self._drop(k)
        k = WarmKernel(name, cwd)
        with self._lock:
            closed = self._closed
            if not closed:
                self._busy.add(k)
        if closed:
            k.shutdown(now=True)
            raise KernelGone("the pipeline run is over")
        return k

    def release(self, k: WarmKernel, reusable: bool) -> None:
        """Give the kernel back after its step; one whose step failed is shut down."""
        with self._lock:
            self._busy.discard(k)
            keep = reusable and not self._closed
            if keep:
                self._idle.setdefault(k.name, []).append(k)
        if not keep:
            k.shutdown(now=True)

    def _drop(self, k: WarmKernel) -> None:
        with self._lock:
            self._busy.discard(k)
        k.shutdown(now=True)

    def close(self, now: bool = False) -> None:
        """Shut every kernel down: gracefully in the background (the run's results are ready; Python
        waits for these threads before it exits), or ``now``: killed before returning (an interrupt)."""
        with self._lock:
            self._closed = True
            kernels = [k for ks in self._idle.values() for k in ks] + list(self._busy)
            self._idle.clear()
            self._busy.clear()
        threads = [threading.Thread(target=k.shutdown, args=(now,), name=f"nbmlops-kernel-{k.name}-shutdown")
                   for k in kernels]
        for t in threads:
            t.start()
        for t in threads if now else []:
            t.join()


# -- inside the kernel ----------------------------------------------------------------------------
_saved: dict[str, Any] = {}
_NUMPY_PRINT = {"edgeitems": 3, "infstr": "inf", "linewidth": 75, "nanstr": "nan", "precision": 8,
                "suppress": False, "threshold": 1000, "formatter": None, "sign": "-", "floatmode": "maxprec",
                "legacy": False}  # numpy's documented defaults
_NUMPY_ERR = {"divide": "warn", "over": "warn", "under": "ignore", "invalid": "warn"}


def snapshot(shell: Any) -> None:
    """Remember what a new kernel looks like (run once, silently, right after it starts)."""
    plain = shell.display_formatter.formatters["text/plain"]
    _saved.update(
        environ=dict(os.environ), path=list(sys.path), argv=list(sys.argv), modules=set(sys.modules),
        filters=list(warnings.filters), defaultaction=warnings.defaultaction,
        root=(logging.root.level, list(logging.root.handlers), logging.root.manager.disable),
        events={k: list(v) for k, v in shell.events.callbacks.items()},
        extensions=set(shell.extension_manager.loaded),
        magics={k: dict(v) for k, v in shell.magics_manager.magics.items()},
        registry=dict(shell.magics_manager.registry),
        xmode=shell.InteractiveTB.mode, precision=plain.float_precision, pdb=shell.call_pdb,
        installed=_installed_roots())


def reset(shell: Any, cwd: str) -> None:
    """Undo what the previous step changed, as listed in this module's docstring (run silently
    before each later step)."""
    for run in active_runs():
        pop_run(run)
    manager = shell.extension_manager
    for name in manager.loaded - _saved["extensions"]:
        manager.unload_extension(name)
        manager.loaded.discard(name)
    for event, callbacks in shell.events.callbacks.items():
        callbacks[:] = _saved["events"].get(event, [])
    for kind, table in shell.magics_manager.magics.items():
        table.clear()
        table.update(_saved["magics"].get(kind, {}))
    shell.magics_manager.registry.clear()
    shell.magics_manager.registry.update(_saved["registry"])
    _restore_process(cwd)
    hook = shell.displayhook
    full, hook.do_full_cache = hook.do_full_cache, False  # its flush adds a full gc.collect(): 0.1-0.6 s
    try:
        shell.reset(new_session=True)  # after the chdir: the namespace's _dh starts in the step's folder
    finally:
        hook.do_full_cache = full
    for name in ("_", "__", "___"):  # what the flush does besides: the last results' references
        setattr(hook, name, "")
    shell.InteractiveTB.set_mode(_saved["xmode"])
    shell.display_formatter.formatters["text/plain"].float_precision = _saved["precision"]
    shell.call_pdb = _saved["pdb"]
    _forget_local_modules()
    _reset_libraries(shell)


def _restore_process(cwd: str) -> None:
    os.chdir(cwd)
    env = _saved["environ"]
    for k in [k for k in os.environ if k not in env]:
        del os.environ[k]
    for k, v in env.items():
        if os.environ.get(k) != v:
            os.environ[k] = v
    sys.path[:] = _saved["path"]
    sys.argv[:] = _saved["argv"]
    warnings.resetwarnings()  # also voids every module's "already shown" registry
    warnings.filters[:] = _saved["filters"]
    warnings.defaultaction = _saved["defaultaction"]
    warnings.onceregistry.clear()
    level, handlers, disable = _saved["root"]
    logging.root.setLevel(level)
    logging.root.handlers[:] = handlers
    logging.disable(disable)


def _installed_roots() -> tuple[str, ...]:
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages(), site.getusersitepackages(),
             str(Path(__file__).resolve().parents[1])}  # nbmlops itself, also when installed editable
    return tuple(os.path.join(os.path.realpath(r), "") for r in roots if r)


def _forget_local_modules() -> None:
    """Drop modules a step imported from outside the installed packages (the user's own code)."""
    roots, kept = _saved["installed"], _saved["modules"]
    for name, module in list(sys.modules.items()):
        if name in kept:
            continue
        file = getattr(module, "__file__", None)
        if file and not (os.path.abspath(file).startswith(roots) or os.path.realpath(file).startswith(roots)):
            del sys.modules[name]
        else:
            kept.add(name)  # judged once per kernel
    importlib.invalidate_caches()


def _reset_libraries(shell: Any) -> None:
    random.seed()
    np = sys.modules.get("numpy")
    if np is not None:
        np.set_printoptions(**_NUMPY_PRINT)
        np.seterr(**_NUMPY_ERR)
        np.random.seed()
    registry = getattr(sys.modules.get("pandas._config.config"), "_registered_options", {})  # pandas' options
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reading a deprecated option warns
        changed = [k for k, o in registry.items() if not _same(sys.modules["pandas"].get_option(k), o.defval)]
        for key in changed:  # only those: resetting all runs every option's callback (one imports matplotlib)
            sys.modules["pandas"].reset_option(key)
    if "matplotlib" in sys.modules:
        _reset_matplotlib(shell)


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # a value whose == is not a bool
        return a is b


def _reset_matplotlib(shell: Any) -> None:
    mpl = sys.modules["matplotlib"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mpl.rc_file_defaults()  # rcParams as matplotlib read them (the backend is not among them)
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    plt.close("all")
    wanted = os.environ.get("MPLBACKEND")  # a new kernel's backend (ipykernel sets it: the inline one)
    if wanted and mpl.get_backend().lower() != wanted.lower():
        plt.switch_backend(wanted)
    inline = sys.modules.get("matplotlib_inline.backend_inline")
    if inline is None:
        return
    config = inline.InlineBackend.instance()
    for name, default in config.trait_defaults("figure_formats", "print_figure_kwargs", "close_figures",
                                               "rc").items():
        if getattr(config, name) != default:
            setattr(config, name, default)
    backend = mpl.get_backend()
    if backend.lower() in ("inline", "module://matplotlib_inline.backend_inline"):
        inline.configure_inline_support(shell, backend)  # its figure flush after each cell, its rcParams
