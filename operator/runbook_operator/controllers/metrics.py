"""Prometheus metrics about the operator itself: reconciles, errors and durations per kind."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.utils import floatToGoString

RECONCILES = Counter(
    "runbook_operator_reconcile_total",
    "Reconciles by kind and result (ready, reconciling, stalled, error).",
    ["kind", "result"],
)
RECONCILE_SECONDS = Histogram(
    "runbook_operator_reconcile_duration_seconds",
    "Time spent in one reconcile, by kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


class ReconcileResult:
    """Filled in by the reconcile so the metric records how it ended."""

    def __init__(self) -> None:
        self.value = "error"


@contextmanager
def measured(kind: str) -> Iterator[ReconcileResult]:
    """Count and time one reconcile; an exception counts as `error`."""
    result = ReconcileResult()
    start = time.perf_counter()
    try:
        yield result
    finally:
        RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - start)
        RECONCILES.labels(kind, result.value).inc()


BACKUP_LABELS = ["namespace", "policy"]
BACKUP_LAST_SUCCESS = Gauge(
    "runbook_backup_last_success_timestamp_seconds",
    "Unix time of the newest successful backup run.",
    BACKUP_LABELS,
)
BACKUP_RPO_MET = Gauge(
    "runbook_backup_rpo_met",
    "1 while the newest good backup is within the policy's RPO, 0 in breach.",
    BACKUP_LABELS,
)
BACKUP_SIZE = Gauge(
    "runbook_backup_size_bytes", "Stored size of the newest backup.", BACKUP_LABELS
)
BACKUP_DURATION = Gauge(
    "runbook_backup_duration_seconds", "Duration of the newest backup run.", BACKUP_LABELS
)
BACKUP_RECONCILES = Counter(
    "runbook_backup_reconciles_total",
    "Reconciles per BackupPolicy; status is only written when it changes, so this is the "
    "progress signal (each reconcile evaluates the RPO).",
    BACKUP_LABELS,
)
_BACKUP_METRICS = (BACKUP_LAST_SUCCESS, BACKUP_RPO_MET, BACKUP_SIZE, BACKUP_DURATION,
                   BACKUP_RECONCILES)


def publish_backup(namespace: str, policy: str, status: dict[str, Any]) -> None:
    """Mirror a policy's status into gauges (status is the source of truth; a restarted
    operator republishes on its first resync)."""
    labels = (namespace, policy)
    succeeded = status.get("lastSuccessfulTime")
    if succeeded:
        moment = datetime.fromisoformat(succeeded.replace("Z", "+00:00"))
        BACKUP_LAST_SUCCESS.labels(*labels).set(moment.timestamp())
    rpo = next((c for c in status.get("conditions") or [] if c.get("type") == "RPOMet"), None)
    if rpo is not None:
        BACKUP_RPO_MET.labels(*labels).set(1 if rpo.get("status") == "True" else 0)
    last = status.get("lastBackup") or {}
    if last:
        BACKUP_SIZE.labels(*labels).set(last.get("sizeBytes", 0))
        BACKUP_DURATION.labels(*labels).set(last.get("durationSeconds", 0))


def count_backup_reconcile(namespace: str, policy: str) -> None:
    BACKUP_RECONCILES.labels(namespace, policy).inc()


def forget_backup(namespace: str, policy: str) -> None:
    """Drop a deleted policy's series so dashboards do not show ghosts."""
    for metric in _BACKUP_METRICS:
        with suppress(KeyError):
            metric.remove(namespace, policy)


NOTIFICATIONS = Counter(
    "runbook_operator_notifications_total",
    "Notifications by the kind that sent them and the delivery result.",
    ["kind", "result"],
)
ALERT_EVALUATION_SECONDS = Histogram(
    "runbook_alert_evaluation_seconds",
    "Wall time of one tick's queries for the rules due on one Prometheus server.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ALERT_BATCH_SECONDS = Histogram(
    "runbook_alert_batch_seconds",
    "Wall time from a batch's queries until every rule in it is decided and its status "
    "written, notifications and actions included: a batch is one tick's threshold rules on "
    "one Prometheus server, or one anomaly rule.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
@dataclass(frozen=True, slots=True)
class _RuleSeries:
    """What one AlertRule shows on /metrics: its newest evaluation and how many there were."""

    labels: str
    """`namespace="…",rule="…"`, escaped once."""
    state: str
    evaluations: int
    last_evaluation: float
    value: float


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class AlertRuleSeries:
    """The per-rule series, kept as one record per rule and rendered straight to the text
    format at scrape time. As labelled children, 5,000 rules' 20,000 series (a lock and a
    sample object each, 13.5 MiB) cost 54 ms per tick to update; as a registry collector, they
    cost 184 ms per scrape to render plus 67 ms to gzip, 1.5 % of a core at a 15 s scrape
    interval; rendered here, 8 ms (bench/README.md)."""

    FAMILIES = (
        ("runbook_alert_state", "gauge",
         "1 for the AlertRule's current overall state; only that state's series exists, "
         "as with Prometheus' ALERTS."),
        ("runbook_alert_evaluations_total", "counter",
         "Evaluations per AlertRule; status is only written when it changes, so this is "
         "the progress signal."),
        ("runbook_alert_last_evaluation_timestamp_seconds", "gauge",
         "Unix time of the AlertRule's newest evaluation."),
        ("runbook_alert_value", "gauge",
         "The AlertRule's newest value (of its worst instance; NaN when it has none)."),
    )

    def __init__(self) -> None:
        self._rules: dict[tuple[str, str], _RuleSeries] = {}
        self._lock = threading.Lock()

    def publish(self, namespace: str, rule: str, state: str, evaluated_at: float,
                value: float) -> None:
        key = (namespace, rule)
        with self._lock:
            before = self._rules.get(key)
            if before is None:
                labels = f'namespace="{_label_value(namespace)}",rule="{_label_value(rule)}"'
                count = 1
            else:
                labels, count = before.labels, before.evaluations + 1
            self._rules[key] = _RuleSeries(labels, state, count, evaluated_at, value)

    def forget(self, namespace: str, rule: str) -> None:
        with self._lock:
            self._rules.pop((namespace, rule), None)

    def exposition(self) -> str:
        """The series in the Prometheus text format (version 0.0.4)."""
        with self._lock:
            rules = list(self._rules.values())
        (state, evaluations, last, value) = (
            [f"# HELP {name} {text}\n# TYPE {name} {kind}\n"]
            for name, kind, text in self.FAMILIES)
        for series in rules:
            state.append(f'runbook_alert_state{{{series.labels},'
                         f'state="{_label_value(series.state)}"}} 1.0\n')
            evaluations.append(f"runbook_alert_evaluations_total{{{series.labels}}} "
                               f"{floatToGoString(series.evaluations)}\n")
            last.append(f"runbook_alert_last_evaluation_timestamp_seconds{{{series.labels}}} "
                        f"{floatToGoString(series.last_evaluation)}\n")
            value.append(f"runbook_alert_value{{{series.labels}}} "
                         f"{floatToGoString(series.value)}\n")
        return "".join(state + evaluations + last + value)


ALERT_RULES = AlertRuleSeries()


def exposition() -> bytes:
    """What /metrics answers: the registry's metrics, then the per-rule AlertRule series."""
    return generate_latest(REGISTRY) + ALERT_RULES.exposition().encode()


def publish_alert(
    namespace: str, rule: str, state: str, evaluated_at: datetime, value: str | None
) -> None:
    """Mirror one evaluation: state, time and value change every tick, and are published
    here rather than written to status each time."""
    ALERT_RULES.publish(namespace, rule, state, evaluated_at.timestamp(),
                        float("nan") if value is None else float(value))


def forget_alert(namespace: str, rule: str) -> None:
    ALERT_RULES.forget(namespace, rule)


INCIDENTS_OPEN = Gauge(
    "runbook_incidents_open",
    "Incidents not resolved, by namespace and severity (P0-P3).",
    ["namespace", "severity"],
)
INCIDENT_MTTA = Histogram(
    "runbook_incident_mtta_seconds",
    "Time from opening to the first acknowledgement, per incident, by severity.",
    ["severity"],
    buckets=(30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400),
)
INCIDENT_MTTR = Histogram(
    "runbook_incident_mttr_seconds",
    "Time from opening to resolution, per incident, by severity.",
    ["severity"],
    buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200, 604800),
)
INCIDENT_ESCALATIONS = Counter(
    "runbook_incident_escalations",
    "Escalation steps paged, by the level of the EscalationPolicy they reached.",
    ["level"],
)
INCIDENT_ESCALATION_LATENESS = Histogram(
    "runbook_incident_escalation_lateness_seconds",
    "From a step's deadline until its last notification was sent.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
#: What each incident counts in INCIDENTS_OPEN: its (namespace, severity) while open.
_open_incidents: dict[tuple[str, str], tuple[str, str]] = {}


def track_incident(namespace: str, name: str, severity: str | None) -> None:
    """Count an incident as open under `severity`, or not at all (None: resolved or gone)."""
    key = (namespace, name)
    before = _open_incidents.pop(key, None)
    if before is not None:
        INCIDENTS_OPEN.labels(*before).dec()
    if severity is not None:
        _open_incidents[key] = (namespace, severity)
        INCIDENTS_OPEN.labels(namespace, severity).inc()
