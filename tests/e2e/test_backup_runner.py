"""Runner-mode BackupPolicy on the control plane: the rendered runner CronJobs, and finished
Jobs whose runner results (termination messages, set here through kwok) update status."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client

from runbook_operator.devcluster.cluster import (
    EXIT_CODE_ANNOTATION,
    TERMINATION_MESSAGE_ANNOTATION,
    LocalCluster,
)
from runbook_operator.devcluster.local_operator import LocalOperator, wait_for
from runbook_operator.runner.pipeline import BackupResult, RestoreResult
from tests.e2e.test_backuppolicy import (
    GROUP, PLURAL, VERSION, condition, create_policy, cronjob, custom, get_policy, wait_ready,
)

SECRETS = {"db": {"password": "pg-secret-value"}, "backup-key": {"key": "A" * 43 + "="},
           "s3": {"AWS_ACCESS_KEY_ID": "access-key-id-value", "AWS_SECRET_ACCESS_KEY": "s3-secret-value"}}


def runner_policy(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "BackupPolicy",
        "metadata": {"name": name},
        "spec": {
            "schedule": "0 2 * * *",
            "source": {"postgres": {"host": "orders-db", "database": "orders", "user": "backup",
                                    "passwordSecretRef": {"name": "db", "key": "password"}}},
            "destination": {"s3": {"endpoint": "http://minio.example:9000", "bucket": "backups",
                                   "credentialsSecretRef": {"name": "s3"}}},
            "encryption": {"keySecretRef": {"name": "backup-key", "key": "key"}},
            "restoreTest": {"schedule": "0 6 * * 0"},
            "backoffLimit": 0,
        },
    }


def _result(ok: bool, job: str) -> str:
    return BackupResult.model_validate(dict(
        ok=ok, reason="Succeeded" if ok else "DumpFailed",
        message="" if ok else "pg_dump: error: connection to server failed",
        startedAt="2026-05-01T02:00:00Z", finishedAt="2026-05-01T02:00:30Z",
        durationSeconds=30.0, location=f"s3://backups/orders/{job}/", key=f"orders/{job}",
        sizeBytes=4096 if ok else None, sha256="cd" * 32 if ok else None, verified=ok,
    )).to_json()


def run_job(cluster: LocalCluster, namespace: str, cronjob_name: str, job_name: str,
            message: str | None, exit_code: int = 0) -> None:
    rendered = cluster.kubectl("create", "job", job_name, f"--from=cronjob/{cronjob_name}",
                               "-n", namespace, "--dry-run=client", "-o", "json").stdout
    job = json.loads(rendered)
    annotations = job["spec"]["template"]["metadata"].setdefault("annotations", {})
    if message is not None:
        annotations[TERMINATION_MESSAGE_ANNOTATION] = message
    if exit_code:
        annotations[EXIT_CODE_ANNOTATION] = str(exit_code)
    cluster.kubectl("create", "-f", "-", "-n", namespace, input=json.dumps(job))


def history_has(api, namespace: str, name: str, job_name: str) -> dict | None:
    status = get_policy(api, namespace, name).get("status", {})
    return next((a for a in status.get("history", []) if a["jobName"] == job_name), None)


def test_runner_backups_and_restore_tests_are_recorded_from_their_results(
    cluster: LocalCluster, api, namespace: str, running_operator: LocalOperator
) -> None:
    core = client.CoreV1Api(api)
    for name, data in SECRETS.items():
        core.create_namespaced_secret(
            namespace, client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=data))
    create_policy(api, namespace, runner_policy("orders"))
    wait_ready(api, namespace, "orders")

    backup_cj = cronjob(api, namespace, "orders-backup")
    restore_cj = cronjob(api, namespace, "orders-restore")
    assert backup_cj is not None and restore_cj is not None
    runner = backup_cj.spec.job_template.spec.template.spec.containers[0]
    assert runner.name == "runner" and runner.command == ["runbook-operator", "runner"]
    rendered = json.dumps(api.sanitize_for_serialization(backup_cj))
    rendered += json.dumps(api.sanitize_for_serialization(restore_cj))
    for data in SECRETS.values():
        for value in data.values():
            assert value not in rendered

    run_job(cluster, namespace, "orders-backup", "good", _result(True, "good"))
    good = wait_for(lambda: history_has(api, namespace, "orders", "good"), "the good run")
    assert good["outcome"] == "Succeeded" and good["sizeBytes"] == 4096
    status = get_policy(api, namespace, "orders")["status"]
    assert status["lastBackup"]["sha256"] == "cd" * 32 and status["lastBackup"]["verified"]
    assert status["lastBackup"]["location"] == "s3://backups/orders/good/"

    run_job(cluster, namespace, "orders-backup", "bad", _result(False, "bad"), exit_code=1)
    bad = wait_for(lambda: history_has(api, namespace, "orders", "bad"), "the failed run")
    assert (bad["outcome"], bad["reason"]) == ("Failed", "DumpFailed")
    assert "connection to server failed" in bad["message"]

    run_job(cluster, namespace, "orders-backup", "silent", None)
    silent = wait_for(lambda: history_has(api, namespace, "orders", "silent"), "the silent run")
    assert (silent["outcome"], silent["reason"]) == ("Failed", "NoResult")
    status = get_policy(api, namespace, "orders")["status"]
    assert status["lastBackup"]["jobName"] == "good"
    assert status["lastFailureTime"] >= status["lastSuccessfulTime"]

    restored = RestoreResult.model_validate(dict(
        ok=True, reason="Succeeded", startedAt="2026-05-01T06:00:00Z",
        finishedAt="2026-05-01T06:00:12Z", durationSeconds=12.5, key="orders/good",
        verified=True)).to_json()
    run_job(cluster, namespace, "orders-restore", "restore-1", restored)
    verified = wait_for(
        lambda: (o := get_policy(api, namespace, "orders"))
        and condition(o, "Verified").get("status") == "True" and o,
        "Verified=True after the restore test",
    )
    assert verified["status"]["lastVerifiedBackup"]["durationSeconds"] == 12.5
    assert verified["status"]["lastVerifiedBackup"]["backupKey"] == "orders/good"

    custom(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "orders", {"spec": {"restoreTest": None}})
    wait_for(lambda: cronjob(api, namespace, "orders-restore") is None,
             "the restore-test CronJob to be removed with restoreTest")
