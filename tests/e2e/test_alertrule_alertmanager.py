"""The operator's webhook channel against Alertmanager itself (Debian's 0.25), on the same
alerts: one Prometheus (Debian) evaluates the rule as an alerting rule and sends its alerts to
a real Alertmanager, whose webhook posts to one path of an in-test receiver; the operator
evaluates the same rule as an AlertRule (querying that Prometheus) and posts to another path.
The two bodies are compared field by field at firing, partial resolve and full resolve, with
Unicode label values; only the differences README.md documents are allowed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kubernetes import client

from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.prometheus import (
    AlertmanagerServer,
    MetricsExporter,
    PrometheusServer,
)
from runbook_operator.devcluster.waiting import wait_for
from tests.support.alerting import (
    OPERATOR_EXTERNAL_URL,
    compare_headers,
    compare_webhooks,
    table,
    undocumented,
)
from tests.support.builders import alert_rule
from tests.support.kube import ALERT_RULES, alert_state, create_webhook_channel
from tests.support.prometheus import exporter  # noqa: F401
from tests.support.receivers import HTTPReceiver

RULE = "checkout-errors"
METRIC = "fidelity_errors_ratio"
INTERVAL = timedelta(seconds=5)
#: Each evaluates on its own schedule: a transition is seen up to one interval apart, plus
#: scrape jitter (1 s), the operator's scheduling tick (1 s) and up to a second of event-loop
#: lag on a busy machine.
TOLERANCE = INTERVAL + timedelta(seconds=3)
PROMETHEUS_EXTERNAL_URL = "http://prometheus.example.test:9090"
ANNOTATIONS = {
    "summary": "{{ $labels.service }} fails {{ $value }} of requests",
    "description": "5xx ratio of {{ $labels.service }} is above 5%",
    "runbook_url": "https://runbooks.example.test/checkout-errors",
}


def bodies(receiver: HTTPReceiver, path: str) -> list[dict[str, Any]]:
    return receiver.bodies(path=path)


def headers(receiver: HTTPReceiver, path: str, n: int) -> dict[str, str]:
    return [r.headers for r in receiver.requests if r.path == path][n]


def test_the_operators_webhook_matches_alertmanagers_field_by_field(
    api: client.ApiClient, namespace: str, running_operator: LocalOperator,
    exporter: MetricsExporter,  # noqa: F811
) -> None:
    checkout = {"service": "checkout", "test": namespace}
    zurich = {"service": "Zürich ☕ 東京 «süd»", "test": namespace}
    query = f'{METRIC}{{test="{namespace}"}}'
    expression = f"{query} > 0.05"  # as Prometheus prints the parsed rule
    exporter.set_many(METRIC, [(checkout, 0.01), (zurich, 0.01)])
    rule_group = {"name": "fidelity", "interval": "5s", "rules": [{
        "alert": RULE, "expr": expression, "for": "0s",
        # The labels the operator sets on every alert (README: label precedence).
        "labels": {"namespace": namespace, "kind": "AlertRule", "severity": "critical"},
        "annotations": ANNOTATIONS}]}
    with HTTPReceiver() as receiver, \
            AlertmanagerServer(receiver.url("/alertmanager"), receiver="oncall",
                               group_by=["alertname", "namespace"],
                               external_url=OPERATOR_EXTERNAL_URL) as alertmanager, \
            PrometheusServer([exporter.target], rule_groups=[rule_group],
                             alertmanagers=[alertmanager.target],
                             external_url=PROMETHEUS_EXTERNAL_URL) as prometheus:
        prometheus.wait_targets_up()
        wait_for(lambda: prometheus.active_alertmanagers(), "Prometheus found Alertmanager",
                 timeout=30)
        create_webhook_channel(api, namespace, receiver.url("/operator"))
        ALERT_RULES.create(api, namespace, alert_rule(
            RULE, prometheus.url, query=query, **{"for": "0s"}, interval="5s",
            severity="critical", annotations=ANNOTATIONS,
            prometheus={"url": prometheus.url, "externalURL": PROMETHEUS_EXTERNAL_URL}))
        wait_for(lambda: alert_state(api, namespace, RULE) == "Normal", "Normal", timeout=60)

        steps = [
            ("both fire", lambda: exporter.set_many(METRIC, [(checkout, 0.5), (zurich, 0.25)])),
            ("checkout resolves", lambda: exporter.set(METRIC, checkout, 0.01)),
            ("everything resolved", lambda: exporter.set(METRIC, zurich, 0.02)),
        ]
        report = []
        for n, (what, change) in enumerate(steps, start=1):
            change()
            ours = wait_for(lambda n=n: bodies(receiver, "/operator")[n - 1:n],
                            f"the operator's message {n} ({what})", timeout=60)[0]
            theirs = wait_for(lambda n=n: bodies(receiver, "/alertmanager")[n - 1:n],
                              f"Alertmanager's message {n} ({what})", timeout=60)[0]
            rows = compare_webhooks(ours, theirs, query=query, expression=expression,
                                    tolerance=TOLERANCE)
            rows += compare_headers(headers(receiver, "/operator", n - 1),
                                    headers(receiver, "/alertmanager", n - 1))
            report.append((what, ours, rows))
            print(table(f"message {n}: {what}", rows))
            assert undocumented(rows) == [], table(f"message {n}: {what}", undocumented(rows))

        (_, firing, _), (_, partial, _), (_, resolved, _) = report
        # What the comparison stands for, spelled out.
        assert firing["status"] == "firing" and len(firing["alerts"]) == 2
        assert partial["status"] == "firing"
        assert sorted(a["status"] for a in partial["alerts"]) == ["firing", "resolved"]
        (gone,) = [a for a in partial["alerts"] if a["status"] == "resolved"]
        assert gone["annotations"]["summary"] == "checkout fails 0.5 of requests"
        assert gone["startsAt"] == next(a["startsAt"] for a in firing["alerts"]
                                        if a["labels"]["service"] == "checkout")
        assert resolved["status"] == "resolved"
        assert [a["labels"]["service"] for a in resolved["alerts"]] == [zurich["service"]]
        assert resolved["alerts"][0]["annotations"]["summary"] == (
            f"{zurich['service']} fails 0.25 of requests")
        assert len(bodies(receiver, "/operator")) == len(bodies(receiver, "/alertmanager")) == 3
