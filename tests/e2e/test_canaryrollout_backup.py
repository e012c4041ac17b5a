"""CanaryRollout backupBefore end to end: a revision change asks a BackupPolicy for a backup
through its runbook.dev/backup-now annotation, the backup Job's real runner pod runs (the
devcluster's process runtime) and stores into a claim's directory, and the first weight shift
waits for its success; a policy whose backup fails fails the rollout before any traffic moved.
The target runs pods kwok fakes (no traffic): the rollout is decided by the backup alone."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kubernetes import client

from runbook_operator.api.common import API_VERSION
from runbook_operator.core.backuppolicy.names import BACKUP_NOW_ANNOTATION, on_demand_job_name
from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.prometheus import PrometheusServer
from tests.support import canary
from tests.support.canary import FAKED_IMAGE
from tests.support.kube import BACKUP_POLICIES


def _policy(name: str, command: list[str]) -> dict[str, Any]:
    """A policy whose backup is `command`'s output, stored in the `backups` claim."""
    return {"apiVersion": API_VERSION, "kind": "BackupPolicy", "metadata": {"name": name},
            "spec": {"schedule": "0 2 * * *", "source": {"command": {"command": command}},
                     "destination": {"pvc": {"claimName": "backups"}},
                     "encryption": {"mode": "none"}, "backoffLimit": 0, "timeout": "2m"}}


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _release(cluster: LocalCluster, namespace: str, version: str) -> None:
    canary.apply_as_user(cluster, namespace, canary.target(version, image=FAKED_IMAGE))


def _reasons(snapshot: canary.Snapshot) -> set[str]:
    return {c.get("reason") for c in snapshot.status.get("conditions") or []}


def test_the_first_weight_shift_waits_for_the_backup_and_a_failed_backup_fails_the_rollout(
        api: client.ApiClient, cluster: LocalCluster, gateway_address: str, namespace: str,
        running_operator: LocalOperator, gateway_prometheus: PrometheusServer) -> None:
    cluster.create_claim(namespace, "backups")
    BACKUP_POLICIES.create(api, namespace, _policy("orders", ["echo", "orders"]))
    BACKUP_POLICIES.create(api, namespace, _policy("broken", ["false"]))
    for name in ("orders", "broken"):
        BACKUP_POLICIES.wait_ready(api, namespace, name)
    canary.deploy_app(cluster, namespace, image=FAKED_IMAGE)
    canary.create(api, namespace, canary.quick(
        gateway_prometheus.url, backupBefore={"backupPolicyRef": {"name": "orders"},
                                              "timeout": "3m"}))
    canary.wait_phase(api, namespace, "Initialized", timeout=180)
    untouched = BACKUP_POLICIES.get(api, namespace, "orders")["metadata"]
    assert BACKUP_NOW_ANNOTATION not in (untouched.get("annotations") or {})

    with canary.Recorder(api, namespace) as recorder:
        _release(cluster, namespace, "v2")
        final = canary.wait_phase(api, namespace, "Succeeded", timeout=240)
    backup = final["backup"]
    assert (backup["policy"], backup["state"]) == ("orders", "Succeeded"), backup
    policy = BACKUP_POLICIES.get(api, namespace, "orders")
    assert policy["metadata"]["annotations"][BACKUP_NOW_ANNOTATION] == backup["token"]
    job = on_demand_job_name("orders", backup["token"])
    [run] = [a for a in policy["status"]["history"] if a["jobName"] == job]
    assert run["outcome"] == "Succeeded", run
    started, requested = _time(final["rolloutStartedAt"]), _time(backup["requestedAt"])
    assert started <= requested < _time(run["time"]) <= _time(backup["finishedAt"])
    moved = next(s for s in recorder.snapshots if recorder.written(s) > 0)
    assert moved.status["backup"]["state"] == "Succeeded"
    assert _time(moved.status["router"]["time"]) >= _time(backup["finishedAt"])
    waiting = [s for s in recorder.snapshots
               if (s.status.get("backup") or {}).get("state") == "Requested"]
    assert waiting and all(recorder.written(s) == 0 for s in waiting)
    assert any("WaitingForBackup" in _reasons(s) for s in waiting)

    canary.ROLLOUTS.patch(api, namespace, canary.NAME,
                          {"spec": {"backupBefore": {"backupPolicyRef": {"name": "broken"}}}})
    with canary.Recorder(api, namespace) as recorder:
        _release(cluster, namespace, "v3")
        failed = canary.wait_phase(api, namespace, "Failed", done=canary.rolled_back,
                                   timeout=240)
    assert failed["rollback"]["reason"] == "BackupFailed", failed["rollback"]
    assert failed["backup"]["policy"] == "broken" and failed["backup"]["state"] == "Failed"
    assert failed["failedRevision"] == failed["revision"] != final["revision"]
    v3 = [s for s in recorder.snapshots if s.revision == failed["revision"]]
    assert v3 and all(recorder.written(s) == 0 and s.weight == 0 for s in v3)
    assert canary.version_of(canary.deployment(cluster, namespace, "checkout-primary")) == "v2"
    assert canary.deployment(cluster, namespace, canary.NAME)["spec"]["replicas"] == 0
