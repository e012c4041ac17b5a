"""kube-apiserver and etcd stopped under a running operator, for 20 s and for 3 minutes
(beyond kopf's own retry budget of about a minute): the operator stays up and healthy
throughout, takes its Lease back, watches again, and finishes what became due meanwhile — an
alert that started firing during the outage notifies once; objects created or changed after
it are reconciled. A short restart of kube-apiserver under a long Lease keeps the operator's
term, and its watches resume (from their resourceVersion, or listing again where the
restarted server answers 410 Gone)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kubernetes import client

from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.prometheus import MetricsExporter, PrometheusServer
from runbook_operator.devcluster.waiting import wait_for
from tests.support.builders import alert_rule, errors_of, policy_body
from tests.support.faults import api_server_outage, patient_operator
from tests.support.kube import (
    ALERT_RULES,
    BACKUP_POLICIES,
    alert_state,
    create_webhook_channel,
    read_cronjob,
)
from tests.support.leadership import lease_holder
from tests.support.operator_metrics import wait_for_evaluations
from tests.support.prometheus import exporter, prometheus  # noqa: F401
from tests.support.receivers import HTTPReceiver

RECOVERY_DEADLINE = 180


@pytest.mark.parametrize("seconds", [20, 180], ids=["20s", "3min"])
def test_an_api_server_outage_is_survived_and_pending_work_finishes(
    cluster: LocalCluster, api: client.ApiClient, namespace: str,
    running_operator: LocalOperator, figures: dict[str, list[float]], seconds: int,
    exporter: MetricsExporter, prometheus: PrometheusServer,  # noqa: F811
) -> None:
    series = {"service": f"outage-{namespace[-5:]}"}
    exporter.set("http_errors_ratio", series, 0.01)
    with HTTPReceiver() as receiver:
        create_webhook_channel(api, namespace, receiver.url("/alerts"))
        ALERT_RULES.create(api, namespace, alert_rule(
            "due", prometheus.url, **{"for": "0s"}, query=errors_of(series)))
        BACKUP_POLICIES.create(api, namespace, policy_body("before"))
        wait_for(lambda: alert_state(api, namespace, "due") == "Normal", "Normal", timeout=60)
        BACKUP_POLICIES.wait_ready(api, namespace, "before")

        back = api_server_outage(cluster, running_operator, seconds,
                                 during=lambda: exporter.set("http_errors_ratio", series, 0.5))
        serving = time.monotonic() - back
        BACKUP_POLICIES.create(api, namespace, policy_body("after"))
        BACKUP_POLICIES.patch(api, namespace, "before", {"spec": {"schedule": "0 3 * * *"}})

        wait_for(lambda: lease_holder(api) == running_operator.identity,
                 "the operator to hold its Lease again", timeout=RECOVERY_DEADLINE)
        wait_for(lambda: receiver.bodies(status="firing"),
                 "the notification of the alert that started firing during the outage",
                 timeout=RECOVERY_DEADLINE)
        notified = time.monotonic() - back
        BACKUP_POLICIES.wait_ready(api, namespace, "after", timeout=RECOVERY_DEADLINE)
        created = time.monotonic() - back
        BACKUP_POLICIES.wait_ready(api, namespace, "before", timeout=RECOVERY_DEADLINE)
        cronjob = read_cronjob(api, namespace, "before-backup")
        assert cronjob is not None and cronjob.spec.schedule == "0 3 * * *"
        label = f"API server and etcd down {seconds} s, then started again"
        for figure, value in [("it serves Jobs again", serving), ("alert notified", notified),
                              ("new BackupPolicy Ready", created)]:
            figures.setdefault(f"{label}: {figure} (s)", []).append(value)
        print(f"\n{label}: {serving:.1f} s until it serves Jobs again; the alert notified "
              f"{notified:.1f} s and a new BackupPolicy Ready {created:.1f} s after the start")

        wait_for_evaluations(running_operator, namespace, "due", 3, "three more evaluations")
        assert alert_state(api, namespace, "due") == "Firing"
        assert len(receiver.bodies(status="firing")) == 1


def test_a_short_restart_keeps_the_term_and_its_watches_resume(
    cluster: LocalCluster, api: client.ApiClient, namespace: str, operator: LocalOperator,
    operator_kubeconfig: Path, tmp_path: Path,
) -> None:
    with patient_operator(api, operator, operator_kubeconfig,
                          tmp_path / "patient.log") as patient:
        BACKUP_POLICIES.create(api, namespace, policy_body("before"))
        BACKUP_POLICIES.wait_ready(api, namespace, "before")
        cluster.stop_apiserver()
        cluster.start_apiserver()
        BACKUP_POLICIES.create(api, namespace, policy_body("after"))
        BACKUP_POLICIES.patch(api, namespace, "before", {"spec": {"schedule": "0 3 * * *"}})
        BACKUP_POLICIES.wait_ready(api, namespace, "after", timeout=RECOVERY_DEADLINE)
        BACKUP_POLICIES.wait_ready(api, namespace, "before", timeout=RECOVERY_DEADLINE)
        # The same term throughout: kopf resumed its watches rather than starting anew.
        log = patient.log_text()
        assert log.count("leading:") == 1 and "lost the Lease" not in log
