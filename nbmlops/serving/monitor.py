"""The live monitor of a serving process (``serve(..., monitor=True)``).

The request path only appends one tuple per request (its time, rows, predictions and probabilities,
as the request made them: nothing converted) to a deque per model version (:meth:`Monitor.add`);
every ``every`` rows a version is due, and a thread cuts its window (the last ``window`` rows, or those
of the last ``window`` seconds) into columns, pickles it and hands it to one worker process (spawned,
at a lower priority: judging there leaves the server's GIL to the requests), which judges it with
:mod:`nbmlops.monitoring.live` against the version's reference, prepared once. That thread's CPU
and the worker's count against the budget: ``cpu_share`` of the server's own CPU, of one core at
most. Back in the server: gauges in :class:`~nbmlops.serving.metrics.Metrics` and the latest summary
for ``GET /monitor``. The worker records a window in the version's drift history at most every
:data:`RECORD_EVERY` seconds, and whenever the drift verdict changes. A version due again while its
previous window still waits is dropped and counted (``model_monitor_windows_dropped_total``).

Memory: at most ``window`` rows per version and the rest of one request (a time window keeps at most
:data:`MAX_ROWS`), references to the rows, predictions and probabilities the request already made,
plus the labels of
as many requests from ``/feedback``; the worker holds one window at a time and the model again.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import re
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..errors import InvalidInput
from ..store import current_store, set_store
from .metrics import Metrics
from .model import ServedModel

# defaults: rows in a window; rows between two windows of a duration. A window of rows is judged every
# `window` rows unless told: each row is judged once (windows that overlap judge each row window/every
# times, CPU the budget then takes from later windows)
WINDOW, EVERY = 1000, 1000
RECORD_EVERY = 60.0  # seconds: a version's windows go to the store this often, and when the verdict changes
CPU_SHARE = 0.02  # for judging: this share of the server's CPU, of one core at most (Monitor._pace)
QUIET = 0.1  # a server using less CPU than this share of a core is counted as using this much (Monitor._pace)
MAX_ROWS = 100_000  # rows a version keeps at most (a time window's bound)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
log_ = logging.getLogger("nbmlops.serving")


def parse_window(value: Any) -> int | str:
    """A window as asked (``1000`` rows, ``"1000"``, or a duration ``"30s"``, ``"10m"``, ``"1h"``, ``"2d"``),
    checked: rows as an int, a duration as its text (InvalidInput naming the problem)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= MAX_ROWS:
            raise InvalidInput(f"monitor_window must be a number of rows from 1 to {MAX_ROWS:,}, got {value:,}")
        return value
    if isinstance(value, str) and re.fullmatch(r"[1-9][0-9]*[smhd]", value.strip()):
        return value.strip()
    raise InvalidInput(f"monitor_window takes rows (1000) or a duration such as '30s', '10m', '1h', '2d'; "
                       f"got {value!r}")


def seconds(window: int | str) -> float | None:
    """A duration window in seconds; None for a window of rows."""
    return None if isinstance(window, int) else int(window[:-1]) * _UNITS[window[-1]]


def default_every(window: int | str) -> int:
    """Rows between two windows when none is given: the window's rows (a duration: :data:`EVERY`)."""
    return window if isinstance(window, int) else EVERY


def check_stattest(name: Any) -> str | None:
    """A drift test's name as ``drift_report`` knows it (``ks``, ``psi``, …), checked; None: the default tests,
    sized by the window (:func:`nbmlops.monitoring.live.window_drift_options`)."""
    if name is None:
        return None
    # the tests' registry loads pandas and numpy: only when a test is named
    from ..monitoring.stattests import STATTESTS, get_stattest

    if not isinstance(name, str):
        raise InvalidInput(f"monitor_stattest is the name of a drift test ({', '.join(STATTESTS)}), got {name!r}")
    try:
        return get_stattest(name).name
    except InvalidInput as exc:
        raise InvalidInput(f"monitor_stattest: {exc}") from None


def check_every(every: Any) -> int:
    if isinstance(every, str) and every.strip().isdigit():
        every = int(every)
    if isinstance(every, bool) or not isinstance(every, int) or not 1 <= every <= MAX_ROWS:
        raise InvalidInput(f"monitor_every must be a number of rows from 1 to {MAX_ROWS:,}, got {every!r}")
    return every


class _Version:
    """One served version's window, its reference once loaded, and its latest summary."""

    def __init__(self, model: ServedModel) -> None:
        self.model = model
        self.buf: deque[tuple[Any, ...]] = deque()  # per request: (time ms, rows, predictions, probabilities, id)
        self.held = 0  # rows in buf
        self.labels: OrderedDict[str, list[Any]] = OrderedDict()  # request id -> labels of its rows
        self.since = 0
        self.recorded = 0.0  # when a window of it was last recorded in the store, and its verdict then
        self.verdict: bool | None = None
        self.windows = 0
        self.in_a_row = 0
        self.latest: dict[str, Any] | None = None


class Monitor:
    """Windows of served traffic per version, handed by one thread to a worker process that judges them."""

    def __init__(self, metrics: Metrics, window: int | str = WINDOW, every: int | None = None,
                 deployment: str | None = None, record: bool = True, correction: str | None = None,
                 record_every: float = RECORD_EVERY, cpu_share: float = CPU_SHARE, policy: Any = None,
                 stattest: str | None = None) -> None:
        self.window = parse_window(window)
        self.every = check_every(default_every(self.window) if every is None else every)
        self.stattest = check_stattest(stattest)  # one drift test for every column it applies to; None: defaults
        self.seconds = seconds(self.window)
        self.rows = MAX_ROWS if self.seconds is not None else int(self.window)
        self.metrics, self.deployment, self.record, self.correction = metrics, deployment, record, correction
        self.record_every, self.cpu_share = record_every, cpu_share
        self.policy = policy  # what a drifted window sets off (serving.ondrift.RetrainPolicy), or None
        self._pool: Any = None
        self.versions: dict[int, _Version] = {}
        self._pending: deque[_Version] = deque()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="nbmlops-monitor", daemon=True)

    def start(self) -> None:
        """Start the worker process (judging there leaves the server's GIL to requests) and the thread
        that hands it windows."""
        self._pool = self._new_pool()
        self._thread.start()

    @staticmethod
    def _new_pool() -> Any:
        return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init,
                                   initargs=(str(current_store().root),))

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    # -- the request path: one append per request, no lock but every `every` rows ----------------
    def add(self, model: ServedModel, rows: list[list[Any]], out: dict[str, list[Any]], request_id: str) -> None:
        state = self.versions.get(model.version)
        if state is None:
            state = self.versions[model.version] = _Version(model)
        buf, n = state.buf, len(rows)
        buf.append((time.time_ns() // 1_000_000, rows, out["predictions"], out.get("probabilities"), request_id))
        held = state.held + n
        while held - len(buf[0][1]) >= self.rows:  # the oldest request is outside the window
            held -= len(buf.popleft()[1])
        state.held = held
        state.since += n
        if state.since >= self.every:
            state.since = 0
            self._due(state)

    def _due(self, state: _Version) -> None:
        with self._cond:
            if state in self._pending:  # its last window still waits to be judged: this one is dropped
                self.metrics.window_dropped(state.model.version)
                return
            self._pending.append(state)
            self._cond.notify()

    def label(self, request_id: str, version: int, labels: list[Any]) -> None:
        """The labels ``/feedback`` took for a request's rows (realized performance of the windows)."""
        state = self.versions.get(version)
        if state is None:
            return
        state.labels[request_id] = labels
        while len(state.labels) > self.rows:
            state.labels.popitem(last=False)

    def retire(self, version: int) -> None:
        """A version no longer served (an alias moved on): its rows and labels go, its last window stays."""
        state = self.versions.get(version)
        if state is not None:
            state.buf, state.held = deque(), 0
            state.labels.clear()

    # -- the monitor's thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._pool.submit(_worker_init, None).result()  # the worker's imports, before the first window
        except Exception as exc:
            log_.warning("live monitor: the worker process did not start (%s): judging in this process", exc)
            self._pool = None
        while True:
            with self._cond:
                while not self._pending and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                state = self._pending.popleft()
            started, own, others = time.monotonic(), time.thread_time(), _others_cpu()
            try:
                cpu = self.judge(state).get("cpu_s", 0.0)
            except Exception as exc:  # a monitor's failure must not stop the server: said where it shows
                log_.warning("live monitor: version %s: %s: %s", state.model.version, type(exc).__name__, exc)
                state.latest = {"version": state.model.version, "error": f"{type(exc).__name__}: {exc}"[:500]}
                cpu = 0.0
            if self._pool is not None:  # this thread's share: the window cut and pickled, the gauges set
                cpu += time.thread_time() - own
            self._pace(cpu, started, others)

    def _pace(self, cpu: float, started: float, others: float) -> None:
        """Wait until the window's ``cpu`` seconds are earned (windows due meanwhile wait, one per version,
        or are dropped): ``cpu_share`` of the CPU the server used since the window began, at most that share
        of the time passed (one core's worth) and at least that share of :data:`QUIET` of it. On a busy
        machine, where the server gets a fraction of a core, the monitor's cost stays that share of the
        server's; a quiet server's windows are judged within ``cpu / (cpu_share * QUIET)`` seconds."""
        while True:
            passed = time.monotonic() - started
            earned = self.cpu_share * min(max(_others_cpu() - others, QUIET * passed), passed)
            if earned >= cpu:
                return
            with self._cond:  # the soonest the rest can be earned: the server using a whole core meanwhile
                if self._cond.wait_for(lambda: self._stopped, timeout=(cpu - earned) / self.cpu_share):
                    return

    def judge(self, state: _Version) -> dict[str, Any]:
        """Judge the current window of ``state``'s version (in the worker process once started):
        gauges, ``/monitor`` and, now and then, the store."""
        model, started = state.model, time.perf_counter()
        rows, predictions, probas, labels, first, last = self._snapshot(state)
        head = {"version": model.version, "time": int(time.time() * 1000), "window": self.window,
                "first": first, "last": last}
        record = self.record and (state.verdict is None or time.time() - state.recorded >= self.record_every)
        job = (f"{model.name}/{model.version}", self.deployment, rows, predictions, probas if model.proba else None,
               labels, first, last, self.correction, record if self.record else None, state.verdict, self.stattest)
        summary = self._submit(job) if self._pool is not None else judge_window(*job)
        state.windows += 1
        if "drift_share" in summary:
            state.in_a_row = state.in_a_row + 1 if summary["dataset_drift"] else 0
            summary["drifted_windows_in_a_row"] = state.in_a_row
            self.metrics.set_window(model.version, summary, summary["feature_names"])
        if "drift_id" in summary:
            state.recorded, state.verdict = time.time(), summary["dataset_drift"]
        summary.pop("feature_names", None)
        if self.policy is not None:
            job = self.policy.after(model.name, model.version, summary)
            if job is not None:
                summary["retrain"] = job
        summary["judge_s"] = round(time.perf_counter() - started, 4)  # the window's cost, store write included
        self.metrics.window_done(model.version, summary["judge_s"])
        state.latest = {**head, **summary, "windows": state.windows}
        return state.latest

    def _submit(self, job: tuple[Any, ...]) -> dict[str, Any]:
        """``judge_window(*job)`` in the worker process (a new one if the last one died), pickled here so
        that its CPU counts in this thread's."""
        try:
            return self._pool.submit(_judge_pickled, pickle.dumps(job, pickle.HIGHEST_PROTOCOL)).result()
        except BrokenProcessPool:
            self._pool = self._new_pool()
            raise

    def _snapshot(self, state: _Version) -> tuple[list[Any], list[Any], list[Any], list[Any], int | None, int | None]:
        """The window as columns: (rows, predictions, probabilities, labels, first and last time in ms),
        from a copy of the deque (taken whole under the GIL), cut to the window's rows or duration."""
        for _ in range(5):
            try:
                entries = list(state.buf)
                break
            except RuntimeError:  # appended to while copied (a free-threaded build): try again
                continue
        else:
            entries = []
        if self.seconds is not None:
            since = time.time_ns() // 1_000_000 - self.seconds * 1000
            entries = [e for e in entries if e[0] >= since]
        rows = [r for e in entries for r in e[1]]
        predictions = [p for e in entries for p in e[2]]
        probas = [p for e in entries for p in (e[3] if e[3] is not None else [None] * len(e[1]))]
        known = state.labels
        labels = [_nth(known.get(e[4]), i) for e in entries for i in range(len(e[1]))]
        cut = max(len(rows) - self.rows, 0)  # the oldest request may reach back beyond the window
        first = entries[0][0] if entries else None
        return rows[cut:], predictions[cut:], probas[cut:], labels[cut:], first, entries[-1][0] if entries else None

    def info(self) -> dict[str, Any]:
        """``GET /monitor``: the settings and the latest window of every version."""
        retrain = {"on_drift": self.policy.spec, "jobs": self.policy.status()} if self.policy is not None else None
        return {"window": self.window, "every": self.every, "max_rows": self.rows, "retrain": retrain,
                "versions": {str(v): s.latest or {"version": v, "rows": len(s.buf), "until_next": self.every - s.since,
                                                  "note": "no window judged yet"}
                             for v, s in self.versions.items()}}


# -- the judging, in the worker process (or in this one before the monitor starts) ------------------------
_JUDGES: dict[tuple[str, ...], tuple[ServedModel, Any]] = {}  # (store, uri, options) -> (model, its LiveReference
#                                                                  or why there is none)


def _others_cpu() -> float:
    """CPU seconds of this process outside the calling thread (the server's, seen from the monitor's thread)."""
    return time.process_time() - time.thread_time()


def _nth(labels: list[Any] | None, i: int) -> Any:
    return None if labels is None or i >= len(labels) else labels[i]


def _worker_init(store_root: str | None) -> None:
    """The worker's store, the lowest priority, and the judging code loaded. At nice 19 the worker gets a
    busy core only after everything else on it (about 1.5% of a nice-0 process's share, against 10% at
    nice 10): on a loaded machine its windows wait, and are dropped and counted, rather than take CPU
    from the requests; on an idle core it judges at once, within the budget."""
    if store_root is None:
        return
    set_store(store_root)
    os.nice(19 - os.nice(0))
    from ..monitoring import live  # noqa: F401  (pandas, scipy, the drift tests: loaded once, here)


def _judge_pickled(job: bytes) -> dict[str, Any]:
    """:func:`judge_window` of a pickled job, its unpickling counted in the window's CPU."""
    cpu = time.process_time()
    args = pickle.loads(job)
    cpu = time.process_time() - cpu
    summary = judge_window(*args)
    summary["cpu_s"] = round(summary.get("cpu_s", 0.0) + cpu, 4)
    return summary


def _judge_of(uri: str, stattest: str | None, correction: str | None) -> tuple[ServedModel, Any]:
    # pandas, scipy and the drift tests: loaded only where windows are judged
    from ..monitoring import live  # the judging code: only where windows are judged (see _worker_init)

    key = (str(current_store().root), uri, str(stattest), str(correction))
    if key not in _JUDGES:
        model = ServedModel(uri)
        try:
            ref: Any = live.LiveReference(uri, model.estimator, bool(model.schema.features), stattest, correction)
        except Exception as exc:
            ref = f"no monitoring reference for {uri}: {exc}"
        _JUDGES[key] = (model, ref)
    return _JUDGES[key]


def judge_window(uri: str, deployment: str | None, rows: list[Any], predictions: list[Any],
                 probabilities: list[Any] | None, labels: list[Any], first: int | None, last: int | None,
                 correction: str | None, record: bool | None, verdict: bool | None,
                 stattest: str | None = None) -> dict[str, Any]:
    """One window of ``uri``'s traffic judged against its reference; recorded in the store when
    ``record``, or when its drift verdict differs from ``verdict`` (``record`` None: never)."""
    from ..monitoring import live  # loaded by _judge_of already: the same module

    # the first window of a version loads it, prepares its reference and fits its estimator: not counted
    model, ref = _judge_of(uri, stattest, correction)
    clock = time.process_time if multiprocessing.parent_process() is not None else time.thread_time
    cpu = clock()  # in the worker: all of its CPU (unpickling threads too); in the server: this thread's
    if isinstance(ref, str):
        return {"rows": len(rows), "error": ref}
    frame = _frame(model, rows, predictions)
    probas = None
    if probabilities is not None and ref.method == "cbpe" and rows:
        import numpy as np  # with pandas, only where windows are judged

        names = [str(c) for c in ref.estimator.classes]
        probas = np.array([[p[c] for c in names] for p in probabilities], dtype=float)
    summary, report = live.evaluate_window(ref, frame, probas, labels)
    summary["estimate_method"] = ref.method
    summary["feature_names"] = model.schema.features or ref.features
    if report is not None and record is not None and (record or summary["dataset_drift"] != verdict):
        doc = live.record_window(uri, deployment, summary, report, first or 0, last or 0, frame, labels)
        summary["drift_id"] = doc["id"]
    summary["cpu_s"] = round(clock() - cpu, 4)
    return summary


def _frame(model: ServedModel, rows: list[Any], predictions: list[Any]) -> Any:
    import pandas as pd  # the window as the model saw it: pandas, as ServedModel.frame loads it

    frame = model.frame(rows) if rows else pd.DataFrame()
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(frame, columns=[f"x{i}" for i in range(frame.shape[1])])
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    frame["prediction"] = predictions
    return frame
