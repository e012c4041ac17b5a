"""`kubectl runbook backup now|list|restore` against the real control plane and the operator:
a plain command's Job (kwok completes it), and the real runner's backup and restore (the
devcluster runtime runs it) against PostgreSQL and MinIO."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from typing import Any

from kubernetes import client
from runbook_operator.core.backuppolicy.names import BACKUP_NOW_ANNOTATION
from runbook_operator.core.backuppolicy.runner_config import RUNNER_CONFIG_ENV
from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.services import MinioServer, PostgresServer
from runbook_operator.runner.crypto import parse_key
from tests.support.builders import policy_body
from tests.support.databases import POSTGRES_SCHEMA, postgres_fingerprint
from tests.support.kube import BACKUP_POLICIES, create_secrets


def plugin(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runbook_operator.cli.plugin", *args],
        env=cluster.env(), capture_output=True, text=True, timeout=300, check=False,
    )


def test_backup_now_waits_for_the_run_and_list_shows_it(
    cluster: LocalCluster, api: client.ApiClient, namespace: str,
    running_operator: LocalOperator,
) -> None:
    BACKUP_POLICIES.create(api, namespace, policy_body("nightly", suspend=True))
    BACKUP_POLICIES.wait_ready(api, namespace, "nightly")

    now = plugin(cluster, "backup", "now", "nightly", "-n", namespace, "--wait",
                 "--timeout", "2m")
    assert now.returncode == 0, now.stderr
    requested, started, finished = now.stdout.splitlines()
    assert requested.startswith(f"backuppolicy/nightly: backup requested ({BACKUP_NOW_ANNOTATION}=")
    job_name = started.removeprefix("job/").removesuffix(" started")
    assert job_name.startswith("nightly-now-")
    assert finished.startswith(f"backup {job_name} succeeded")

    policy = BACKUP_POLICIES.get(api, namespace, "nightly")
    token = policy["metadata"]["annotations"][BACKUP_NOW_ANNOTATION]
    assert requested.endswith(f"={token})")
    assert policy["status"]["backupNowToken"] == token
    assert [a["outcome"] for a in policy["status"]["history"]
            if a["jobName"] == job_name] == ["Succeeded"]

    table = plugin(cluster, "backup", "list", "nightly", "-n", namespace)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == "Last backup:     none"  # a command without a destination stores nothing
    header = next(i for i, line in enumerate(lines) if line.startswith("TIME"))
    assert lines[header].split() == ["TIME", "JOB", "OUTCOME", "REASON", "SIZE", "MESSAGE"]
    assert lines[header + 1].split()[1:3] == [job_name, "Succeeded"]

    listed = plugin(cluster, "backup", "list", "nightly", "-n", namespace, "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["history"][0]["jobName"] == job_name

    missing = plugin(cluster, "backup", "now", "absent", "-n", namespace)
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        f"error: BackupPolicy 'absent' not found in namespace '{namespace}'")


def _job_config(job: client.V1Job) -> dict[str, Any]:
    [container] = job.spec.template.spec.containers
    env = {e.name: e for e in container.env}
    return json.loads(env[RUNNER_CONFIG_ENV].value)


def test_backup_now_and_restore_run_the_real_runner(
    cluster: LocalCluster, api: client.ApiClient, namespace: str,
    running_operator: LocalOperator, postgres: PostgresServer, minio: MinioServer,
) -> None:
    database = f"orders_{uuid.uuid4().hex[:8]}"
    postgres.create_database(database)
    postgres.psql(POSTGRES_SCHEMA, database)
    bucket = f"b-{uuid.uuid4().hex[:10]}"
    minio.create_bucket(bucket)
    secrets = {"db": {"password": postgres.password},
               "backup-key": {"key": base64.b64encode(os.urandom(32)).decode()},
               "s3": {"AWS_ACCESS_KEY_ID": minio.access_key,
                      "AWS_SECRET_ACCESS_KEY": minio.secret_key}}
    create_secrets(api, namespace, secrets)
    BACKUP_POLICIES.create(api, namespace, policy_body(
        "orders", backoffLimit=0,
        source={"postgres": {"host": postgres.host, "port": postgres.port, "database": database,
                             "user": postgres.user,
                             "passwordSecretRef": {"name": "db", "key": "password"}}},
        destination={"s3": {"endpoint": minio.endpoint_url, "bucket": bucket,
                            "credentialsSecretRef": {"name": "s3"}}},
        encryption={"keySecretRef": {"name": "backup-key", "key": "key"}}))
    BACKUP_POLICIES.wait_ready(api, namespace, "orders")

    now = plugin(cluster, "backup", "now", "orders", "-n", namespace, "--wait",
                 "--timeout", "4m")
    assert now.returncode == 0, (now.stdout, now.stderr)
    backup_job = now.stdout.splitlines()[1].removeprefix("job/").removesuffix(" started")
    last = BACKUP_POLICIES.status(api, namespace, "orders")["lastBackup"]
    backup_key = last["key"]
    key_id = parse_key(secrets["backup-key"]["key"]).id
    assert last["keyId"] == key_id
    table = plugin(cluster, "backup", "list", "orders", "-n", namespace)
    assert f"key {key_id}" in table.stdout.splitlines()[0]

    refused = plugin(cluster, "backup", "restore", "orders", "--into", database, "-n", namespace)
    assert refused.returncode == 2
    assert "is the source database itself" in refused.stderr

    scratch = f"{database}_copy"
    restore = plugin(cluster, "backup", "restore", "orders", "--into", scratch,
                     "--backup", backup_key, "-n", namespace, "--wait", "--timeout", "4m")
    assert restore.returncode == 0, (restore.stdout, restore.stderr)
    created = restore.stdout.splitlines()[0]
    assert created.startswith("job/orders-restore-")
    job_name = created.split()[0].removeprefix("job/").removesuffix(":")
    assert postgres_fingerprint(postgres, scratch) == postgres_fingerprint(postgres, database)

    job = client.BatchV1Api(api).read_namespaced_job(job_name, namespace)
    assert job.metadata.labels["runbook.dev/operation"] == "restore"
    assert job.metadata.labels["runbook.dev/backuppolicy"] == "orders"
    assert job.metadata.labels["app.kubernetes.io/managed-by"] == "kubectl-runbook"
    assert not job.metadata.owner_references
    assert job.spec.ttl_seconds_after_finished == 86400
    config = _job_config(job)
    assert config["operation"] == "restore"
    assert config["backupKey"] == backup_key
    assert config["restoreTarget"]["kind"] == "postgres"
    assert config["restoreTarget"]["settings"]["database"] == scratch
    assert config["restoreTarget"]["settings"]["dropExisting"] is False
    rendered = json.dumps(api.sanitize_for_serialization(job))
    for data in secrets.values():
        for value in data.values():
            assert value not in rendered

    # The operator never judges a restore as a backup: the history holds the backup only.
    listed = plugin(cluster, "backup", "list", "orders", "-n", namespace, "-o", "json")
    assert listed.returncode == 0, listed.stderr
    shown = json.loads(listed.stdout)
    assert shown["lastBackup"]["jobName"] == backup_job
    assert [a["jobName"] for a in shown["history"]] == [backup_job]
