"""The serving widget: a deployment's status, versions and weights, live counters and latency,
a weight slider per version for A/B, and start/stop buttons. A thin face over the serving API."""

from __future__ import annotations

import threading
from html import escape
from typing import Any

import ipywidgets as w

import nbmlops

from ..display.serving import deployment_card
from ..display.style import CELL, RED, TABLE
from ..errors import NbmlopsError
from ._static import StaticFallback


def live_counters(dep: Any) -> dict[str, dict[str, float]]:
    """Requests and mean latency per version, read from the server's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    status, text = dep.request("GET", "/metrics", timeout=5)
    out: dict[str, dict[str, float]] = {}
    if status != 200:
        return out
    for family in text_string_to_metric_families(text):
        if family.name != "model_prediction_latency_seconds":
            continue
        for s in family.samples:
            v = out.setdefault(s.labels["model_version"], {"requests": 0.0, "seconds": 0.0})
            if s.name.endswith("_count"):
                v["requests"] = s.value
            elif s.name.endswith("_sum"):
                v["seconds"] = s.value
    return out


class ServingWidget(StaticFallback, w.VBox):
    def __init__(self, deployment: Any, refresh_every: float = 2.0) -> None:
        self.dep = deployment if hasattr(deployment, "doc") else nbmlops.get_deployment(str(deployment))
        self.refresh_every = refresh_every
        self.card = w.HTML()
        self.counters = w.HTML()
        self.sliders = w.VBox()
        whole = {"width": "auto", "flex": "0 0 auto"}  # as wide as the label, never shrunk to "Appl…"
        self.apply = w.Button(description="Apply weights", icon="balance-scale", layout=w.Layout(**whole))
        self.stop_button = w.Button(description="Stop", button_style="danger", icon="stop", layout=w.Layout(**whole))
        self.start_button = w.Button(description="Start", button_style="success", icon="play",
                                     layout=w.Layout(**whole))
        self.auto = w.Checkbox(value=True, description="live")
        self.message = w.HTML()
        self.apply.on_click(lambda _: self.apply_weights())
        self.stop_button.on_click(lambda _: self.stop())
        self.start_button.on_click(lambda _: self.start())
        self._closed = threading.Event()
        super().__init__([self.card, self.counters, self.sliders,
                          w.HBox([self.apply, self.start_button, self.stop_button, self.auto],
                                 layout=w.Layout(flex_flow="row wrap", align_items="center")),  # wrap, never cut
                          self.message])
        self.refresh(rebuild=True)
        threading.Thread(target=self._loop, daemon=True, name="nbmlops-serving-widget").start()

    def _loop(self) -> None:
        while not self._closed.wait(self.refresh_every):
            if self.auto.value:
                try:
                    self.refresh()
                except Exception:
                    pass

    def close(self) -> None:
        self._closed.set()
        super().close()

    def refresh(self, rebuild: bool = False) -> None:
        status = self.dep.status()
        self.card.value = deployment_card(self.dep, status)
        running = status["status"] == "running"
        self.stop_button.disabled, self.start_button.disabled, self.apply.disabled = not running, running, not running
        if not running:
            self.counters.value = ""
            return
        routing = self.dep.routing()
        counts = live_counters(self.dep)
        rows = "".join(
            f'<tr><td style="{CELL}">v{escape(v)}</td><td style="{CELL}">{weight:.0%}</td>'
            f'<td style="{CELL}">{int(counts.get(v, {}).get("requests", 0))}</td>'
            f'<td style="{CELL}">{_mean_ms(counts.get(v))}</td></tr>' for v, weight in routing["versions"].items())
        shadow = f" · shadow v{routing['shadow']}" if routing.get("shadow") else ""
        error = f'<div style="color:{RED}">{escape(routing["load_error"])}</div>' if routing.get("load_error") else ""
        head = "".join(f'<th style="{CELL}">{h}</th>' for h in ("version", "weight", "requests", "mean latency"))
        self.counters.value = (f'<table style="{TABLE}"><tr>{head}</tr>'
                               f"{rows}</table><div>"
                               f"{'follows ' + escape(routing['uri']) if routing['follows_alias'] else ''}"
                               f"{shadow}</div>{error}")
        if rebuild or set(routing["versions"]) != {s.description.lstrip("v") for s in self.sliders.children}:
            self.sliders.children = [w.FloatSlider(value=weight, min=0, max=1, step=0.05, description=f"v{v}")
                                     for v, weight in routing["versions"].items()]

    def _static_html(self) -> str:
        """The deployment's card and its versions table (weights, requests, latency) as last refreshed."""
        return f"<div>{self.card.value}{self.counters.value}{self.message.value}</div>"

    def apply_weights(self) -> None:
        try:
            new = self.dep.set_weights({int(s.description[1:]): s.value for s in self.sliders.children})
        except NbmlopsError as exc:
            self.message.value = f'<span style="color:{RED}">{escape(str(exc))}</span>'
            return
        self.message.value = "weights: " + ", ".join(f"v{v} {x:.0%}" for v, x in new.items())
        self.refresh(rebuild=True)

    def stop(self) -> None:
        self.dep.stop()
        self.message.value = f"stopped {escape(self.dep.name)}"
        self.refresh()

    def start(self) -> None:
        doc = self.dep.doc
        was = doc.get("settings") or {}  # start it again as it was (a prediction token is not kept: none)
        more = {k: was[k] for k in ("max_batch_size", "max_latency_ms", "max_queue") if k in was}
        try:
            self.dep = nbmlops.serve(doc["model_uri"], name=doc["name"], host=doc["host"],
                                     batching=doc.get("batching", True), log_requests=doc.get("log_requests", True),
                                     ab={int(v): w for v, w in was["ab"].items()} if was.get("ab") else None,
                                     shadow=was.get("shadow"), **more)
        except NbmlopsError as exc:
            self.message.value = f'<span style="color:{RED}">{escape(str(exc))}</span>'
            return
        self.message.value = f"started {escape(self.dep.name)} at {escape(self.dep.url)}"
        self.refresh(rebuild=True)


def _mean_ms(c: dict[str, float] | None) -> str:
    return f"{c['seconds'] / c['requests'] * 1000:.2f} ms" if c and c["requests"] else "—"


def serving_widget(deployment: Any, refresh_every: float = 2.0) -> ServingWidget:
    """A live panel for a deployment (a Deployment or its name)."""
    return ServingWidget(deployment, refresh_every)
