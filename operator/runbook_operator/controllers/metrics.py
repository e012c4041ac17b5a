"""Prometheus metrics about the operator itself: reconciles, errors and durations per kind."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

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
