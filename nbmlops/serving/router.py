"""Which version answers: one version, an A/B split by weight, a shadow, or an alias followed.

Assignment is sticky by request key (the ``X-Request-Key`` header or a ``key`` field):
the same key always reaches the same version for given weights; requests without a key
are assigned at random. Weights change while serving (no restart, no dropped request).
A deployment of ``NAME@ALIAS`` follows the alias: a new version is loaded (hash
verified) beside the old one and swapped in between requests; if it fails to load the
old one keeps serving and the reason is reported.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..registry import get_model_version
from ..registry.uri import parse
from .batching import Batcher
from .model import ServedModel
from .payloads import PayloadError


class Route:
    def __init__(self, model: ServedModel, batcher: Batcher) -> None:
        self.model = model
        self.batcher = batcher


def _unit(key: str) -> float:
    """A stable number in [0, 1) for a request key."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") / 2**64


class Router:
    def __init__(self, uri: str, ab: dict[int, float] | None = None, shadow: int | None = None,
                 make_batcher: Callable[[ServedModel], Batcher] | None = None,
                 on_event: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.uri = uri
        self.ref = parse(uri)
        self.make_batcher = make_batcher or (lambda m: Batcher(m.predict))
        self.on_event = on_event or (lambda e: None)
        self.routes: dict[int, Route] = {}
        if ab:
            for version in ab:
                self._add(ServedModel(f"{self.ref.name}/{version}"))
            self.weights = self._normalize(ab)
        else:
            model = ServedModel(uri)
            self._add(model)
            self.weights = {model.version: 1.0}
        self.follow = bool(self.ref.alias) and not ab
        self.shadow: Route | None = None
        if shadow is not None:
            model = ServedModel(f"{self.ref.name}/{shadow}")
            self.shadow = Route(model, Batcher(model.predict, enabled=False))
        self.shadow_pool = ThreadPoolExecutor(1, thread_name_prefix="nbmlops-shadow")
        self.shadow_pending = 0
        self.load_error: str | None = None
        self.switches: list[dict[str, Any]] = []
        self._cumulative = self._table()

    @property
    def name(self) -> str:
        return self.ref.name

    def _add(self, model: ServedModel) -> Route:
        route = Route(model, self.make_batcher(model))
        self.routes[model.version] = route
        return route

    def _normalize(self, weights: dict[int, float]) -> dict[int, float]:
        clean: dict[int, float] = {}
        for version, w in weights.items():
            if version not in self.routes:
                raise PayloadError(f"version {version} is not served here (versions: {sorted(self.routes)})", 422)
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not w >= 0 or w == float("inf"):
                raise PayloadError(f"the weight of version {version} must be a non-negative number", 422)
            clean[version] = float(w)
        total = sum(clean.values())
        if total <= 0:
            raise PayloadError("at least one weight must be positive", 422)
        return {v: w / total for v, w in clean.items()}

    def _table(self) -> list[tuple[float, int]]:
        acc, table = 0.0, []
        for version in sorted(self.weights):
            acc += self.weights[version]
            table.append((acc, version))
        return table

    def set_weights(self, weights: dict[int, float]) -> dict[int, float]:
        self.weights = self._normalize(weights)
        self._cumulative = self._table()  # one assignment: requests see the old table or the new
        self.on_event({"weights": {str(v): w for v, w in self.weights.items()}})
        return self.weights

    def pick(self, key: str | None) -> Route:
        table = self._cumulative
        if len(table) == 1:
            return self.routes[table[0][1]]
        x = _unit(key) if key else random.random()
        for bound, version in table:
            if x < bound:
                return self.routes[version]
        return self.routes[table[-1][1]]

    def start(self) -> None:
        for route in self.routes.values():
            route.batcher.start()
        if self.follow:
            asyncio.get_running_loop().create_task(self._follow())

    # -- shadow ---------------------------------------------------------------------------
    def run_shadow(self, rows: list[list[Any]], record: Callable[[dict[str, Any]], None]) -> None:
        """Score a copy of the request on the shadow version, off the request path; its answer
        (or error) is only logged. Dropped when the shadow falls behind."""
        shadow = self.shadow
        if shadow is None or self.shadow_pending > 64:
            return
        self.shadow_pending += 1

        def work() -> None:
            start = time.perf_counter()
            try:
                out = shadow.model.predict(rows)
                record({"v": shadow.model.version, "shadow": True, "rows": rows, "out": out["predictions"],
                        "lat": round((time.perf_counter() - start) * 1000, 3)})
            except Exception as exc:
                record({"v": shadow.model.version, "shadow": True, "error": f"{type(exc).__name__}: {exc}"[:300]})
            finally:
                self.shadow_pending -= 1

        self.shadow_pool.submit(work)

    # -- following an alias -----------------------------------------------------------------------
    async def _follow(self, every: float = 1.0) -> None:
        loop = asyncio.get_running_loop()
        failed: int | None = None
        while True:
            await asyncio.sleep(every)
            try:
                target = (await loop.run_in_executor(None, get_model_version, self.uri)).version
            except Exception as exc:  # alias deleted, store unreadable: keep serving what we have
                self.load_error = f"cannot resolve {self.uri}: {exc}"
                continue
            current = next(iter(self.weights))
            if target in (current, failed):
                continue
            try:
                model = await loop.run_in_executor(None, ServedModel, f"{self.ref.name}/{target}")
            except Exception as exc:
                failed = target
                self.load_error = (f"{self.uri} moved to version {target} but loading it failed "
                                   f"({type(exc).__name__}: {exc}); still serving version {current}")
                self.on_event({"switch_failed": target, "error": self.load_error})
                continue
            failed, self.load_error = None, None
            route = self._add(model)
            route.batcher.start()
            self.weights = {target: 1.0}
            self._cumulative = self._table()  # the switch: one assignment between requests
            switch = {"time": int(time.time() * 1000), "from": current, "to": target}
            self.switches.append(switch)
            self.on_event({"switch": switch})
            old = self.routes.pop(current, None)
            if old is not None:  # let requests already queued on the old version finish
                loop.call_later(30, old.batcher.executor.shutdown, False)

    def info(self) -> dict[str, Any]:
        return {"uri": self.uri, "follows_alias": self.follow,
                "versions": {str(v): self.weights.get(v, 0.0) for v in self.routes},
                "shadow": self.shadow.model.version if self.shadow else None,
                "load_error": self.load_error, "switches": self.switches[-20:]}
