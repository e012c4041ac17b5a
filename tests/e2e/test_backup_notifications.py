"""BackupPolicy notifications end to end: a real HTTP receiver (Alertmanager-v4 webhook
format) hears exactly one message per failed run and per RPO breach, and the all-clear."""

from __future__ import annotations

from kubernetes import client

from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.local_operator import LocalOperator, wait_for
from tests.e2e.test_backup_runner import run_job
from tests.e2e.test_backuppolicy import (
    _reconcile_count, condition, create_policy, get_policy, policy_body, wait_ready,
)
from tests.unit.notifiers import HTTPReceiver, Reply

GROUP, VERSION = "runbook.dev", "v1alpha1"


def create_channel(api, namespace: str, url: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="hook"), string_data={"url": url}))
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "notificationchannels",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "NotificationChannel",
         "metadata": {"name": "oncall"},
         "spec": {"webhook": {"urlSecretRef": {"name": "hook", "key": "url"}},
                  "retry": {"initialBackoff": "1s", "maxBackoff": "2s"}}})


def bodies(receiver: HTTPReceiver, event_status: str) -> list[dict]:
    return [r.json() for r in receiver.requests if r.json().get("status") == event_status]


def test_failed_backup_notifies_once_through_a_retrying_channel(
    cluster: LocalCluster, api, namespace: str, running_operator: LocalOperator
) -> None:
    with HTTPReceiver() as receiver:
        receiver.answer(Reply(status=503, body="busy"))  # the first attempt is retried
        create_channel(api, namespace, receiver.url("/alerts"))
        create_policy(api, namespace, policy_body(
            "notified", backoffLimit=0, notifications={"channels": ["oncall"]}))
        wait_ready(api, namespace, "notified")
        run_job(cluster, namespace, "notified-backup", "broken", None, exit_code=2)

        wait_for(lambda: bodies(receiver, "firing"), "the failure notification")
        seen = _reconcile_count(running_operator)
        wait_for(lambda: _reconcile_count(running_operator) >= seen + 4, "more resyncs")
        firing = bodies(receiver, "firing")
        # One notification: answered 503 once, retried with the same payload, then delivered.
        assert len(firing) == 2 and firing[0] == firing[1]
        alert = firing[0]["alerts"][0]
        assert firing[0]["version"] == "4" and alert["status"] == "firing"
        assert alert["labels"]["alertname"] == "notified"
        assert alert["labels"]["namespace"] == namespace
        assert alert["endsAt"] == "0001-01-01T00:00:00Z"
        assert "broken" in alert["annotations"]["job"]

        status = get_policy(api, namespace, "notified")["status"]
        assert [(n["event"], n["result"]) for n in status["notifications"]] == [
            ("failed", "delivered")]
        channel = client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, "notificationchannels", "oncall")
        assert channel["status"]["deliveredTotal"] == 1
        assert channel["status"]["lastDelivery"]["result"] == "delivered"


def test_rpo_breach_notifies_once_and_resolves(
    cluster: LocalCluster, api, namespace: str, running_operator: LocalOperator
) -> None:
    with HTTPReceiver() as receiver:
        create_channel(api, namespace, receiver.url("/alerts"))
        create_policy(api, namespace, policy_body(
            "late", suspend=True, rpo="15s", notifications={"channels": ["oncall"]}))
        wait_ready(api, namespace, "late")
        wait_for(lambda: bodies(receiver, "firing"), "the RPO breach notification", timeout=60)
        seen = _reconcile_count(running_operator)
        wait_for(lambda: _reconcile_count(running_operator) >= seen + 4, "more resyncs")
        assert len(bodies(receiver, "firing")) == 1
        assert "RPO 15s breached" in bodies(receiver, "firing")[0]["alerts"][0][
            "annotations"]["description"]

        run_job(cluster, namespace, "late-backup", "rescue", None)
        wait_for(lambda: bodies(receiver, "resolved"), "the all-clear")
        wait_for(lambda: condition(get_policy(api, namespace, "late"), "RPOMet").get("status")
                 == "True", "RPOMet=True in status (written after the notification)")
        resolved = bodies(receiver, "resolved")
        assert len(resolved) == 1
        assert (resolved[0]["alerts"][0]["fingerprint"]
                == bodies(receiver, "firing")[0]["alerts"][0]["fingerprint"])
