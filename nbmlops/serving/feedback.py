"""What ``/feedback`` needs of earlier answers, kept in a cache bounded by bytes.

Per request only the version and the predictions are kept, packed: a class index per row
(one byte up to 256 classes) for classifiers, 8 bytes a row for numbers, else the
predictions' text forms as one JSON blob.
A request id given to two requests (V2 clients choose their own) labels neither (409).
Each row takes one label, once: a label for a row that already has one is refused (409),
so replayed feedback cannot skew ``model_accuracy``. The oldest requests are forgotten
first when the cache passes ``max_bytes``.
"""

from __future__ import annotations

import functools
import sys
from collections import OrderedDict
from typing import Any

from .payloads import PayloadError

MAX_BYTES = 32 << 20
_ENTRY_OVERHEAD = 240  # dict slot, ordered-dict link, the entry object and its small fields (measured ~ 230)
_SCALARS = (str, int, float, bool, type(None))


class _Entry:
    __slots__ = ("version", "kind", "classes", "packed", "labelled", "size")

    def __init__(self, version: int, kind: str, classes: tuple[str, ...] | None, packed: bytes, rows: int) -> None:
        self.version, self.kind, self.classes, self.packed = version, kind, classes, packed
        self.labelled = bytearray(rows)
        self.size = len(packed) + rows


@functools.lru_cache(maxsize=64)
def _class_index(classes: tuple[str, ...]) -> dict[str, int]:
    """Each class's index, built once per model's classes (not per request)."""
    return {c: i for i, c in enumerate(classes)}


def _pack(predictions: list[Any], classes: tuple[str, ...] | None) -> tuple[str, bytes]:
    """(kind, bytes): "c" class indices, "f" float64, "i" int64, "s" the text forms as JSON."""
    if classes:
        index = _class_index(classes)
        found = [index.get(str(p)) for p in predictions]
        if None not in found:
            if len(classes) <= 256:
                return "c", bytes(found)  # one byte a row, as uint8 (no NumPy for the common case)
            import numpy as np  # only for more than 256 classes

            return "c", np.asarray(found, dtype=np.uint32).tobytes()
    import numpy as np  # numbers and text: loaded with the server's model already
    import orjson

    types = {type(p) for p in predictions}
    if types == {float}:
        return "f", np.asarray(predictions, dtype=np.float64).tobytes()
    if types == {int} and all(-(2**63) <= p < 2**63 for p in predictions):
        return "i", np.asarray(predictions, dtype=np.int64).tobytes()
    return "s", orjson.dumps([str(p) for p in predictions])


def _unpack(entry: _Entry) -> list[str]:
    """The predictions' text forms (what a label is compared with), as ``str(prediction)`` gave them."""
    import numpy as np
    import orjson

    if entry.kind == "s":
        return orjson.loads(entry.packed)
    if entry.kind == "c":
        assert entry.classes is not None
        dtype = np.uint8 if len(entry.classes) <= 256 else np.uint32
        return [entry.classes[i] for i in np.frombuffer(entry.packed, dtype=dtype)]
    return [str(v) for v in np.frombuffer(entry.packed, dtype=np.float64 if entry.kind == "f" else np.int64).tolist()]


class FeedbackCache:
    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.entries: OrderedDict[str, _Entry] = OrderedDict()

    def add(self, request_id: str, version: int, predictions: list[Any], classes: tuple[str, ...] | None) -> None:
        kind, packed = _pack(predictions, classes)
        entry = _Entry(version, kind, classes if kind == "c" else None, packed, len(predictions))
        entry.size += sys.getsizeof(request_id) + _ENTRY_OVERHEAD
        old = self.entries.pop(request_id, None)
        if old is not None:  # a client-chosen id (V2 "id") used twice: label neither (no client labels another's rows)
            self.bytes -= old.size
            entry = _Entry(version, "x", None, b"", 0)
            entry.size = sys.getsizeof(request_id) + _ENTRY_OVERHEAD
        self.entries[request_id] = entry
        self.bytes += entry.size
        while self.bytes > self.max_bytes and len(self.entries) > 1:
            self.bytes -= self.entries.popitem(last=False)[1].size

    def label(self, request_id: str, labels: Any) -> tuple[int, list[bool | None]]:
        """Check ``labels`` (one per row, ``None`` for rows whose label is not known yet) against the
        request's predictions; returns (version, correct per row, ``None`` where unlabelled)."""
        entry = self.entries.get(request_id)
        if entry is None:
            raise PayloadError(f"unknown request_id (feedback is kept for the most recent requests, up to "
                               f"{self.max_bytes >> 20} MiB of them)", 404, "unknown_request")
        if entry.kind == "x":
            raise PayloadError(f"request_id {request_id!r} was given to more than one request, so feedback cannot tell "
                               "them apart: give each request its own id", 409, "ambiguous_request")
        rows = len(entry.labelled)
        if not isinstance(labels, list) or len(labels) != rows:
            raise PayloadError(f"give 'label' (or 'labels', {rows} of them, null for rows not labelled yet) "
                               f"for request {request_id}")
        if not all(isinstance(t, _SCALARS) for t in labels):
            raise PayloadError("labels must be strings, numbers, booleans or null")
        asked = [i for i, t in enumerate(labels) if t is not None]
        if not asked:
            raise PayloadError("no label given: every label is null")
        again = [i for i in asked if entry.labelled[i]]
        if again:
            rows_text = ", ".join(map(str, again[:10])) + (", …" if len(again) > 10 else "")
            raise PayloadError(f"request {request_id} already has a label for row(s) {rows_text}: one label per row, "
                               "the first one counts", 409, "feedback_repeated")
        predicted = _unpack(entry)
        correct: list[bool | None] = [None] * rows
        for i in asked:
            correct[i] = predicted[i] == str(labels[i])
            entry.labelled[i] = 1
        return entry.version, correct
