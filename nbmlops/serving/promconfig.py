"""A ready Prometheus setup for one deployment: the scrape config and its alerting rules, as text.

Pure functions: :class:`Target` says what to scrape, :func:`scrape_config` and :func:`alert_rules`
return the YAML (``promtool check config`` / ``check rules`` accept both);
``Deployment.prometheus_config(directory)`` writes them. The rules are groups made by the
functions in :data:`RULE_GROUPS`: another part of nbmlops adds its own alerts (drift, estimated
accuracy) by appending a function ``Target -> group`` there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .metrics import ACCURACY_WINDOW

RuleGroup = dict[str, Any]  # {"name": ..., "rules": [{"alert", "expr", "for", "labels", "annotations"}, ...]}


@dataclass(frozen=True)
class Target:
    """One deployment as Prometheus sees it, and the thresholds of its alerts."""

    deployment: str
    address: str  # host:port, as Prometheus reaches it
    credentials_file: str | None = None  # the prediction token's file (relative: beside the config)
    metrics_path: str = "/metrics"
    scrape_interval: float = 15.0  # seconds; also the rules' evaluation interval
    accuracy_window: int = ACCURACY_WINDOW
    error_ratio: float = 0.05  # share of requests answered 5xx (or of predictions the model refused)
    p99_seconds: float = 0.5  # whole-request p99 of POSTs
    accuracy_drop: float = 0.05  # windowed accuracy this far below the lifetime one
    drift_share: float = 0.5  # the live monitor's (serve(monitor=True)): share of drifted features ...
    drift_windows: int = 3  # ... in this many windows in a row
    accuracy_floor: float = 0.7  # estimated accuracy below this
    estimate_gap: float = 0.1  # realized accuracy this far from the estimated one

    @property
    def job(self) -> str:
        return f"nbmlops-{self.deployment}"

    @property
    def rule_file(self) -> str:
        return f"{self.job}.rules.yml"


def duration(seconds: float) -> str:
    """A Prometheus duration: ``15s``, ``500ms``."""
    ms = round(seconds * 1000)
    if ms < 1:
        raise ValueError(f"a Prometheus interval must be at least 1 ms, got {seconds!r} s")
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def scrape_config(target: Target) -> str:
    """prometheus.yml: scrape ``target`` (with its bearer token's file when it has one), load its rules."""
    job: dict[str, Any] = {"job_name": target.job, "metrics_path": target.metrics_path, "scheme": "http",
                           "scrape_timeout": duration(min(target.scrape_interval, 10.0))}
    if target.credentials_file:
        job["authorization"] = {"type": "Bearer", "credentials_file": target.credentials_file}
    job["static_configs"] = [{"targets": [target.address], "labels": {"deployment": target.deployment}}]
    every = duration(target.scrape_interval)
    config = {"global": {"scrape_interval": every, "evaluation_interval": every},
              "rule_files": [target.rule_file], "scrape_configs": [job]}
    return f"# Prometheus config for nbmlops deployment {target.deployment}: prometheus --config.file=THIS\n" + \
        to_yaml(config)


def alert_rules(target: Target) -> str:
    """The rules file: one group from each function of :data:`RULE_GROUPS`."""
    return f"# Alerting rules for nbmlops deployment {target.deployment}\n" + \
        to_yaml({"groups": [group(target) for group in RULE_GROUPS]})


def serving_rules(target: Target) -> RuleGroup:
    """The server's own alerts: down, error rate, p99 latency, accuracy drop."""
    job = f'job="{target.job}"'
    name = target.deployment
    served = f'{job},route!="{target.metrics_path}"'  # every request but the scrapes
    refused = f'model_request_errors_total{{{job},reason="model_error"}}'
    answered = f"model_prediction_latency_seconds_count{{{job}}}"
    min_labels = min(target.accuracy_window, 100)

    def rule(alert: str, expr: str, for_: str, severity: str, summary: str, description: str) -> dict[str, Any]:
        return {"alert": alert, "expr": expr, "for": for_, "labels": {"severity": severity, "deployment": name},
                "annotations": {"summary": summary, "description": description}}

    return {"name": target.job, "rules": [
        rule("NbmlopsServerDown", f"up{{{job}}} == 0", "1m", "critical",
             f"nbmlops deployment {name} is down",
             "Prometheus has not scraped {{ $labels.instance }} for a minute: the server stopped, or its "
             "token changed (re-run Deployment.prometheus_config)."),
        rule("NbmlopsHighErrorRate",
             f'sum(rate(model_http_requests_total{{{served},status=~"5.."}}[5m])) '
             f"/ sum(rate(model_http_requests_total{{{served}}}[5m])) > {target.error_ratio}",
             "5m", "warning", f"nbmlops deployment {name}: many requests fail",
             "{{ $value | humanizePercentage }} of requests were answered 5xx (busy or internal errors) "
             "over the last 5 minutes."),
        rule("NbmlopsModelErrors",
             f"sum by (model_version) (rate({refused}[5m])) / (sum by (model_version) (rate({refused}[5m])) "
             f"+ sum by (model_version) (rate({answered}[5m]))) > {target.error_ratio}",
             "5m", "warning", f"nbmlops deployment {name}: the model refuses inputs",
             "Version {{ $labels.model_version }} refused {{ $value | humanizePercentage }} of its prediction "
             "requests over the last 5 minutes (values it never saw in training, missing values): "
             "the server log has the model's messages."),
        rule("NbmlopsHighLatencyP99",
             "histogram_quantile(0.99, sum by (le) (rate(model_http_request_duration_seconds_bucket"
             f'{{{job},method="POST"}}[5m]))) > {target.p99_seconds}',
             "10m", "warning", f"nbmlops deployment {name} is slow",
             "The 99th percentile of whole-request time is {{ $value | humanizeDuration }} "
             f"(above {target.p99_seconds} s) over the last 5 minutes."),
        rule("NbmlopsAccuracyDrop",
             f"model_accuracy_windowed{{{job}}} < model_accuracy{{{job}}} - {target.accuracy_drop} "
             f"and model_accuracy_window_predictions{{{job}}} >= {min_labels}",
             "15m", "warning", f"nbmlops deployment {name}: accuracy dropped",
             f"Version {{{{ $labels.model_version }}}} was right on {{{{ $value | humanizePercentage }}}} of its "
             f"last {target.accuracy_window} labelled predictions, more than {target.accuracy_drop:g} below its "
             "lifetime accuracy: check the traffic for drift."),
    ]}


def monitor_rules(target: Target) -> RuleGroup:
    """The live monitor's alerts (series exist only on a server started with ``monitor=True``):
    drift over several windows, estimated accuracy below a floor, realized far from estimated."""
    job = f'job="{target.job}"'
    name = target.deployment

    def rule(alert: str, expr: str, for_: str, summary: str, description: str) -> dict[str, Any]:
        return {"alert": alert, "expr": expr, "for": for_, "labels": {"severity": "warning", "deployment": name},
                "annotations": {"summary": summary, "description": description}}

    return {"name": f"{target.job}-monitor", "rules": [
        rule("NbmlopsDataDrift",
             f"model_drift_share{{{job}}} >= {target.drift_share} "
             f"and model_drifted_windows_in_a_row{{{job}}} >= {target.drift_windows}",
             "0s", f"nbmlops deployment {name}: the traffic drifted",
             f"{{{{ $value | humanizePercentage }}}} of the features of version {{{{ $labels.model_version }}}} "
             f"drifted, {target.drift_windows} monitored windows in a row or more: /monitor names them "
             "(drift_history keeps each window)."),
        rule("NbmlopsEstimatedAccuracyLow",
             f"model_estimated_accuracy{{{job}}} < {target.accuracy_floor}", "5m",
             f"nbmlops deployment {name}: estimated accuracy is low",
             f"Version {{{{ $labels.model_version }}}} is estimated (CBPE, without labels) to be right on "
             f"{{{{ $value | humanizePercentage }}}} of its latest window, below {target.accuracy_floor:g}."),
        rule("NbmlopsEstimateGap",
             f"abs(model_realized_accuracy{{{job}}} - model_estimated_accuracy{{{job}}}) > {target.estimate_gap} "
             f"and model_realized_window_labels{{{job}}} >= 100", "15m",
             f"nbmlops deployment {name}: realized accuracy departs from the estimate",
             "Labels of version {{ $labels.model_version }} put its accuracy {{ $value | humanizePercentage }} "
             "away from the estimate: the labelling function may have changed (concept drift), which no "
             "estimate without labels sees."),
    ]}


RULE_GROUPS: list[Callable[[Target], RuleGroup]] = [serving_rules, monitor_rules]


def to_yaml(value: Any, indent: int = 0) -> str:
    """Block-style YAML of dicts, lists and scalars. Strings are quoted, so none is read as another
    type: single quotes (PromQL's double quotes stay readable), JSON's double quotes when a string
    has control characters (a JSON string is a YAML double-quoted scalar)."""
    pad = " " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:\n{to_yaml(item, indent + 2)}")
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}\n")
        return "".join(lines)
    if isinstance(value, list):
        lines = []
        for item in value:
            if isinstance(item, (dict, list)) and item:
                nested = to_yaml(item, indent + 2)
                lines.append(f"{pad}- {nested[indent + 2:]}")
            else:
                lines.append(f"{pad}- {_scalar(item)}\n")
        return "".join(lines)
    return f"{pad}{_scalar(value)}\n"


def _scalar(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (dict, list)):
        return "{}" if isinstance(value, dict) else "[]"
    text = str(value)
    return "'" + text.replace("'", "''") + "'" if text.isprintable() else json.dumps(text, ensure_ascii=False)
