"""The AlertRule webhook action's URL is a credential: when the call fails (4xx, 5xx, refused,
timed out) the operator says so in status, in a Warning Event and in its log, and none of them
holds the URL, its path or its query."""

from __future__ import annotations

import json
import uuid

from kubernetes import client

from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.prometheus import MetricsExporter, PrometheusServer
from runbook_operator.devcluster.waiting import free_port, wait_for
from tests.support.builders import alert_rule, errors_of
from tests.support.kube import ALERT_RULES, create_secret
from tests.support.prometheus import exporter, prometheus  # noqa: F401
from tests.support.receivers import HTTPReceiver, Reply

#: Longer than the action's 10 s timeout, so the operator gives up first.
SLOWER_THAN_THE_ACTION = 20.0


def webhook_record(api: client.ApiClient, namespace: str, name: str) -> dict | None:
    actions = ALERT_RULES.status(api, namespace, name).get("actions") or []
    return next((a for a in actions if a["action"] == "webhook"), None)


def test_a_failing_webhook_action_never_shows_its_url(
    api: client.ApiClient, namespace: str, running_operator: LocalOperator,
    exporter: MetricsExporter, prometheus: PrometheusServer,  # noqa: F811
) -> None:
    token = uuid.uuid4().hex
    series = {"service": f"hook-{namespace[-5:]}"}
    exporter.set("http_errors_ratio", series, 0.5)
    with HTTPReceiver() as receiver:
        def path(case: str) -> str:
            return f"/hooks/{case}-{token}?key=q{token}"

        receiver.paths.update({
            path("rejected"): Reply(404, f"no hook at {path('rejected')}"),
            path("broken"): Reply(500, "internal error"),
            path("slow"): Reply(delay=SLOWER_THAN_THE_ACTION),
        })
        urls = {case: receiver.url(path(case)) for case in ("rejected", "broken", "slow")}
        urls["refused"] = f"http://127.0.0.1:{free_port()}{path('refused')}"
        for case, url in urls.items():
            create_secret(api, namespace, f"{case}-hook", {"url": url})
            ALERT_RULES.create(api, namespace, alert_rule(
                case, prometheus.url, channels=[], **{"for": "0s"}, query=errors_of(series),
                actions={"webhook": {"urlSecretRef": {"name": f"{case}-hook", "key": "url"}},
                         "cooldown": "1h"}))

        records = {case: wait_for(lambda case=case: webhook_record(api, namespace, case),
                                  f"the {case} webhook action's record", timeout=120)
                   for case in urls}
        assert len(receiver.requests) == 3

    def action_events() -> list[client.CoreV1Event] | None:
        events = client.CoreV1Api(api).list_namespaced_event(namespace).items
        failed = [e for e in events if e.reason == "ActionFailed"]
        return events if {e.involved_object.name for e in failed} == set(urls) else None

    events = wait_for(action_events, "an ActionFailed Event per rule")
    shown = {
        "status": json.dumps([ALERT_RULES.status(api, namespace, case) for case in urls]),
        "events": "\n".join(e.message or "" for e in events),
        "operator log": running_operator.log_text(),
    }
    secrets = [token, *urls.values()]  # the token is in every path and every query
    leaked = {where: [s for s in secrets if s in text] for where, text in shown.items()}
    assert leaked == {"status": [], "events": [], "operator log": []}
    assert {case: r["result"] for case, r in records.items()} == dict.fromkeys(urls, "failed")
    assert "404 no hook at ***" in records["rejected"]["message"]
    assert "500 internal error" in records["broken"]["message"]
    assert "ConnectError" in records["refused"]["message"]
    assert "ReadTimeout after 10s" in records["slow"]["message"]
    assert records["broken"]["message"] in shown["operator log"]
