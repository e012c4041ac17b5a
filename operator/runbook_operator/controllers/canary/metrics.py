"""Prometheus metrics of CanaryRollouts: the canary's weight, the phase, analysis verdicts
and rollbacks, per rollout."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress

from prometheus_client import Counter, Gauge

from runbook_operator.api.canaryrollout import CanaryRolloutStatus, Measurement, Phase, Rollback

LABELS = ["namespace", "name"]
PHASES: tuple[Phase, ...] = ("Initializing", "Initialized", "Progressing", "Paused",
                             "WaitingPromotion", "Promoting", "Finalising", "Succeeded",
                             "Failed")
WEIGHT = Gauge("runbook_canary_weight_percent",
               "The share of traffic the router confirmed for the canary.", LABELS)
PHASE = Gauge("runbook_canary_phase", "1 for the rollout's phase, 0 for the others.",
              [*LABELS, "phase"])
ANALYSIS = Counter("runbook_canary_analysis_results_total",
                   "Measurements by metric and verdict (Pass, Fail, Inconclusive, Error).",
                   [*LABELS, "metric", "verdict"])
ROLLBACKS = Counter("runbook_canary_rollbacks_total",
                    "Rollbacks started, by reason.", [*LABELS, "reason"])


def publish(namespace: str, name: str, status: CanaryRolloutStatus) -> None:
    WEIGHT.labels(namespace, name).set(status.weight)
    for phase in PHASES:
        PHASE.labels(namespace, name, phase).set(1 if status.phase == phase else 0)


def count(namespace: str, name: str, measurements: Sequence[Measurement],
          rollback_started: Rollback | None) -> None:
    for measurement in measurements:
        ANALYSIS.labels(namespace, name, measurement.metric, measurement.verdict).inc()
    if rollback_started is not None:
        ROLLBACKS.labels(namespace, name, rollback_started.reason).inc()


def forget(namespace: str, name: str) -> None:
    with suppress(KeyError):
        WEIGHT.remove(namespace, name)
    for phase in PHASES:
        with suppress(KeyError):
            PHASE.remove(namespace, name, phase)
