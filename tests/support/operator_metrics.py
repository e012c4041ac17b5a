"""What the operator under test reports about its own progress, read from its /metrics: the
tests' progress signal where status is written only when something changes."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.waiting import wait_for


def counter(operator: LocalOperator, family: str, labels: Mapping[str, str]) -> float:
    """The `_total` sample of counter `family` whose labels include `labels` (summed)."""
    total = 0.0
    for metric in text_string_to_metric_families(operator.metrics()):
        if metric.name != family:
            continue
        for sample in metric.samples:
            if sample.name.endswith("_total") and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def evaluations(operator: LocalOperator, namespace: str, name: str) -> int:
    """How often the operator has evaluated an AlertRule."""
    return int(counter(operator, "runbook_alert_evaluations",
                       {"namespace": namespace, "rule": name}))


def wait_for_evaluations(operator: LocalOperator, namespace: str, name: str, more: int,
                         what: str, timeout: float = 30) -> None:
    """Wait until the operator has evaluated the rule `more` more times than now."""
    target = evaluations(operator, namespace, name) + more
    wait_for(lambda: evaluations(operator, namespace, name) >= target, what, timeout=timeout)


def reconciles(operator: LocalOperator, kind: str) -> float:
    """Reconciles of every object of `kind` so far."""
    return counter(operator, "runbook_operator_reconcile", {"kind": kind})
