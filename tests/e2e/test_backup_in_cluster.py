"""BackupPolicy end to end inside the cluster: the operator's CronJobs and backup-now Jobs run
the real runner (the devcluster runtime runs pods of the project's image) against a real
PostgreSQL, into MinIO or a PVC directory; the operator reads the runner's termination message
into status; retention prunes; the restore-test CronJob restores into a scratch database and
records Verified with the measured RTO. Failures inside the cluster are reported with the
runner's or the Job controller's reason."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from typing import Any

from kubernetes import client

from runbook_operator.api.common import API_VERSION
from runbook_operator.core.backuppolicy.runner_config import scratch_database
from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.services import MinioServer, PostgresServer
from runbook_operator.devcluster.waiting import free_port, wait_for
from runbook_operator.runner.crypto import parse_key
from tests.support.databases import POSTGRES_SCHEMA, postgres_fingerprint
from tests.support.kube import (
    BACKUP_POLICIES,
    backup_now,
    condition,
    create_secrets,
    wait_run,
)

PREFIX = "prod"


def _database(postgres: PostgresServer) -> str:
    database = f"shop_{uuid.uuid4().hex[:8]}"
    postgres.create_database(database)
    postgres.psql(POSTGRES_SCHEMA, database)
    return database


def _secrets(api: client.ApiClient, namespace: str, postgres: PostgresServer,
             minio: MinioServer, password: str | None = None) -> str:
    """The Secrets a policy of _policy() reads; returns the id of its encryption key."""
    key = base64.b64encode(os.urandom(32)).decode()
    create_secrets(api, namespace, {
        "db": {"password": password or postgres.password},
        "backup-key": {"key": key},
        "s3": {"AWS_ACCESS_KEY_ID": minio.access_key,
               "AWS_SECRET_ACCESS_KEY": minio.secret_key},
    })
    return parse_key(key).id


def _policy(name: str, source: dict[str, Any], destination: dict[str, Any],
            **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION, "kind": "BackupPolicy", "metadata": {"name": name},
        "spec": {"schedule": "0 2 * * *", "source": source, "destination": destination,
                 "encryption": {"keySecretRef": {"name": "backup-key", "key": "key"}},
                 "backoffLimit": 0, "timeout": "3m", **spec},
    }


def _postgres_source(postgres: PostgresServer, database: str) -> dict[str, Any]:
    return {"postgres": {"host": postgres.host, "port": postgres.port, "database": database,
                         "user": postgres.user,
                         "passwordSecretRef": {"name": "db", "key": "password"}}}


def _s3(endpoint: str, bucket: str) -> dict[str, Any]:
    return {"s3": {"endpoint": endpoint, "bucket": bucket, "prefix": PREFIX,
                   "credentialsSecretRef": {"name": "s3"}}}


def test_backups_and_restore_tests_run_for_real_in_the_cluster(
    cluster: LocalCluster, api: client.ApiClient, namespace: str,
    running_operator: LocalOperator, postgres: PostgresServer, minio: MinioServer,
) -> None:
    database = _database(postgres)
    bucket = f"b-{uuid.uuid4().hex[:10]}"
    minio.create_bucket(bucket)
    key_id = _secrets(api, namespace, postgres, minio)
    check = "SELECT count(*) FROM orders"
    BACKUP_POLICIES.create(api, namespace, _policy(
        "shop", _postgres_source(postgres, database), _s3(minio.endpoint_url, bucket),
        retention={"keepLast": 2}, restoreTest={"schedule": "0 5 * * 0", "checkQuery": check}))
    BACKUP_POLICIES.wait_ready(api, namespace, "shop")

    runs = []
    for n in range(3):
        job = backup_now(api, namespace, "shop", f"run-{n}")
        runs.append(wait_run(api, namespace, "shop", job))
    assert [r["outcome"] for r in runs] == ["Succeeded"] * 3, runs

    status = BACKUP_POLICIES.status(api, namespace, "shop")
    last = status["lastBackup"]
    assert last["verified"] and last["jobName"] == runs[-1]["jobName"]
    assert last["keyId"] == key_id and all(r["keyId"] == key_id for r in runs)
    assert last["prunedCount"] == 1
    s3 = minio.client()
    objects = {o["Key"]: o for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert all(key.startswith(f"{PREFIX}/{namespace}/shop/") for key in objects)
    kept = sorted({key.split("/")[3] for key in objects})
    assert len(kept) == 2 and last["key"].endswith(kept[-1])
    [data] = [k for k in objects
              if k.startswith(f"{PREFIX}/{namespace}/{last['key']}/")
              and not k.endswith("manifest.json")]
    stored = s3.get_object(Bucket=bucket, Key=data)["Body"].read()
    assert len(stored) == last["sizeBytes"] == objects[data]["Size"]
    assert hashlib.sha256(stored).hexdigest() == last["sha256"]

    logs = cluster.kubectl("logs", f"job/{last['jobName']}", "-n", namespace).stdout
    assert "result: Succeeded" in logs

    cluster.kubectl("create", "job", "restore-1", "--from=cronjob/shop-restore", "-n", namespace)
    verified = BACKUP_POLICIES.wait_condition(api, namespace, "shop", "Verified", timeout=240)
    tested = verified["status"]["lastVerifiedBackup"]
    assert tested["jobName"] == "restore-1" and tested["backupKey"] == last["key"]
    assert tested["durationSeconds"] > 0
    assert condition(verified, "Verified")["reason"] == "RestoreSucceeded"
    assert (postgres_fingerprint(postgres, scratch_database(database))
            == postgres_fingerprint(postgres, database))


def test_the_cronjob_schedule_backs_up_into_the_claims_directory(
    cluster: LocalCluster, api: client.ApiClient, namespace: str,
    running_operator: LocalOperator, postgres: PostgresServer, minio: MinioServer,
) -> None:
    database = _database(postgres)
    _secrets(api, namespace, postgres, minio)
    claim = cluster.create_claim(namespace, "backups")  # empty: the runner makes shop/
    BACKUP_POLICIES.create(api, namespace, _policy(
        "every-minute", _postgres_source(postgres, database),
        {"pvc": {"claimName": "backups", "path": "shop"}}, schedule="* * * * *"))
    BACKUP_POLICIES.wait_ready(api, namespace, "every-minute")

    def scheduled() -> dict[str, Any] | None:
        status = BACKUP_POLICIES.status(api, namespace, "every-minute")
        return next((a for a in status.get("history") or []), None)

    run = wait_for(scheduled, "the first scheduled run", timeout=200)
    BACKUP_POLICIES.patch(api, namespace, "every-minute", {"spec": {"suspend": True}})
    assert run["outcome"] == "Succeeded", run
    assert run["jobName"].startswith("every-minute-backup-")
    last = BACKUP_POLICIES.status(api, namespace, "every-minute")["lastBackup"]
    directory = claim / "shop" / namespace / last["key"]
    [data] = [p for p in directory.iterdir() if p.name != "manifest.json"]
    assert data.stat().st_size == last["sizeBytes"]
    assert hashlib.sha256(data.read_bytes()).hexdigest() == last["sha256"]


def test_failures_inside_the_cluster_are_recorded_with_their_reason(
    cluster: LocalCluster, api: client.ApiClient, namespace: str,
    running_operator: LocalOperator, postgres: PostgresServer, minio: MinioServer,
) -> None:
    database = _database(postgres)
    wrong = "not-the-password"
    _secrets(api, namespace, postgres, minio, password=wrong)
    cluster.create_claim(namespace, "backups")
    pvc = {"pvc": {"claimName": "backups"}}
    nothing_listens = f"http://127.0.0.1:{free_port()}"
    policies = {
        "wrong-password": _policy("wrong-password", _postgres_source(postgres, database), pvc),
        "s3-unreachable": _policy("s3-unreachable", _postgres_source(postgres, database),
                                  _s3(nothing_listens, "nowhere")),
        "hangs": _policy("hangs", {"command": {"command": ["sleep", "600"]}}, pvc,
                         timeout="4s"),
    }
    for name, body in policies.items():
        BACKUP_POLICIES.create(api, namespace, body)
    jobs = {}
    for name in policies:
        BACKUP_POLICIES.wait_ready(api, namespace, name)
        jobs[name] = backup_now(api, namespace, name, "once")
    runs = {name: wait_run(api, namespace, name, job) for name, job in jobs.items()}

    assert (runs["wrong-password"]["outcome"], runs["wrong-password"]["reason"]) == (
        "Failed", "DumpFailed")
    assert "password authentication failed" in runs["wrong-password"]["message"]
    assert wrong not in str(BACKUP_POLICIES.get(api, namespace, "wrong-password"))
    unreachable = runs["s3-unreachable"]
    assert (unreachable["outcome"], unreachable["reason"]) == ("Failed", "StorageFailed")
    assert nothing_listens.removeprefix("http://") in unreachable["message"]
    assert (runs["hangs"]["outcome"], runs["hangs"]["reason"]) == ("Failed", "DeadlineExceeded")
