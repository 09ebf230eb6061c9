"""Adaptive micro-batching: requests that arrive while the model is busy are scored together.

No request waits for a batch to fill: the batcher takes whatever is queued the moment
the model is free (up to ``max_batch_size`` rows; ``max_latency_ms`` bounds how long it
lets a forming batch gather once at least one request is waiting). At low load every
batch is one request; under load batches grow by themselves. The queue is bounded:
when full, the caller gets ``Overloaded`` (answered 503 with Retry-After). When the model
fails on a batch of several requests, each request is scored again on its own, so only the
request that makes the model fail gets the error (and no request sees another's error).

A model that scores a batch in under :data:`INLINE_BELOW` seconds of CPU (a linear model, say) is
called on the event loop itself: handing each batch to the model's thread and back would cost more than
the call, and under load the two threads wait for each other's GIL. Slower models (a forest) and
requests of ``max_batch_size`` rows or more stay on the model's thread, so the server keeps
reading requests while they score.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

INLINE_BELOW = 0.001  # seconds of CPU: a model call this quick runs on the event loop (see the module's docstring)
INLINE_WALL = 0.005  # ... if it also ends within this many seconds (not a model waiting on threads of its own)


class Overloaded(Exception):
    pass


class Batcher:
    def __init__(self, predict: Callable[[list[list[Any]]], dict[str, list[Any]]], max_batch_size: int = 64,
                 max_latency_ms: float = 2.0, max_queue: int = 1024, enabled: bool = True) -> None:
        self.predict = predict
        self.max_batch_size = max_batch_size
        self.max_latency = max_latency_ms / 1000
        self.enabled = enabled
        self.queue: asyncio.Queue[tuple[list[list[Any]], asyncio.Future[Any]]] = asyncio.Queue(max_queue)
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="nbmlops-model")
        self.task: asyncio.Task[None] | None = None
        self.on_batch: Callable[[int], None] | None = None
        self.took: deque[tuple[float, float]] = deque(maxlen=16)  # (CPU, wall) seconds of the last model calls

    def start(self) -> None:
        if self.enabled and self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def submit(self, rows: list[list[Any]]) -> dict[str, list[Any]]:
        loop = asyncio.get_running_loop()
        if len(rows) >= self.max_batch_size:  # a big request never blocks the loop
            return await loop.run_in_executor(self.executor, self._call, rows)
        if not self.enabled:
            return await self._score(rows)
        future: asyncio.Future[Any] = loop.create_future()
        try:
            self.queue.put_nowait((rows, future))
        except asyncio.QueueFull:
            raise Overloaded from None
        return await future

    def _call(self, rows: list[list[Any]]) -> dict[str, list[Any]]:
        if self.on_batch is not None:
            self.on_batch(len(rows))
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            return self.predict(rows)
        finally:
            self.took.append((time.thread_time() - cpu, time.perf_counter() - start))

    @property
    def quick(self) -> bool:
        """The model's last calls took under INLINE_BELOW seconds of CPU and INLINE_WALL of time, by
        their medians (a call a busy machine slowed down, or one batch bigger than the rest, does not
        move them; CPU time does not count the waits for another thread's GIL)."""
        took = self.took
        if not took:
            return False
        mid = len(took) // 2
        return (sorted(c for c, _ in took)[mid] < INLINE_BELOW and
                sorted(w for _, w in took)[mid] < INLINE_WALL)

    async def _score(self, rows: list[list[Any]]) -> dict[str, list[Any]]:
        """``_call`` on the loop when the model is quick, else on the model's thread."""
        if self.quick:
            return self._call(rows)
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._call, rows)

    async def _run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            size = len(batch[0][0])
            deadline = time.monotonic() + self.max_latency
            await asyncio.sleep(0)  # let requests already read off the sockets join
            while size < self.max_batch_size:
                try:
                    item = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    if time.monotonic() >= deadline or self.queue.qsize() == 0:
                        break
                    await asyncio.sleep(0)
                    continue
                batch.append(item)
                size += len(item[0])
            rows = [r for rows, _ in batch for r in rows]
            try:
                out = await self._score(rows)
            except Exception as exc:
                if len(batch) == 1:
                    if not batch[0][1].done():
                        batch[0][1].set_exception(exc)
                else:  # one request broke the batch: score each alone, so only that one fails
                    await self._one_by_one(batch)
                continue
            start = 0
            for item_rows, fut in batch:
                end = start + len(item_rows)
                if not fut.done():
                    fut.set_result({k: v[start:end] for k, v in out.items()})
                start = end

    async def _one_by_one(self, batch: list[tuple[list[list[Any]], asyncio.Future[Any]]]) -> None:
        for rows, fut in batch:
            if fut.done():
                continue
            try:
                out = await self._score(rows)
            except Exception as exc:
                out = exc
            if not fut.done():
                fut.set_exception(out) if isinstance(out, Exception) else fut.set_result(out)
