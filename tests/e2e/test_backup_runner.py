"""Runner-mode BackupPolicy on the control plane: the rendered runner CronJobs hold no secret,
and runner pods that leave no result, or a broken one, never count as backups or restore
tests. The pods run for real (the devcluster runtime); only their command is replaced, by one
that dies early or writes garbage. Real runs with real results: test_backup_in_cluster.py."""

from __future__ import annotations

import json

from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.waiting import wait_for
from tests.support.builders import RUNNER_SECRETS, runner_policy
from tests.support.kube import (
    BACKUP_POLICIES,
    condition,
    create_secrets,
    history_entry,
    read_cronjob,
    run_job_with_command,
    wait_run,
)


def test_runner_cronjobs_hold_no_secret_and_follow_the_restore_test(
    api, namespace: str, running_operator: LocalOperator
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

    BACKUP_POLICIES.patch(api, namespace, "orders", {"spec": {"restoreTest": None}})
    wait_for(lambda: read_cronjob(api, namespace, "orders-restore") is None,
             "the restore-test CronJob to be removed with restoreTest")


def test_runs_without_a_valid_result_are_failures(
    cluster: LocalCluster, api, namespace: str, running_operator: LocalOperator
) -> None:
    create_secrets(api, namespace, RUNNER_SECRETS)
    BACKUP_POLICIES.create(api, namespace, runner_policy("orders"))
    BACKUP_POLICIES.wait_ready(api, namespace, "orders")

    garbage = ["sh", "-c", "echo '{not json' > /dev/termination-log"]
    half = ["sh", "-c", """echo '{"ok": true}' > /dev/termination-log"""]
    for job, command in (("silent", ["true"]), ("garbled", garbage), ("partial", half),
                         ("crashed", ["sh", "-c", "exit 3"])):
        run_job_with_command(cluster, namespace, "orders-backup", job, command)
    runs = {job: wait_run(api, namespace, "orders", job)
            for job in ("silent", "garbled", "partial", "crashed")}
    for job in ("silent", "garbled", "partial"):
        assert (runs[job]["outcome"], runs[job]["reason"]) == ("Failed", "NoResult"), runs[job]
    assert (runs["crashed"]["outcome"], runs["crashed"]["reason"]) == (
        "Failed", "BackoffLimitExceeded")
    status = BACKUP_POLICIES.status(api, namespace, "orders")
    assert "lastBackup" not in status and "lastSuccessfulTime" not in status
    assert history_entry(api, namespace, "orders", "silent") is not None

    run_job_with_command(cluster, namespace, "orders-restore", "restore-silent", ["true"])
    unverified = BACKUP_POLICIES.wait_condition(api, namespace, "orders", "Verified", "False",
                                               timeout=120)
    assert condition(unverified, "Verified")["reason"] == "RestoreFailed"
    assert unverified["status"]["lastVerifiedBackup"]["jobName"] == "restore-silent"
