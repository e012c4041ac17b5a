"""`kubectl runbook backup now|list|restore` against the real control plane and the operator.

kwok completes every Job pod with exit code 0; a pod's termination message (the runner's result)
can only be set through a pod template annotation, which the CLI never adds, so a restore Job
made by the CLI completes without a result, and the CLI must not call that a success."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from kubernetes import client
from runbook_operator.core.backuppolicy.names import BACKUP_NOW_ANNOTATION
from runbook_operator.core.backuppolicy.runner_config import RUNNER_CONFIG_ENV
from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.waiting import wait_for
from tests.support.builders import (
    RUNNER_KEY_ID,
    RUNNER_SECRETS,
    policy_body,
    runner_policy,
    runner_result,
)
from tests.support.kube import (
    BACKUP_POLICIES,
    create_secrets,
    history_entry,
    run_job_from_cronjob,
)


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


def test_backup_restore_creates_a_restore_job_and_wait_needs_a_runner_result(
    cluster: LocalCluster, api: client.ApiClient, namespace: str,
    running_operator: LocalOperator,
) -> None:
    create_secrets(api, namespace, RUNNER_SECRETS)
    BACKUP_POLICIES.create(api, namespace, runner_policy("orders"))
    BACKUP_POLICIES.wait_ready(api, namespace, "orders")

    refused = plugin(cluster, "backup", "restore", "orders", "--into", "orders", "-n", namespace)
    assert refused.returncode == 2
    assert "is the source database itself" in refused.stderr

    restore = plugin(cluster, "backup", "restore", "orders", "--into", "scratch_db",
                     "--backup", "orders/20260501T020000Z", "-n", namespace, "--wait",
                     "--timeout", "2m")
    assert restore.returncode == 1, (restore.stdout, restore.stderr)
    created = restore.stdout.splitlines()[0]
    assert created.startswith("job/orders-restore-")
    job_name = created.split()[0].removeprefix("job/").removesuffix(":")
    assert "the runner reported no result" in restore.stderr
    assert job_name in restore.stderr and "not confirmed" in restore.stderr

    job = client.BatchV1Api(api).read_namespaced_job(job_name, namespace)
    assert job.metadata.labels["runbook.dev/operation"] == "restore"
    assert job.metadata.labels["runbook.dev/backuppolicy"] == "orders"
    assert job.metadata.labels["app.kubernetes.io/managed-by"] == "kubectl-runbook"
    assert not job.metadata.owner_references
    assert job.spec.ttl_seconds_after_finished == 86400
    assert any(c.type == "Complete" and c.status == "True" for c in job.status.conditions)
    config = _job_config(job)
    assert config["operation"] == "restore"
    assert config["backupKey"] == "orders/20260501T020000Z"
    assert config["restoreTarget"]["kind"] == "postgres"
    assert config["restoreTarget"]["settings"]["database"] == "scratch_db"
    assert config["restoreTarget"]["settings"]["host"] == "orders-db"
    assert config["restoreTarget"]["settings"]["dropExisting"] is False
    rendered = json.dumps(api.sanitize_for_serialization(job))
    for data in RUNNER_SECRETS.values():
        for value in data.values():
            assert value not in rendered

    # The operator never judges a restore as a backup: a later backup is recorded, the
    # restore is not (neither in the history nor as the last successful backup).
    run_job_from_cronjob(cluster, namespace, "orders-backup", "good", runner_result(True, "good"))
    wait_for(lambda: history_entry(api, namespace, "orders", "good"), "the good backup")
    listed = plugin(cluster, "backup", "list", "orders", "-n", namespace, "-o", "json")
    assert listed.returncode == 0, listed.stderr
    shown = json.loads(listed.stdout)
    assert shown["lastBackup"]["jobName"] == "good"
    assert shown["lastBackup"]["keyId"] == RUNNER_KEY_ID
    table = plugin(cluster, "backup", "list", "orders", "-n", namespace)
    assert f"key {RUNNER_KEY_ID}" in table.stdout.splitlines()[0]
    assert [a["jobName"] for a in shown["history"]] == ["good"]
