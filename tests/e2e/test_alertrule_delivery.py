"""AlertRule notification delivery end to end: repeatInterval, escalation levels, errorState
and how the operator records deliveries a receiver accepts late or refuses. A real Prometheus
(Debian) scrapes an in-test exporter; the operator, under its own ServiceAccount, notifies real
HTTP receivers through NotificationChannels."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from email import message_from_bytes
from email.policy import default as default_policy
from typing import Any

from kubernetes import client

from runbook_operator.api.common import API_VERSION
from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.waiting import free_port, wait_for
from runbook_operator.devcluster.prometheus import MetricsExporter, PrometheusServer
from tests.support.builders import alert_rule, errors_of
from tests.support.kube import (
    ALERT_RULES,
    CHANNELS,
    alert_notifications,
    alert_state,
    condition,
    create_slack_and_pagerduty,
    create_webhook_channel,
)
from tests.support.operator_metrics import evaluations, wait_for_evaluations
from tests.support.prometheus import exporter, prometheus  # noqa: F401
from tests.support.receivers import PAGERDUTY_ACCEPTED, HTTPReceiver, Reply, SMTPReceiver



@contextmanager
def receiving(api, namespace: str, default: Reply | None = None) -> Iterator[HTTPReceiver]:
    """A receiver that outlives the namespace's AlertRules: they are deleted before it closes,
    so that a still-firing rule of a finished test does not notify a closed port while its
    namespace is being deleted (retrying there would keep a delivery thread busy)."""
    with HTTPReceiver(default) as receiver:
        try:
            yield receiver
        finally:
            ALERT_RULES.delete_all(api, namespace)


def triggers(receiver: HTTPReceiver, rule_name: str) -> list[dict]:
    """PagerDuty trigger events for one rule (the payload's component is the rule's name)."""
    return [e for e in receiver.bodies(path="/v2/enqueue")
            if e["event_action"] == "trigger" and e["payload"]["component"] == rule_name]


def webhook_alerts(receiver: HTTPReceiver, rule_name: str, status: str = "firing") -> list[dict]:
    """Alertmanager-v4 bodies the webhook channel received for one rule."""
    return [b for b in receiver.bodies(path="/alerts")
            if b["status"] == status and b["alerts"][0]["labels"]["alertname"] == rule_name]


def at(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


def test_repeat_interval_resends_a_firing_alert_on_time_and_no_more_often(
    api, namespace: str, running_operator: LocalOperator,
    exporter: MetricsExporter, prometheus: PrometheusServer,  # noqa: F811
) -> None:
    series = {"service": f"repeat-{namespace[-5:]}"}
    exporter.set("http_errors_ratio", series, 0.5)
    with receiving(api, namespace, PAGERDUTY_ACCEPTED) as receiver:
        create_webhook_channel(api, namespace, receiver.url("/alerts"))
        create_slack_and_pagerduty(api, namespace, receiver.url("/slack"),
                                   receiver.url("/v2/enqueue"))
        ALERT_RULES.create(api, namespace, alert_rule(
            "repeating", prometheus.url, **{"for": "0s"}, interval="5s",
            query=errors_of(series),
            channels=[{"name": "pagerduty", "repeatInterval": "10s"},
                      {"name": "oncall"}]))  # the default repeatInterval: 4h

        wait_for(lambda: len(triggers(receiver, "repeating")) >= 3,
                 "the first notification and two repeats", timeout=60)
        wait_for_evaluations(running_operator, namespace, "repeating", 2,
                             "more evaluations after the second repeat")
        sent = triggers(receiver, "repeating")
        # The payload's timestamp is the evaluation that decided to send (second precision).
        times = [at(e["payload"]["timestamp"]) for e in sent]
        gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(times)]
        # Never before repeatInterval, over every evaluation so far; and at the first
        # evaluation after it (interval 5s, plus the 1s tick and rounding to seconds).
        assert all(10 <= gap <= 10 + 5 + 3 for gap in gaps), gaps
        assert len({e["dedup_key"] for e in sent}) == 1  # one PagerDuty alert, updated
        assert all(e["payload"]["custom_details"]["event"] == "firing" for e in sent)
        # The channel without a repeatInterval heard about it once over the same window.
        assert len(webhook_alerts(receiver, "repeating")) == 1

        def newest_record() -> dict[str, Any] | None:
            (found,) = [r for r in alert_notifications(api, namespace, "repeating")
                        if r["channel"] == "pagerduty"]
            return found if at(found["time"]).replace(microsecond=0) >= times[-1] else None

        pagerduty = wait_for(newest_record, "the last repeat recorded in status")
        assert pagerduty["event"] == "firing" and pagerduty["result"] == "delivered"
        assert alert_state(api, namespace, "repeating") == "Firing"


def test_escalation_raises_severity_and_adds_a_channel_only_while_firing(
    api, namespace: str, running_operator: LocalOperator,
    exporter: MetricsExporter, prometheus: PrometheusServer,  # noqa: F811
) -> None:
    lasting = {"service": f"lasting-{namespace[-5:]}"}
    brief = {"service": f"brief-{namespace[-5:]}"}
    exporter.set("http_errors_ratio", lasting, 0.5)
    exporter.set("http_errors_ratio", brief, 0.5)
    levels = [{"after": "10s", "severity": "critical", "channels": [{"name": "oncall"}]}]
    with receiving(api, namespace, PAGERDUTY_ACCEPTED) as receiver:
        create_webhook_channel(api, namespace, receiver.url("/alerts"))
        create_slack_and_pagerduty(api, namespace, receiver.url("/slack"),
                                   receiver.url("/v2/enqueue"))
        for name, series in (("lasting", lasting), ("brief", brief)):
            ALERT_RULES.create(api, namespace, alert_rule(
                name, prometheus.url, **{"for": "0s"}, interval="5s", severity="high",
                query=errors_of(series),
                channels=[{"name": "pagerduty"}], escalateAfter=levels))

        (first,) = wait_for(lambda: triggers(receiver, "lasting"), "the first page", timeout=60)
        assert first["payload"]["severity"] == "error"  # high, PagerDuty's default mapping
        assert first["payload"]["custom_details"]["event"] == "firing"
        # The brief alert resolves before its first escalation level is reached.
        wait_for(lambda: triggers(receiver, "brief"), "the brief alert's page", timeout=60)
        exporter.set("http_errors_ratio", brief, 0.01)

        escalated = wait_for(lambda: triggers(receiver, "lasting")[1:],
                             "the escalated page", timeout=40)
        assert escalated[0]["dedup_key"] == first["dedup_key"]
        assert escalated[0]["payload"]["severity"] == "critical"
        assert escalated[0]["payload"]["custom_details"]["event"] == "escalated"
        assert escalated[0]["payload"]["custom_details"]["severity"] == "critical"
        assert (at(escalated[0]["payload"]["timestamp"])
                - at(first["payload"]["timestamp"])).total_seconds() >= 10
        # The level's channel is new to the alert: it gets a firing message at the raised
        # severity, in Alertmanager's webhook format.
        (added,) = wait_for(lambda: webhook_alerts(receiver, "lasting"),
                            "the escalation channel's message")
        assert added["version"] == "4"
        assert added["commonLabels"]["severity"] == "critical"
        (alert,) = added["alerts"]
        assert alert["status"] == "firing" and alert["endsAt"] == "0001-01-01T00:00:00Z"
        assert alert["labels"]["severity"] == "critical"
        assert alert["labels"]["service"] == lasting["service"]
        assert alert["labels"]["namespace"] == namespace
        assert alert["labels"]["kind"] == "AlertRule"

        def escalated_records() -> list[tuple[str, str, str, int, str]] | None:
            found = sorted((r["channel"], r["event"], r["severity"], r["level"], r["result"])
                           for r in alert_notifications(api, namespace, "lasting"))
            return found if all(level == 1 for *_, level, _ in found) else None

        assert wait_for(escalated_records, "the escalation recorded in status") == [
            ("oncall", "firing", "critical", 1, "delivered"),
            ("pagerduty", "firing", "critical", 1, "delivered")]

        # The brief alert resolved first: it was never escalated, however long it is since
        # it fired; the resolve goes to the channel that heard about it, at its severity.
        wait_for(lambda: [e for e in receiver.bodies(path="/v2/enqueue")
                          if e["event_action"] == "resolve"], "the brief alert's resolve")
        wait_for_evaluations(running_operator, namespace, "brief", 2,
                             "evaluations of the resolved alert past its level's 10s")
        assert len(triggers(receiver, "brief")) == 1
        assert webhook_alerts(receiver, "brief") == []
        assert sorted((r["channel"], r["event"], r["severity"], r["level"])
                      for r in alert_notifications(api, namespace, "brief")) == [
            ("pagerduty", "resolved", "high", 0)]
        assert alert_state(api, namespace, "brief") == "Normal"
        assert len(triggers(receiver, "lasting")) == 2  # each level is sent once


def test_error_state_error_alerting_and_normal_on_failing_queries(
    api, namespace: str, running_operator: LocalOperator,
    exporter: MetricsExporter, prometheus: PrometheusServer,  # noqa: F811
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: the query is unavailable
    for pod in ("a", "b"):  # below the threshold: only the error can make it fire
        exporter.set("http_errors_ratio", {"service": f"dup-{namespace[-5:]}", "pod": pod},
                     0.01)
    selector = f'http_errors_ratio{{service="dup-{namespace[-5:]}"}}'
    many_to_many = f"{selector} + on() {selector}"  # Prometheus fails to execute it
    with receiving(api, namespace) as receiver:
        create_webhook_channel(api, namespace, receiver.url("/alerts"))
        ALERT_RULES.create(api, namespace, alert_rule("unreachable", closed, annotations={}))
        ALERT_RULES.create(api, namespace, alert_rule(
            "execution", prometheus.url, query=many_to_many, errorState="Alerting",
            **{"for": "0s"}))
        ALERT_RULES.create(api, namespace, alert_rule("ignored", closed, errorState="Normal"))

        # errorState Error (the default): the Error state, notified at once.
        wait_for(lambda: alert_state(api, namespace, "unreachable") == "Error", "Error", timeout=60)
        (message,) = wait_for(lambda: webhook_alerts(receiver, "unreachable"),
                              "the error notification")
        status = ALERT_RULES.status(api, namespace, "unreachable")
        (instance,) = status["instances"]
        assert instance["state"] == "Error" and instance["labels"] == {}
        assert closed.removeprefix("http://") in status["lastError"]
        assert condition(status, "Reconciling")["reason"] == "QueryFailed"
        assert condition(status, "Reconciling")["message"].startswith("unavailable: ")
        assert condition(status, "Ready")["status"] == "False"
        (alert,) = message["alerts"]
        assert alert["labels"]["severity"] == "critical"
        assert alert["annotations"]["summary"] == "unreachable is error"
        assert alert["annotations"]["description"] == instance["lastError"]
        (record, *_) = wait_for(lambda: alert_notifications(api, namespace, "unreachable"),
                                "the record")
        assert record["event"] == "error"

        # errorState Alerting: firing as if the condition held, and notified as firing.
        wait_for(lambda: alert_state(api, namespace, "execution") == "Firing", "Firing", timeout=60)
        status = ALERT_RULES.status(api, namespace, "execution")
        assert ("many-to-many" in status["lastError"]
                or "duplicate series" in status["lastError"]), status["lastError"]
        assert condition(status, "Reconciling")["message"].startswith("execution: ")
        wait_for(lambda: webhook_alerts(receiver, "execution"), "the firing notification")
        assert wait_for(lambda: alert_notifications(api, namespace, "execution"), "the record")[0][
            "event"] == "firing"

        # errorState Normal: the error is reported in status but nobody is notified.
        wait_for(lambda: ALERT_RULES.status(api, namespace, "ignored").get("lastError"),
                 "the error in status")
        wait_for_evaluations(running_operator, namespace, "ignored", 2,
                             "more evaluations of the failing query")
        assert alert_state(api, namespace, "ignored") == "Normal"
        assert webhook_alerts(receiver, "ignored") == []
        assert alert_notifications(api, namespace, "ignored") == []


def test_error_state_keep_last_keeps_firing_when_prometheus_breaks(
    api, namespace: str, running_operator: LocalOperator,
    exporter: MetricsExporter, prometheus: PrometheusServer,  # noqa: F811
) -> None:
    series = {"service": f"keep-{namespace[-5:]}"}
    exporter.set("http_errors_ratio", series, 0.5)
    with receiving(api, namespace) as receiver:
        create_webhook_channel(api, namespace, receiver.url("/alerts"))
        ALERT_RULES.create(api, namespace, alert_rule(
            "keeper", prometheus.url, **{"for": "0s"}, errorState="KeepLast",
            query=errors_of(series)))
        wait_for(lambda: webhook_alerts(receiver, "keeper"), "the firing notification",
                 timeout=60)
        wait_for(lambda: alert_state(api, namespace, "keeper") == "Firing", "Firing in status")
        (before,) = ALERT_RULES.status(api, namespace, "keeper")["instances"]

        closed = f"http://127.0.0.1:{free_port()}"
        ALERT_RULES.patch(api, namespace, "keeper", {"spec": {"prometheus": {"url": closed}}})
        status = wait_for(lambda: (s := ALERT_RULES.status(api, namespace, "keeper")).get(
            "lastError") and s, "the failing query in status", timeout=30)
        assert status["observedGeneration"] == 2
        assert closed.removeprefix("http://") in status["lastError"]
        wait_for_evaluations(running_operator, namespace, "keeper", 2,
                             "more evaluations against the broken Prometheus")
        status = ALERT_RULES.status(api, namespace, "keeper")
        assert status["state"] == "Firing"
        (after,) = status["instances"]
        assert after["state"] == "Firing" and after["firingSince"] == before["firingSince"]
        assert closed.removeprefix("http://") in after["lastError"]
        assert len(webhook_alerts(receiver, "keeper")) == 1
        assert webhook_alerts(receiver, "keeper", "resolved") == []
        assert [(r["event"], r["result"])
                for r in alert_notifications(api, namespace, "keeper")] == [("firing", "delivered")]


def test_a_delivery_answered_500_then_200_is_delivered_once(
    api, namespace: str, running_operator: LocalOperator,
    exporter: MetricsExporter, prometheus: PrometheusServer,  # noqa: F811
) -> None:
    series = {"service": f"retry-{namespace[-5:]}"}
    exporter.set("http_errors_ratio", series, 0.5)
    with receiving(api, namespace) as receiver:
        receiver.answer(Reply(status=500, body="try again"))  # then the default 200
        create_webhook_channel(api, namespace, receiver.url("/alerts"))
        ALERT_RULES.create(api, namespace, alert_rule(
            "retried", prometheus.url, **{"for": "0s"},
            query=errors_of(series)))

        (record,) = wait_for(lambda: alert_notifications(api, namespace, "retried"),
                             "the notification recorded in status", timeout=60)
        assert (record["channel"], record["event"], record["result"]) == (
            "oncall", "firing", "delivered")
        channel = CHANNELS.status(api, namespace, "oncall")
        assert channel["deliveredTotal"] == 1 and channel.get("failedTotal", 0) == 0
        assert channel["lastDelivery"]["result"] == "delivered"
        assert channel["lastDelivery"]["statusCode"] == 200

        wait_for_evaluations(running_operator, namespace, "retried", 2,
                             "more evaluations while firing")
        first, second = receiver.requests  # the 500, then the same payload again
        assert first.body == second.body
        assert [r["channel"] for r in alert_notifications(api, namespace, "retried")] == ["oncall"]
        assert CHANNELS.status(api, namespace, "oncall")["deliveredTotal"] == 1


def test_a_delivery_refused_with_400_is_recorded_failed_and_not_retried(
    api, namespace: str, running_operator: LocalOperator,
    exporter: MetricsExporter, prometheus: PrometheusServer,  # noqa: F811
) -> None:
    series = {"service": f"refused-{namespace[-5:]}"}
    exporter.set("http_errors_ratio", series, 0.5)
    with receiving(api, namespace, Reply(status=400, body="invalid payload")) as receiver:
        create_webhook_channel(api, namespace, receiver.url("/alerts"))
        ALERT_RULES.create(api, namespace, alert_rule(
            "refused", prometheus.url, **{"for": "0s"},
            query=errors_of(series)))

        (record,) = wait_for(lambda: alert_notifications(api, namespace, "refused"),
                             "the failed notification recorded in status", timeout=60)
        assert (record["channel"], record["event"], record["result"]) == (
            "oncall", "firing", "failed")
        channel = wait_for(lambda: (c := CHANNELS.status(api, namespace, "oncall")).get(
            "failedTotal") and c, "the failure in the channel's status")
        assert channel["failedTotal"] == 1 and channel.get("deliveredTotal", 0) == 0
        assert channel["lastDelivery"]["result"] == "failed"
        assert channel["lastDelivery"]["statusCode"] == 400
        assert "invalid payload" in channel["lastDelivery"]["message"]
        assert receiver.url("/alerts") not in channel["lastDelivery"]["message"]

        evaluated = evaluations(running_operator, namespace, "refused")
        wait_for_evaluations(running_operator, namespace, "refused", 3,
                             "more evaluations while firing")
        assert evaluations(running_operator, namespace, "refused") >= evaluated + 3
        assert len(receiver.requests) == 1  # a 400 is final: no retry, no resend each tick
        assert alert_notifications(api, namespace, "refused") == [record]
        assert CHANNELS.status(api, namespace, "oncall")["failedTotal"] == 1
        assert alert_state(api, namespace, "refused") == "Firing"


def test_a_receiver_that_hangs_delays_only_the_rule_notifying_it(
    api, namespace: str, running_operator: LocalOperator,
    exporter: MetricsExporter, prometheus: PrometheusServer,  # noqa: F811
) -> None:
    hanging = {"service": f"hanging-{namespace[-5:]}"}
    steady = {"service": f"steady-{namespace[-5:]}"}
    exporter.set("http_errors_ratio", hanging, 0.5)
    exporter.set("http_errors_ratio", steady, 0.01)
    # Each attempt outlasts the channel's 10s timeout, and timeouts are retried.
    with receiving(api, namespace, Reply(delay=120)) as receiver:
        create_webhook_channel(api, namespace, receiver.url("/alerts"))
        ALERT_RULES.create(api, namespace, alert_rule(
            "hung", prometheus.url, **{"for": "0s"},
            query=errors_of(hanging)))
        ALERT_RULES.create(api, namespace, alert_rule(
            "steady", prometheus.url, channels=[],
            query=errors_of(steady)))

        wait_for(lambda: receiver.requests, "the hung rule's delivery under way", timeout=60)
        # (It may have been evaluated before: as NoData, until Prometheus scraped its series.)
        hung_evaluations = evaluations(running_operator, namespace, "hung")
        wait_for_evaluations(running_operator, namespace, "steady", 3,
                             "the other rule evaluated on time meanwhile", timeout=25)
        # Still on its first delivery: not evaluated again, so not sent again either.
        assert evaluations(running_operator, namespace, "hung") == hung_evaluations
        assert all(r.body == receiver.requests[0].body for r in receiver.requests)
        assert alert_state(api, namespace, "steady") == "Normal"


def test_an_api_server_outage_loses_no_notification_and_repeats_none(
    cluster: LocalCluster, api, namespace: str, running_operator: LocalOperator,
    exporter: MetricsExporter, prometheus: PrometheusServer,  # noqa: F811
) -> None:
    series = {"service": f"outage-{namespace[-5:]}"}
    exporter.set("http_errors_ratio", series, 0.5)
    with receiving(api, namespace, PAGERDUTY_ACCEPTED) as receiver:
        create_webhook_channel(api, namespace, receiver.url("/alerts"))
        ALERT_RULES.create(api, namespace, alert_rule(
            "outage", prometheus.url, **{"for": "0s"},
            query=errors_of(series)))
        wait_for(lambda: alert_notifications(api, namespace, "outage"),
                 "the firing notification recorded", timeout=60)

        logged = len(running_operator.log_text())
        cluster.stop_apiserver()
        try:
            exporter.set("http_errors_ratio", series, 0.01)
            # Resolving needs a fresh read of the rule first: without the API server the
            # evaluation fails before anything is sent, and is decided again later — unless
            # the operator stopped evaluating first, standing by once it could not renew its
            # Lease (README, High availability).
            failed = f"evaluating {namespace}/outage failed"
            wait_for(lambda: any(failed in line and "the API server is unreachable" in line
                                 or "lost the Lease" in line
                                 for line in running_operator.log_text()[logged:].splitlines()),
                     "an evaluation that could not reach the API server, or standing by",
                     timeout=60)
            assert webhook_alerts(receiver, "outage", "resolved") == []
        finally:
            cluster.start_apiserver()

        wait_for(lambda: webhook_alerts(receiver, "outage", "resolved"),
                 "the resolved notification once the API server is back", timeout=120)
        wait_for(lambda: alert_state(api, namespace, "outage") == "Normal", "Normal in status")
        wait_for_evaluations(running_operator, namespace, "outage", 2,
                             "more evaluations after the resolve")
        assert len(webhook_alerts(receiver, "outage")) == 1
        assert len(webhook_alerts(receiver, "outage", "resolved")) == 1
        assert [(r["event"], r["result"]) for r in alert_notifications(
            api, namespace, "outage")] == [("resolved", "delivered")]


def test_email_through_a_real_smtp_relay_on_firing_and_resolve(
    api, namespace: str, running_operator: LocalOperator,
    exporter: MetricsExporter, prometheus: PrometheusServer,  # noqa: F811
) -> None:
    series = {"service": f"mailed-{namespace[-5:]}"}
    exporter.set("http_errors_ratio", series, 0.5)
    client.CoreV1Api(api).create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="smtp"),
        string_data={"user": "runbook", "password": "s3cr3t-pa55"}))
    with SMTPReceiver(credentials=("runbook", "s3cr3t-pa55")) as relay, \
            receiving(api, namespace):
        CHANNELS.create(api, namespace, {"apiVersion": API_VERSION, "kind": "NotificationChannel",
             "metadata": {"name": "mail"},
             "spec": {"email": {"smtpHost": "127.0.0.1", "smtpPort": relay.port,
                                "from": "runbook@example.com", "to": ["oncall@example.com"],
                                "startTLS": False,
                                "usernameSecretRef": {"name": "smtp", "key": "user"},
                                "passwordSecretRef": {"name": "smtp", "key": "password"}}}})
        ALERT_RULES.create(api, namespace, alert_rule(
            "mailed", prometheus.url, **{"for": "0s"}, channels=[{"name": "mail"}],
            query=errors_of(series)))

        (firing,) = wait_for(lambda: relay.mails, "the firing email", timeout=60)
        exporter.set("http_errors_ratio", series, 0.01)
        firing_mail, resolved_mail = wait_for(lambda: len(relay.mails) == 2 and relay.mails,
                                              "the resolved email", timeout=60)
        assert firing_mail is firing
        assert (firing.mail_from, firing.rcpt_tos, firing.login) == (
            "runbook@example.com", ["oncall@example.com"], "runbook")
        subjects = [message_from_bytes(m.content, policy=default_policy)["Subject"]
                    for m in relay.mails]
        summary = f"{series['service']} 5xx ratio is"
        assert subjects[0].startswith(f"[CRITICAL] {summary} 0.5"), subjects
        assert subjects[1].startswith(f"[RESOLVED] {summary}"), subjects
        wait_for(lambda: [(r["event"], r["result"])
                          for r in alert_notifications(api, namespace, "mailed")]
                 == [("resolved", "delivered")], "the resolve recorded in status")
        channel = CHANNELS.status(api, namespace, "mail")
        assert channel["deliveredTotal"] == 2 and channel.get("failedTotal", 0) == 0
        assert "s3cr3t" not in str(channel)
        assert "s3cr3t" not in running_operator.log_text()
