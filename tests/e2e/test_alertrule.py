"""AlertRule end to end: a real Prometheus (Debian) scrapes an in-test exporter whose values
the test sets; the operator, under its own ServiceAccount, evaluates the rule and notifies a
real HTTP receiver through a NotificationChannel."""

from __future__ import annotations

import subprocess
import sys

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.waiting import wait_for
from runbook_operator.devcluster.prometheus import MetricsExporter, PrometheusServer
from tests.support.builders import alert_rule, errors_of
from tests.support.kube import (
    ALERT_RULES,
    alert_state,
    create_slack_and_pagerduty,
    create_webhook_channel,
)
from tests.support.operator_metrics import wait_for_evaluations
from tests.support.prometheus import exporter, prometheus  # noqa: F401
from tests.support.receivers import PAGERDUTY_ACCEPTED, HTTPReceiver


def test_threshold_rule_pends_fires_notifies_and_resolves(
    cluster: LocalCluster, api, namespace: str, running_operator: LocalOperator,
    exporter: MetricsExporter, prometheus: PrometheusServer,  # noqa: F811
) -> None:
    series = {"service": f"checkout-{namespace[-5:]}"}
    exporter.set("http_errors_ratio", series, 0.01)
    with HTTPReceiver(paths={"/v2/enqueue": PAGERDUTY_ACCEPTED}) as receiver:
        create_webhook_channel(api, namespace, receiver.url("/alerts"))
        create_slack_and_pagerduty(api, namespace, receiver.url("/slack"),
                                   receiver.url("/v2/enqueue"))
        ALERT_RULES.create(api, namespace, alert_rule(
            "checkout-5xx", prometheus.url,
            query=errors_of(series),
            channels=[{"name": "oncall"}, {"name": "slack"}, {"name": "pagerduty"}]))
        wait_for(lambda: alert_state(api, namespace, "checkout-5xx") == "Normal", "Normal",
                 timeout=60)
        ready = ALERT_RULES.get(api, namespace, "checkout-5xx")
        assert next(c for c in ready["status"]["conditions"] if c["type"] == "Ready")[
            "status"] == "True"

        exporter.set("http_errors_ratio", series, 0.09)
        wait_for(lambda: alert_state(api, namespace, "checkout-5xx") in ("Pending", "Firing"),
                 "Pending after the threshold is crossed", timeout=60)
        firing = wait_for(lambda: receiver.bodies(status="firing"), "the firing notification",
                          timeout=60)
        # Status is written after the notifications of the same evaluation went out.
        wait_for(lambda: alert_state(api, namespace, "checkout-5xx") == "Firing",
                 "Firing in status")
        alert = firing[0]["alerts"][0]
        assert alert["labels"]["service"] == series["service"]
        assert alert["annotations"]["summary"] == f"{series['service']} 5xx ratio is 0.09"
        slack = wait_for(lambda: receiver.bodies(path="/slack"), "the Slack message")
        assert f"{series['service']} 5xx ratio is 0.09" in slack[0]["text"]
        assert slack[0]["blocks"][0]["type"] in ("header", "section")
        (trigger,) = wait_for(lambda: receiver.bodies(path="/v2/enqueue"), "the PagerDuty event")
        assert trigger["event_action"] == "trigger"
        assert trigger["routing_key"] == "R0UT1NGKEY0123456789abcdefABCDEF"
        assert trigger["payload"]["severity"] == "critical"
        assert trigger["payload"]["summary"].startswith(series["service"])
        assert len(trigger["dedup_key"]) <= 255
        shown = subprocess.run(
            [sys.executable, "-m", "runbook_operator.cli.plugin", "alerts", "-n", namespace],
            env=cluster.env(), capture_output=True, text=True, check=True).stdout.splitlines()
        assert shown[1].split()[:4] == [namespace, "checkout-5xx", "Firing", "0.09"]
        status = ALERT_RULES.get(api, namespace, "checkout-5xx")["status"]
        (instance,) = status["instances"]
        assert instance["pendingSince"] < instance["firingSince"]
        assert status["lastValue"] == "0.09"
        assert {r["channel"]: r["result"] for r in status["notifications"]
                if r["event"] == "firing"} == dict.fromkeys(["oncall", "slack", "pagerduty"],
                                                            "delivered")

        exporter.set("http_errors_ratio", series, 0.01)
        resolved = wait_for(lambda: receiver.bodies(status="resolved"), "the resolved notification",
                            timeout=60)
        assert resolved[0]["alerts"][0]["fingerprint"] == alert["fingerprint"]
        assert len(receiver.bodies(status="firing")) == 1
        resolve = wait_for(lambda: [e for e in receiver.bodies(path="/v2/enqueue")
                                    if e["event_action"] == "resolve"], "the PagerDuty resolve")
        assert resolve[0]["dedup_key"] == trigger["dedup_key"]
        wait_for(lambda: alert_state(api, namespace, "checkout-5xx") == "Normal", "Normal again")


def test_invalid_promql_stalls_with_prometheus_message(
    api, namespace: str, running_operator: LocalOperator,
    prometheus: PrometheusServer,  # noqa: F811
) -> None:
    ALERT_RULES.create(api, namespace, alert_rule(
        "broken", prometheus.url, query="rate(http_requests_total[5m]", channels=[]))

    def stalled() -> dict | None:
        conditions = (ALERT_RULES.get(api, namespace, "broken").get("status") or {}).get(
            "conditions") or []
        found = next((c for c in conditions if c["type"] == "Stalled"), {})
        return found if found.get("status") == "True" else None

    condition = wait_for(stalled, "Stalled for invalid PromQL", timeout=60)
    assert condition["reason"] == "InvalidQuery"
    assert "parse error" in condition["message"]


def test_invalid_rule_specs_are_rejected_at_apply_time(api, namespace: str) -> None:
    bad = alert_rule("bad", "http://127.0.0.1:9")
    bad["spec"]["condition"]["operator"] = "above"
    with pytest.raises(ApiException) as raised:
        ALERT_RULES.create(api, namespace, bad)
    assert raised.value.status == 422 and "spec.condition.operator" in raised.value.body


def test_anomaly_rule_warms_up_stays_quiet_on_a_steady_series_and_fires_on_a_spike(
    api, namespace: str, running_operator: LocalOperator,
    exporter: MetricsExporter, prometheus: PrometheusServer,  # noqa: F811
) -> None:
    signal = {"test": namespace}
    exporter.set("anomaly_signal", signal, 10.0)
    body = alert_rule("latency-anomaly", prometheus.url, channels=[])
    del body["spec"]["query"], body["spec"]["condition"], body["spec"]["for"]
    body["spec"]["anomaly"] = {
        "queries": [{"name": "latency", "query": f'sum(anomaly_signal{{test="{namespace}"}})'}],
        "trainingWindow": "40s", "step": "1s", "minSamples": 20, "retrainInterval": "1h",
        "for": "5s",
    }
    ALERT_RULES.create(api, namespace, body)

    def anomaly_status() -> dict:
        return (ALERT_RULES.get(api, namespace, "latency-anomaly").get("status") or {}).get(
            "anomaly") or {}

    warming = wait_for(lambda: "samples" in anomaly_status() and anomaly_status(),
                       "a first evaluation", timeout=60)
    assert warming.get("trainedAt") is None and warming["samples"] < 20
    assert alert_state(api, namespace, "latency-anomaly") != "Firing"

    trained = wait_for(lambda: anomaly_status().get("trainedAt") and anomaly_status(),
                       "training once minSamples rows exist", timeout=90)
    assert trained["samples"] >= 20
    wait_for_evaluations(running_operator, namespace, "latency-anomaly", 2,
                         "more evaluations on the steady series")
    assert alert_state(api, namespace, "latency-anomaly") == "Normal"

    exporter.set("anomaly_signal", signal, 400.0)
    wait_for(lambda: alert_state(api, namespace, "latency-anomaly") == "Firing",
             "Firing after the spike lasts `for`", timeout=60)
    assert anomaly_status()["lastScore"] > anomaly_status()["threshold"]


def test_scale_action_changes_the_deployment_once_per_cooldown(
    api, namespace: str, running_operator: LocalOperator,
    exporter: MetricsExporter, prometheus: PrometheusServer,  # noqa: F811
) -> None:
    apps = client.AppsV1Api(api)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(namespace, client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=2, selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="web",
                                                                     image="nginx")])))))
    series = {"service": f"web-{namespace[-5:]}"}
    exporter.set("http_errors_ratio", series, 0.5)
    ALERT_RULES.create(api, namespace, alert_rule(
        "web-5xx", prometheus.url, channels=[], **{"for": "0s"},
        query=errors_of(series),
        actions={"scaleDeployment": {"name": "web", "by": 2, "min": 1, "max": 10},
                 "cooldown": "1h"}))

    def replicas() -> int:
        return apps.read_namespaced_deployment("web", namespace).spec.replicas

    wait_for(lambda: replicas() == 4, "the scale action", timeout=60)
    # The action's record is written to status after the scale (and its Event).
    wait_for(lambda: ALERT_RULES.status(api, namespace, "web-5xx").get("actions"),
             "the action recorded in status", timeout=30)
    (action,) = ALERT_RULES.status(api, namespace, "web-5xx")["actions"]
    assert action["action"] == "scaleDeployment" and action["result"] == "succeeded"
    assert "from 2 to 4" in action["message"]
    wait_for_evaluations(running_operator, namespace, "web-5xx", 2,
                         "more evaluations while still firing")
    assert replicas() == 4
    assert len(ALERT_RULES.status(api, namespace, "web-5xx")["actions"]) == 1
    events = client.CoreV1Api(api).list_namespaced_event(namespace).items
    assert [e.reason for e in events if e.involved_object.name == "web-5xx"].count(
        "ActionSucceeded") == 1


def test_restarts_keep_pending_time_and_never_repeat_a_notification(
    api, namespace: str, running_operator: LocalOperator,
    exporter: MetricsExporter, prometheus: PrometheusServer,  # noqa: F811
) -> None:
    series = {"service": f"restart-{namespace[-5:]}"}
    exporter.set("http_errors_ratio", series, 0.01)
    with HTTPReceiver() as receiver:
        create_webhook_channel(api, namespace, receiver.url("/alerts"))
        ALERT_RULES.create(api, namespace, alert_rule(
            "sticky", prometheus.url, **{"for": "20s"},
            query=errors_of(series)))
        wait_for(lambda: alert_state(api, namespace, "sticky") == "Normal", "Normal", timeout=60)
        exporter.set("http_errors_ratio", series, 0.5)
        wait_for(lambda: alert_state(api, namespace, "sticky") == "Pending", "Pending", timeout=60)
        pending_since = ALERT_RULES.get(api, namespace, "sticky")["status"]["instances"][0][
            "pendingSince"]

        before_restart = len(running_operator.log_text())
        running_operator.kill9()
        running_operator.start()
        wait_for(lambda: alert_state(api, namespace, "sticky") == "Firing", "Firing", timeout=90)
        (instance,) = ALERT_RULES.get(api, namespace, "sticky")["status"]["instances"]
        assert instance["pendingSince"] == pending_since  # `for` was not reset by the restart
        # Restarted under the same identity, it took its own Lease back without waiting.
        assert "leading:" in running_operator.log_text()[before_restart:]
        wait_for(lambda: receiver.bodies(status="firing"), "the firing notification", timeout=30)

        running_operator.kill9()
        running_operator.start()
        wait_for_evaluations(running_operator, namespace, "sticky", 2,
                             "two evaluations by the restarted operator", timeout=90)
        assert alert_state(api, namespace, "sticky") == "Firing"
        assert len(receiver.bodies(status="firing")) == 1


def test_keep_firing_for_suppresses_a_flap_and_send_resolved_false_is_honoured(
    api, namespace: str, running_operator: LocalOperator,
    exporter: MetricsExporter, prometheus: PrometheusServer,  # noqa: F811
) -> None:
    series = {"service": f"flappy-{namespace[-5:]}"}
    exporter.set("http_errors_ratio", series, 0.5)
    with HTTPReceiver() as receiver:
        create_webhook_channel(api, namespace, receiver.url("/alerts"))
        ALERT_RULES.create(api, namespace, alert_rule(
            "flappy", prometheus.url, **{"for": "0s"}, keepFiringFor="20s",
            channels=[{"name": "oncall", "sendResolved": False}],
            query=errors_of(series)))
        wait_for(lambda: receiver.bodies(status="firing"), "the firing notification", timeout=60)
        exporter.set("http_errors_ratio", series, 0.01)
        wait_for(lambda: alert_state(api, namespace, "flappy") == "Recovering", "Recovering",
                 timeout=30)
        exporter.set("http_errors_ratio", series, 0.5)
        wait_for(lambda: alert_state(api, namespace, "flappy") == "Firing", "Firing again",
                 timeout=30)
        exporter.set("http_errors_ratio", series, 0.01)
        wait_for(lambda: alert_state(api, namespace, "flappy") == "Normal",
                 "Normal once keepFiringFor has passed", timeout=90)
        assert len(receiver.bodies(status="firing")) == 1
        assert receiver.bodies(status="resolved") == []


def test_no_data_handled_as_alerting_fires(
    api, namespace: str, running_operator: LocalOperator,
    prometheus: PrometheusServer,  # noqa: F811
) -> None:
    ALERT_RULES.create(api, namespace, alert_rule(
        "heartbeat", prometheus.url, **{"for": "0s"}, channels=[],
        query='up{job="heartbeat-that-never-reports"}', noDataState="Alerting"))
    wait_for(lambda: alert_state(api, namespace, "heartbeat") == "Firing",
             "Firing on no data when noDataState is Alerting", timeout=60)
    ALERT_RULES.create(api, namespace, alert_rule(
        "quiet", prometheus.url, **{"for": "0s"}, channels=[],
        query='up{job="heartbeat-that-never-reports"}'))
    wait_for(lambda: alert_state(api, namespace, "quiet") == "NoData",
             "NoData (not firing) with the default noDataState", timeout=60)


def test_restart_and_webhook_actions_run_once(
    api, namespace: str, running_operator: LocalOperator,
    exporter: MetricsExporter, prometheus: PrometheusServer,  # noqa: F811
) -> None:
    apps = client.AppsV1Api(api)
    labels = {"app": "api"}
    apps.create_namespaced_deployment(namespace, client.V1Deployment(
        metadata=client.V1ObjectMeta(name="api"),
        spec=client.V1DeploymentSpec(
            replicas=1, selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="api",
                                                                     image="nginx")])))))
    series = {"service": f"api-{namespace[-5:]}"}
    exporter.set("http_errors_ratio", series, 0.5)
    with HTTPReceiver() as receiver:
        client.CoreV1Api(api).create_namespaced_secret(namespace, client.V1Secret(
            metadata=client.V1ObjectMeta(name="remediation"),
            string_data={"url": receiver.url("/remediate")}))
        ALERT_RULES.create(api, namespace, alert_rule(
            "api-5xx", prometheus.url, channels=[], **{"for": "0s"},
            query=errors_of(series),
            actions={"restartDeployment": {"name": "api"},
                     "webhook": {"urlSecretRef": {"name": "remediation", "key": "url"}},
                     "cooldown": "1h"}))

        def restarted_at() -> str | None:
            template = apps.read_namespaced_deployment("api", namespace).spec.template
            return (template.metadata.annotations or {}).get("kubectl.kubernetes.io/restartedAt")

        wait_for(restarted_at, "the rollout restart", timeout=60)
        (call,) = wait_for(lambda: receiver.requests, "the remediation webhook")
        assert call.json()["rule"] == "api-5xx"
        assert call.json()["labels"]["service"] == series["service"]
        first = restarted_at()
        wait_for_evaluations(running_operator, namespace, "api-5xx", 2,
                             "more evaluations within the cooldown")
        assert restarted_at() == first and len(receiver.requests) == 1
        actions = ALERT_RULES.get(api, namespace, "api-5xx")["status"]["actions"]
        assert sorted(a["action"] for a in actions) == ["restartDeployment", "webhook"]
        assert all(a["result"] == "succeeded" for a in actions)
        assert all("remediate" not in a["message"] for a in actions)  # URL path redacted
