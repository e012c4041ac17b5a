"""Runner-mode BackupPolicy on the control plane: the rendered runner CronJobs, and finished
Jobs whose runner results (termination messages, set here through kwok) update status."""

from __future__ import annotations

import json

from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.waiting import wait_for
from runbook_operator.runner.results import RestoreResult
from tests.support.builders import RUNNER_SECRETS, runner_policy, runner_result
from tests.support.kube import (
    BACKUP_POLICIES,
    condition,
    create_secrets,
    history_entry,
    read_cronjob,
    run_job_from_cronjob,
)



def test_runner_backups_and_restore_tests_are_recorded_from_their_results(
    cluster: LocalCluster, api, namespace: str, running_operator: LocalOperator
) -> None:
    create_secrets(api, namespace, RUNNER_SECRETS)
    BACKUP_POLICIES.create(api, namespace, runner_policy("orders"))
    BACKUP_POLICIES.wait_ready(api, namespace, "orders")

    backup_cj = read_cronjob(api, namespace, "orders-backup")
    restore_cj = read_cronjob(api, namespace, "orders-restore")
    assert backup_cj is not None and restore_cj is not None
    runner = backup_cj.spec.job_template.spec.template.spec.containers[0]
    assert runner.name == "runner" and runner.command == ["runbook-operator", "runner"]
    rendered = json.dumps(api.sanitize_for_serialization(backup_cj))
    rendered += json.dumps(api.sanitize_for_serialization(restore_cj))
    for data in RUNNER_SECRETS.values():
        for value in data.values():
            assert value not in rendered

    run_job_from_cronjob(cluster, namespace, "orders-backup", "good", runner_result(True, "good"))
    good = wait_for(lambda: history_entry(api, namespace, "orders", "good"), "the good run")
    assert good["outcome"] == "Succeeded" and good["sizeBytes"] == 4096
    status = BACKUP_POLICIES.get(api, namespace, "orders")["status"]
    assert status["lastBackup"]["sha256"] == "cd" * 32 and status["lastBackup"]["verified"]
    assert status["lastBackup"]["location"] == "s3://backups/orders/good/"

    run_job_from_cronjob(cluster, namespace, "orders-backup", "bad", runner_result(False, "bad"),
                         exit_code=1)
    bad = wait_for(lambda: history_entry(api, namespace, "orders", "bad"), "the failed run")
    assert (bad["outcome"], bad["reason"]) == ("Failed", "DumpFailed")
    assert "connection to server failed" in bad["message"]

    run_job_from_cronjob(cluster, namespace, "orders-backup", "silent", None)
    silent = wait_for(lambda: history_entry(api, namespace, "orders", "silent"), "the silent run")
    assert (silent["outcome"], silent["reason"]) == ("Failed", "NoResult")
    status = BACKUP_POLICIES.get(api, namespace, "orders")["status"]
    assert status["lastBackup"]["jobName"] == "good"
    assert status["lastFailureTime"] >= status["lastSuccessfulTime"]

    restored = RestoreResult.model_validate(dict(
        ok=True, reason="Succeeded", startedAt="2026-05-01T06:00:00Z",
        finishedAt="2026-05-01T06:00:12Z", durationSeconds=12.5, key="orders/good",
        verified=True)).to_json()
    run_job_from_cronjob(cluster, namespace, "orders-restore", "restore-1", restored)
    verified = wait_for(
        lambda: (o := BACKUP_POLICIES.get(api, namespace, "orders"))
        and condition(o, "Verified").get("status") == "True" and o,
        "Verified=True after the restore test",
    )
    assert verified["status"]["lastVerifiedBackup"]["durationSeconds"] == 12.5
    assert verified["status"]["lastVerifiedBackup"]["backupKey"] == "orders/good"

    BACKUP_POLICIES.patch(api, namespace, "orders", {"spec": {"restoreTest": None}})
    wait_for(lambda: read_cronjob(api, namespace, "orders-restore") is None,
             "the restore-test CronJob to be removed with restoreTest")
