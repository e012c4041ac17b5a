"""What the operator under test reports about its own progress, read from its /metrics: the
tests' progress signal where status is written only when something changes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from prometheus_client.parser import text_string_to_metric_families

from runbook_operator.devcluster.waiting import wait_for


class MetricsSource(Protocol):
    """An operator instance whose /metrics can be read: a LocalOperator, or a pod."""

    def metrics(self) -> str: ...


def counter(operator: MetricsSource, family: str, labels: Mapping[str, str]) -> float:
    """The `_total` sample of counter `family` whose labels include `labels` (summed)."""
    total = 0.0
    for metric in text_string_to_metric_families(operator.metrics()):
        if metric.name != family:
            continue
        for sample in metric.samples:
            if sample.name.endswith("_total") and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def histogram(operator: MetricsSource, family: str,
              labels: Mapping[str, str]) -> tuple[float, float]:
    """The `_count` and `_sum` of histogram `family` whose labels include `labels` (summed)."""
    found = {"_count": 0.0, "_sum": 0.0}
    for metric in text_string_to_metric_families(operator.metrics()):
        if metric.name != family:
            continue
        for sample in metric.samples:
            suffix = sample.name.removeprefix(family)
            if suffix in found and labels.items() <= sample.labels.items():
                found[suffix] += sample.value
    return found["_count"], found["_sum"]


def evaluations(operator: MetricsSource, namespace: str, name: str) -> int:
    """How often the operator has evaluated an AlertRule."""
    return int(counter(operator, "runbook_alert_evaluations",
                       {"namespace": namespace, "rule": name}))


def wait_for_more(count: Callable[[], float], more: int, what: str, timeout: float) -> None:
    """Wait until `count` has grown by `more` from what it is now."""
    target = count() + more
    wait_for(lambda: count() >= target, what, timeout=timeout)


def wait_for_evaluations(operator: MetricsSource, namespace: str, name: str, more: int,
                         what: str, timeout: float = 30) -> None:
    """Wait until the operator has evaluated the rule `more` more times than now."""
    wait_for_more(lambda: evaluations(operator, namespace, name), more, what, timeout)


def policy_reconciles(operator: MetricsSource, namespace: str, policy: str) -> int:
    """How often the operator has reconciled one BackupPolicy (each reconcile evaluates its
    RPO): progress of this policy, which other tests' policies cannot fake."""
    return int(counter(operator, "runbook_backup_reconciles",
                       {"namespace": namespace, "policy": policy}))


def wait_for_policy_reconciles(operator: MetricsSource, namespace: str, policy: str, more: int,
                               what: str, timeout: float = 60) -> None:
    """Wait until the operator has reconciled the policy `more` more times than now."""
    wait_for_more(lambda: policy_reconciles(operator, namespace, policy), more, what, timeout)
