"""The live monitor of a serving process (``serve(..., monitor=True)``).

The request path only appends the served rows, predictions and probabilities to a bounded deque
per model version (:meth:`Monitor.add`); every ``every`` rows a version is due, and one background
thread judges its window (the last ``window`` rows, or those of the last ``window`` seconds) with
:mod:`nbmlops.monitoring.live`: gauges in :class:`~nbmlops.serving.metrics.Metrics`, the latest
summary for ``GET /monitor``, and a record in the version's drift history. A version due again
while its previous window still waits is dropped and counted (``model_monitor_windows_dropped_total``).

Memory: at most ``window`` rows per version (a time window keeps at most :data:`MAX_ROWS`), each
a reference to the row, prediction and probabilities the request already made, plus a few
thousand labels from ``/feedback``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict, deque
from itertools import repeat
from typing import Any

from ..errors import InvalidInput
from .metrics import Metrics
from .model import ServedModel

WINDOW, EVERY = 1000, 500  # defaults: rows in a window, rows between two windows
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


def check_every(every: Any) -> int:
    if isinstance(every, str) and every.strip().isdigit():
        every = int(every)
    if isinstance(every, bool) or not isinstance(every, int) or not 1 <= every <= MAX_ROWS:
        raise InvalidInput(f"monitor_every must be a number of rows from 1 to {MAX_ROWS:,}, got {every!r}")
    return every


class _Version:
    """One served version's window, its reference once loaded, and its latest summary."""

    def __init__(self, model: ServedModel, rows: int) -> None:
        self.model = model
        self.buf: deque[tuple[Any, ...]] = deque(maxlen=rows)  # (time ms, row, prediction, probabilities, id, i)
        self.labels: OrderedDict[str, list[Any]] = OrderedDict()  # request id -> labels of its rows
        self.since = 0
        self.reference: Any = None
        self.error: str | None = None
        self.windows = 0
        self.in_a_row = 0
        self.latest: dict[str, Any] | None = None


class Monitor:
    """Windows of served traffic per version, judged off the request path by one thread."""

    def __init__(self, metrics: Metrics, window: int | str = WINDOW, every: int = EVERY,
                 deployment: str | None = None, record: bool = True, correction: str | None = None) -> None:
        self.window, self.every = parse_window(window), check_every(every)
        self.seconds = seconds(self.window)
        self.rows = MAX_ROWS if self.seconds is not None else int(self.window)
        self.metrics, self.deployment, self.record, self.correction = metrics, deployment, record, correction
        self.versions: dict[int, _Version] = {}
        self._pending: deque[_Version] = deque()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="nbmlops-monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    # -- the request path: O(rows of the request), no lock but every `every` rows ----------------
    def add(self, model: ServedModel, rows: list[list[Any]], out: dict[str, list[Any]], request_id: str) -> None:
        state = self.versions.get(model.version)
        if state is None:
            state = self.versions[model.version] = _Version(model, self.rows)
        probas = out.get("probabilities")
        state.buf.extend(zip(repeat(time.time_ns() // 1_000_000), rows, out["predictions"],
                             probas if probas is not None else repeat(None), repeat(request_id), range(len(rows))))
        state.since += len(rows)
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

    # -- the monitor's thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                state = self._pending.popleft()
            try:
                self.judge(state)
            except Exception as exc:  # a monitor's failure must not stop the server: said where it shows
                log_.warning("live monitor: version %s: %s: %s", state.model.version, type(exc).__name__, exc)
                state.latest = {"version": state.model.version, "error": f"{type(exc).__name__}: {exc}"[:500]}

    def judge(self, state: _Version) -> dict[str, Any]:
        """Judge the current window of ``state``'s version: gauges, ``/monitor`` and the store."""
        # pandas, scipy and the drift tests: loaded only by a server that monitors, in this thread
        from ..monitoring import live

        model, started = state.model, time.perf_counter()
        if state.reference is None and state.error is None:
            try:
                state.reference = live.LiveReference(f"{model.name}/{model.version}", model.estimator,
                                                     bool(model.schema.features))
            except Exception as exc:
                state.error = f"no monitoring reference for {model.name}/{model.version}: {exc}"
        entries = self._snapshot(state)
        head = {"version": model.version, "time": int(time.time() * 1000), "window": self.window,
                "first": entries[0][0] if entries else None, "last": entries[-1][0] if entries else None}
        if state.error is not None:
            state.latest = {**head, "rows": len(entries), "error": state.error}
            return state.latest
        ref = state.reference
        frame = self._frame(model, entries)
        probas = self._probas(model, entries, ref)
        labels = [self._label(state, e) for e in entries]
        summary, report = live.evaluate_window(ref, frame, probas, labels, self.correction)
        state.windows += 1
        if report is not None:
            state.in_a_row = state.in_a_row + 1 if summary["dataset_drift"] else 0
            summary["drifted_windows_in_a_row"] = state.in_a_row
            summary["estimate_method"] = ref.method
            self.metrics.set_window(model.version, summary, model.schema.features or ref.features)
            if self.record:
                doc = live.record_window(f"{model.name}/{model.version}", self.deployment, summary, report,
                                         head["first"], head["last"])
                summary["drift_id"] = doc["id"]
        summary["judge_s"] = round(time.perf_counter() - started, 4)  # the window's cost, store write included
        self.metrics.window_done(model.version, summary["judge_s"])
        state.latest = {**head, **summary, "windows": state.windows}
        return state.latest

    def _snapshot(self, state: _Version) -> list[tuple[Any, ...]]:
        """The window's entries: a copy of the deque (taken whole under the GIL), a time window cut."""
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
        return entries

    @staticmethod
    def _frame(model: ServedModel, entries: list[tuple[Any, ...]]) -> Any:
        import pandas as pd  # the window as the model saw it: pandas, as ServedModel.frame loads it

        rows = [e[1] for e in entries]
        frame = model.frame(rows) if rows else pd.DataFrame()
        if not isinstance(frame, pd.DataFrame):
            frame = pd.DataFrame(frame, columns=[f"x{i}" for i in range(frame.shape[1])])
        frame = frame.reset_index(drop=True)
        frame.columns = [str(c) for c in frame.columns]
        frame["prediction"] = [e[2] for e in entries]
        return frame

    @staticmethod
    def _probas(model: ServedModel, entries: list[tuple[Any, ...]], ref: Any) -> Any:
        """The served probabilities as a matrix in the estimator's class order (None without them)."""
        import numpy as np

        if not model.proba or not entries or entries[0][3] is None or ref.method != "cbpe":
            return None
        names = [str(c) for c in ref.estimator.classes]
        return np.array([[e[3][c] for c in names] for e in entries], dtype=float)

    @staticmethod
    def _label(state: _Version, entry: tuple[Any, ...]) -> Any:
        labels = state.labels.get(entry[4])
        return None if labels is None or entry[5] >= len(labels) else labels[entry[5]]

    def info(self) -> dict[str, Any]:
        """``GET /monitor``: the settings and the latest window of every version."""
        return {"window": self.window, "every": self.every, "max_rows": self.rows,
                "versions": {str(v): s.latest or {"version": v, "rows": len(s.buf), "until_next": self.every - s.since,
                                                  "note": "no window judged yet"}
                             for v, s in self.versions.items()}}
