"""Prometheus itself as the oracle for the AlertRule state machine: the same scripted series
evaluated by Prometheus (Debian) as alerting rules (`for`, `keep_firing_for`) and by the
operator as AlertRules querying that Prometheus, both every 5 s. Every transition the operator
writes to status must match Prometheus' ALERTS series, in order, each within one evaluation
interval plus scrape jitter.

The scripts are driven by what both show (set a value, wait until both reached the state it
must lead to), not by the clock; they run side by side, one thread per scenario."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from kubernetes import client

from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.prometheus import MetricsExporter, PrometheusServer
from runbook_operator.devcluster.waiting import wait_for
from tests.support.alerting import (
    PROMETHEUS_STATE,
    StatusRecorder,
    compare_transitions,
    operator_transitions,
    prometheus_rule,
    prometheus_transitions,
    transitions_table,
    wait_until_restored,
)
from tests.support.builders import alert_rule
from tests.support.kube import ALERT_RULES
from tests.support.prometheus import exporter  # noqa: F401

METRIC = "oracle_value"
INTERVAL = timedelta(seconds=5)
SCRAPE = timedelta(seconds=1)
#: The two evaluate on schedules of their own, so they see the scrape that brought a value up
#: to one interval apart; plus scrape jitter, the operator's 1 s scheduling tick and up to a
#: second of event-loop lag on a busy machine.
TOLERANCE = INTERVAL + SCRAPE + timedelta(seconds=2)
PROMQL = {"gt": ">", "ne": "!="}
REMOVE = None
DIP = "dip"
"""A step that waits until both have evaluated the value, whatever state it leads to."""


@dataclass(frozen=True)
class Scenario:
    name: str
    operator: str
    threshold: float
    for_: str
    keep_firing_for: str
    initial: float
    steps: tuple[tuple[float | None, str], ...]
    """(value to set, or REMOVE the series; the state both must then show, or DIP)."""
    expected: tuple[str, ...]
    """Prometheus' states after the initial inactive one, which the script must produce."""


SCENARIOS = (
    Scenario("short", "gt", 0.5, "20s", "0s", 0.0,
             ((1.0, "pending"), (0.0, "inactive")), ("pending", "inactive")),
    Scenario("long", "gt", 0.5, "10s", "0s", 0.0,
             ((1.0, "firing"), (0.0, "inactive")), ("pending", "firing", "inactive")),
    Scenario("flap-inside", "gt", 0.5, "0s", "20s", 0.0,
             ((1.0, "firing"), (0.0, DIP), (1.0, "firing"), (0.0, "inactive")),
             ("firing", "inactive")),
    Scenario("flap-outside", "gt", 0.5, "0s", "5s", 0.0,
             ((1.0, "firing"), (0.0, "inactive"), (1.0, "firing"), (0.0, "inactive")),
             ("firing", "inactive", "firing", "inactive")),
    Scenario("nan-ne", "ne", 10.0, "0s", "0s", 10.0,
             ((math.nan, "firing"), (10.0, "inactive")), ("firing", "inactive")),
    Scenario("absent", "gt", 0.5, "0s", "0s", 0.0,
             ((1.0, "firing"), (REMOVE, "inactive")), ("firing", "inactive")),
)


def rule_group(namespace: str) -> dict:
    return {"name": "oracle", "interval": f"{INTERVAL.seconds}s", "rules": [
        {"alert": s.name, "for": s.for_, "keep_firing_for": s.keep_firing_for,
         "expr": f'{METRIC}{{test="{namespace}", scenario="{s.name}"}} '
                 f'{PROMQL[s.operator]} {s.threshold:g}'}
        for s in SCENARIOS]}


def operator_state(api: client.ApiClient, namespace: str, name: str) -> str | None:
    return ALERT_RULES.status(api, namespace, name).get("state")


def evaluated_since(prometheus: PrometheusServer, name: str, since: datetime) -> bool:
    last = prometheus_rule(prometheus.url, name)["lastEvaluation"]
    return datetime.fromisoformat(last) >= since


def play(api: client.ApiClient, namespace: str, exporter: MetricsExporter,  # noqa: F811
         prometheus: PrometheusServer, scenario: Scenario) -> None:
    """Run one scenario's steps, each once both have reached what it leads to."""
    series = {"test": namespace, "scenario": scenario.name}
    for value, then in scenario.steps:
        if value is REMOVE:
            exporter.remove(METRIC, series)
        else:
            exporter.set(METRIC, series, value)
        changed = datetime.now(UTC)
        if then == DIP:
            # Each has evaluated the new value (after the scrape that brought it).
            wait_for(lambda: operator_state(api, namespace, scenario.name) == "Recovering",
                     f"{scenario.name}: the operator recovering", timeout=60)
            wait_for(lambda: evaluated_since(prometheus, scenario.name, changed + 2 * SCRAPE),
                     f"{scenario.name}: Prometheus evaluated the dip", timeout=60)
            continue
        wait_for(lambda: PROMETHEUS_STATE.get(operator_state(api, namespace, scenario.name)
                                              or "") == then,
                 f"{scenario.name}: the operator {then}", timeout=60)
        wait_for(lambda: prometheus_rule(prometheus.url, scenario.name)["state"] == then,
                 f"{scenario.name}: Prometheus {then}", timeout=60)


def test_every_transition_matches_prometheus_alerts_series(
    api: client.ApiClient, namespace: str, running_operator: LocalOperator,
    exporter: MetricsExporter,  # noqa: F811
) -> None:
    for scenario in SCENARIOS:
        exporter.set(METRIC, {"test": namespace, "scenario": scenario.name}, scenario.initial)
    started = datetime.now(UTC)
    with PrometheusServer([exporter.target], rule_groups=[rule_group(namespace)]) as prometheus, \
            StatusRecorder(api, namespace) as recorder:
        prometheus.wait_targets_up()
        for s in SCENARIOS:
            ALERT_RULES.create(api, namespace, alert_rule(
                s.name, prometheus.url, annotations={}, channels=[],
                query=f'{METRIC}{{test="{namespace}", scenario="{s.name}"}}',
                condition={"operator": s.operator, "threshold": s.threshold},
                interval=f"{INTERVAL.seconds}s", keepFiringFor=s.keep_firing_for,
                **{"for": s.for_}))
        wait_until_restored(prometheus.url, SCENARIOS[0].name, INTERVAL)
        for s in SCENARIOS:
            wait_for(lambda s=s: operator_state(api, namespace, s.name) == "Normal",
                     f"{s.name}: the operator evaluated the initial value", timeout=60)

        with ThreadPoolExecutor(len(SCENARIOS)) as pool:
            for done in [pool.submit(play, api, namespace, exporter, prometheus, s)
                         for s in SCENARIOS]:
                done.result()

        window = datetime.now(UTC) - started + INTERVAL
        problems, tables = [], []
        for s in SCENARIOS:
            theirs = prometheus_transitions(prometheus.url, s.name, window, INTERVAL)
            ours = operator_transitions(recorder.of(s.name))
            tables.append(transitions_table(s.name, ours, theirs))
            assert [state for state, _ in theirs] == list(s.expected), tables[-1]
            problems += [f"{s.name}: {p}" for p in compare_transitions(ours, theirs,
                                                                        TOLERANCE)]
        print("\n".join(tables))
        assert problems == [], "\n".join(problems + tables)
