"""BackupPolicy notifications end to end: a real HTTP receiver (Alertmanager-v4 webhook
format) hears exactly one message per failed run and per RPO breach, and the all-clear."""

from __future__ import annotations

from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.waiting import wait_for
from tests.support.builders import policy_body
from tests.support.kube import (
    BACKUP_POLICIES,
    CHANNELS,
    condition,
    create_webhook_channel,
    run_job_from_cronjob,
)
from tests.support.operator_metrics import wait_for_policy_reconciles
from tests.support.receivers import HTTPReceiver, Reply


def test_failed_backup_notifies_once_through_a_retrying_channel(
    cluster: LocalCluster, api, namespace: str, running_operator: LocalOperator
) -> None:
    with HTTPReceiver() as receiver:
        receiver.answer(Reply(status=503, body="busy"))  # the first attempt is retried
        create_webhook_channel(api, namespace, receiver.url("/alerts"))
        BACKUP_POLICIES.create(api, namespace, policy_body(
            "notified", backoffLimit=0, notifications={"channels": ["oncall"]}))
        BACKUP_POLICIES.wait_ready(api, namespace, "notified")
        run_job_from_cronjob(cluster, namespace, "notified-backup", "broken", None, exit_code=2)

        wait_for(lambda: receiver.bodies(status="firing"), "the failure notification")
        wait_for_policy_reconciles(running_operator, namespace, "notified", 4,
                                   "more reconciles of this policy")
        firing = receiver.bodies(status="firing")
        # One notification: answered 503 once, retried with the same payload, then delivered.
        assert len(firing) == 2 and firing[0] == firing[1]
        alert = firing[0]["alerts"][0]
        assert firing[0]["version"] == "4" and alert["status"] == "firing"
        assert alert["labels"]["alertname"] == "notified"
        assert alert["labels"]["namespace"] == namespace
        assert alert["endsAt"] == "0001-01-01T00:00:00Z"
        assert "broken" in alert["annotations"]["job"]

        status = BACKUP_POLICIES.get(api, namespace, "notified")["status"]
        assert [(n["event"], n["result"]) for n in status["notifications"]] == [
            ("failed", "delivered")]
        channel = CHANNELS.get(api, namespace, "oncall")
        assert channel["status"]["deliveredTotal"] == 1
        assert channel["status"]["lastDelivery"]["result"] == "delivered"


def test_rpo_breach_notifies_once_and_resolves(
    cluster: LocalCluster, api, namespace: str, running_operator: LocalOperator
) -> None:
    with HTTPReceiver() as receiver:
        create_webhook_channel(api, namespace, receiver.url("/alerts"))
        BACKUP_POLICIES.create(api, namespace, policy_body(
            "late", suspend=True, rpo="15s", notifications={"channels": ["oncall"]}))
        BACKUP_POLICIES.wait_ready(api, namespace, "late")
        wait_for(lambda: receiver.bodies(status="firing"), "the RPO breach notification",
                 timeout=60)
        wait_for_policy_reconciles(running_operator, namespace, "late", 4,
                                   "more reconciles of this policy while still in breach")
        assert len(receiver.bodies(status="firing")) == 1
        assert "RPO 15s breached" in receiver.bodies(status="firing")[0]["alerts"][0][
            "annotations"]["description"]

        run_job_from_cronjob(cluster, namespace, "late-backup", "rescue", None)
        wait_for(lambda: receiver.bodies(status="resolved"), "the all-clear")
        wait_for(lambda: condition(BACKUP_POLICIES.get(api, namespace, "late"),
                                   "RPOMet").get("status")
                 == "True", "RPOMet=True in status (written after the notification)")
        resolved = receiver.bodies(status="resolved")
        assert len(resolved) == 1
        assert (resolved[0]["alerts"][0]["fingerprint"]
                == receiver.bodies(status="firing")[0]["alerts"][0]["fingerprint"])
