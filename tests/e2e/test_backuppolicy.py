"""BackupPolicy end to end: real API server, real garbage collector, kwok-run Jobs, and the
operator as a subprocess under its own ServiceAccount with RBAC on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.waiting import wait_for
from tests.support.builders import policy_body
from tests.support.kube import (
    BACKUP_POLICIES,
    condition,
    read_cronjob,
    run_job_from_cronjob,
)
from tests.support.operator_metrics import wait_for_policy_reconciles

REPO = Path(__file__).resolve().parents[2]
SECRET_VALUE = "example-only-change-me"


def test_example_policy_renders_cronjob_and_becomes_ready(
    cluster: LocalCluster, api, namespace: str, running_operator: LocalOperator
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f",
                    str(REPO / "examples" / "backuppolicy-nightly.yaml"))
    obj = BACKUP_POLICIES.wait_ready(api, namespace, "app-db-nightly")
    assert obj["status"]["cronJobName"] == "app-db-nightly-backup"
    assert condition(obj, "Stalled")["status"] == "False"
    assert condition(obj, "Ready")["observedGeneration"] == obj["metadata"]["generation"]

    cj = read_cronjob(api, namespace, "app-db-nightly-backup")
    assert cj is not None
    assert cj.spec.schedule == "0 2 * * *" and cj.spec.time_zone == "UTC"
    assert cj.spec.concurrency_policy == "Forbid"
    assert cj.spec.starting_deadline_seconds == 600
    assert cj.spec.successful_jobs_history_limit == 3 and cj.spec.failed_jobs_history_limit == 3
    job = cj.spec.job_template.spec
    assert job.active_deadline_seconds == 3600 and job.backoff_limit == 1
    assert cj.metadata.labels["app.kubernetes.io/managed-by"] == "runbook-operator"
    assert cj.metadata.labels["runbook.dev/backuppolicy"] == "app-db-nightly"
    (owner,) = cj.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid) == (
        "BackupPolicy", "app-db-nightly", obj["metadata"]["uid"],
    )
    assert "runbook-operator" in {m.manager for m in cj.metadata.managed_fields}

    # The Secret is referenced, never copied: its value appears nowhere the operator wrote.
    env = {e.name: e for e in job.template.spec.containers[0].env}
    assert env["RUNBOOK_SOURCE_PASSWORD"].value is None
    assert env["RUNBOOK_SOURCE_PASSWORD"].value_from.secret_key_ref.name == "app-db-credentials"
    assert env["RUNBOOK_ENCRYPTION_KEY"].value_from.secret_key_ref.name == "app-db-backup-key"
    assert read_cronjob(api, namespace, "app-db-nightly-restore").spec.schedule == "0 5 * * 0"
    written = json.dumps(api.sanitize_for_serialization(cj)) + json.dumps(obj)
    written += cluster.kubectl("get", "events", "-n", namespace, "-o", "yaml").stdout
    assert SECRET_VALUE not in written
    assert SECRET_VALUE not in running_operator.log_text()


def test_finished_jobs_update_last_success_and_failure(
    cluster: LocalCluster, api, namespace: str, running_operator: LocalOperator
) -> None:
    BACKUP_POLICIES.create(api, namespace, policy_body("nightly", backoffLimit=0))
    BACKUP_POLICIES.wait_ready(api, namespace, "nightly")

    run_job_from_cronjob(cluster, namespace, "nightly-backup", "manual-ok")
    ok = wait_for(
        lambda: (s := BACKUP_POLICIES.get(api, namespace, "nightly").get("status", {})).get(
            "lastSuccessfulTime") and s,
        "lastSuccessfulTime after a completed Job",
    )
    assert ok["lastJob"]["name"] == "manual-ok" and ok["lastJob"]["outcome"] == "Succeeded"
    assert "lastFailureTime" not in ok

    run_job_from_cronjob(cluster, namespace, "nightly-backup", "manual-fail", exit_code=3)
    failed = wait_for(
        lambda: (s := BACKUP_POLICIES.get(api, namespace, "nightly").get("status", {})).get(
            "lastFailureTime") and s,
        "lastFailureTime after a failed Job",
    )
    assert failed["lastJob"]["name"] == "manual-fail"
    assert failed["lastJob"]["outcome"] == "Failed"
    assert failed["lastJob"]["reason"] == "BackoffLimitExceeded"
    assert failed["lastSuccessfulTime"] == ok["lastSuccessfulTime"]


def test_a_failing_backup_makes_the_policy_unready_until_one_succeeds(
    cluster: LocalCluster, api, namespace: str, running_operator: LocalOperator
) -> None:
    """Health says whether backups work (kstatus), so `kubectl wait`, Argo CD and Flux see a
    policy whose backups fail; a failing backup is not a spec problem, so not Stalled."""
    BACKUP_POLICIES.create(api, namespace, policy_body("flaky", backoffLimit=0))
    BACKUP_POLICIES.wait_ready(api, namespace, "flaky")

    run_job_from_cronjob(cluster, namespace, "flaky-backup", "broken", exit_code=3)
    cluster.kubectl("wait", "--for=condition=Ready=False", "--timeout=60s", "-n", namespace,
                    "backuppolicy/flaky")
    failing = BACKUP_POLICIES.get(api, namespace, "flaky")
    ready = condition(failing, "Ready")
    assert ready["reason"] == "BackupFailing" and "Job broken" in ready["message"]
    assert ready["observedGeneration"] == failing["metadata"]["generation"]
    assert condition(failing, "Stalled")["status"] == "False"
    shown = subprocess.run(
        [sys.executable, "-m", "runbook_operator.cli.plugin", "status", "-n", namespace,
         "--fail-unready"], env=cluster.env(), capture_output=True, text=True, check=False)
    assert shown.returncode == 1, shown.stderr
    assert "BackupFailing" in next(line for line in shown.stdout.splitlines() if "flaky" in line)

    wait_for_policy_reconciles(running_operator, namespace, "flaky", 3,
                               "reconciles of the failing policy")
    again = condition(BACKUP_POLICIES.get(api, namespace, "flaky"), "Ready")
    assert (again["status"], again["reason"]) == ("False", "BackupFailing")
    assert again["lastTransitionTime"] == ready["lastTransitionTime"]  # not rewritten

    run_job_from_cronjob(cluster, namespace, "flaky-backup", "fixed")
    cluster.kubectl("wait", "--for=condition=Ready", "--timeout=60s", "-n", namespace,
                    "backuppolicy/flaky")
    healthy = BACKUP_POLICIES.get(api, namespace, "flaky")
    assert condition(healthy, "Ready")["reason"] == "Scheduled"
    assert healthy["status"]["lastJob"]["name"] == "fixed"


INVALID = [
    ("bad-cron", {"schedule": "every night at 2"}, "spec.schedule"),
    ("bad-tz", {"timeZone": "Mars/Olympus"}, "spec.timeZone"),
    ("neg-history", {"successfulJobsHistoryLimit": -1}, "spec.successfulJobsHistoryLimit"),
    ("bad-duration", {"timeout": "an hour"}, "spec.timeout"),
    ("no-source", {"source": {}}, "spec.source"),
    (
        "env-both",
        {"source": {"command": {"image": "busybox", "command": ["true"], "env": [
            {"name": "A", "value": "x", "secretKeyRef": {"name": "s", "key": "k"}}]}}},
        "spec.source.command.env[0]",
    ),
]


@pytest.mark.parametrize("name, spec, field", INVALID, ids=[i[0] for i in INVALID])
def test_invalid_specs_are_rejected_at_apply_time_with_field_path(
    api, namespace: str, name: str, spec: dict, field: str
) -> None:
    with pytest.raises(ApiException) as raised:
        BACKUP_POLICIES.create(api, namespace, policy_body(name, **spec))
    assert raised.value.status == 422
    assert field in json.loads(raised.value.body)["message"]


def test_missing_required_field_and_long_name_are_rejected(api, namespace: str) -> None:
    body = policy_body("no-schedule")
    del body["spec"]["schedule"]
    with pytest.raises(ApiException) as raised:
        BACKUP_POLICIES.create(api, namespace, body)
    assert raised.value.status == 422 and "spec.schedule: Required value" in raised.value.body

    with pytest.raises(ApiException) as raised:
        BACKUP_POLICIES.create(api, namespace, policy_body("x" * 50))
    assert raised.value.status == 422 and "name must be at most 44 characters" in raised.value.body


def test_missing_secret_stalls_with_event_and_recovers(
    api, namespace: str, running_operator: LocalOperator
) -> None:
    env = [{"name": "TOKEN", "secretKeyRef": {"name": "later", "key": "token"}}]
    body = policy_body(
        "needs-secret",
        source={"command": {"image": "busybox", "command": ["true"], "env": env}},
    )
    BACKUP_POLICIES.create(api, namespace, body)

    def stalled() -> dict | None:
        obj = BACKUP_POLICIES.get(api, namespace, "needs-secret")
        return obj if condition(obj, "Stalled").get("status") == "True" else None

    obj = wait_for(stalled, "Stalled=True for the missing Secret")
    assert condition(obj, "Stalled")["reason"] == "SecretNotFound"
    assert "Secret 'later' not found" in condition(obj, "Stalled")["message"]
    assert condition(obj, "Ready")["status"] == "False"
    assert read_cronjob(api, namespace, "needs-secret-backup") is None

    core = client.CoreV1Api(api)
    event = wait_for(
        lambda: [e for e in core.list_namespaced_event(namespace).items
                 if e.reason == "SecretNotFound" and e.involved_object.name == "needs-secret"],
        "a SecretNotFound Event",
    )[0]
    assert event.type == "Warning" and "later" in event.message
    assert running_operator.alive()

    core.create_namespaced_secret(
        namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="later"), string_data={"token": "t0k"}),
    )
    recovered = BACKUP_POLICIES.wait_ready(api, namespace, "needs-secret", timeout=60)
    assert condition(recovered, "Stalled")["status"] == "False"
    assert read_cronjob(api, namespace, "needs-secret-backup") is not None


def test_spec_changes_rerender_and_deletion_garbage_collects(
    api, namespace: str, running_operator: LocalOperator
) -> None:
    BACKUP_POLICIES.create(api, namespace, policy_body("changing"))
    BACKUP_POLICIES.wait_ready(api, namespace, "changing")
    BACKUP_POLICIES.patch(api, namespace, "changing",
        {"spec": {"schedule": "30 4 * * *", "suspend": True, "timeZone": "Europe/Berlin"}},
    )
    obj = BACKUP_POLICIES.wait_ready(api, namespace, "changing")
    assert condition(obj, "Ready")["reason"] == "Suspended"
    cj = read_cronjob(api, namespace, "changing-backup")
    assert (cj.spec.schedule, cj.spec.suspend, cj.spec.time_zone) == (
        "30 4 * * *", True, "Europe/Berlin",
    )

    BACKUP_POLICIES.delete(api, namespace, "changing")
    wait_for(
        lambda: read_cronjob(api, namespace, "changing-backup") is None,
        "the garbage collector to delete the CronJob",
    )


def owned_cronjobs(api, namespace: str, owner_uid: str) -> list:
    """Every CronJob in the namespace whose owner is the object with `owner_uid`, whatever
    its name or labels: a duplicate need not look like the original."""
    return [c for c in client.BatchV1Api(api).list_namespaced_cron_job(namespace).items
            if any(ref.uid == owner_uid for ref in c.metadata.owner_references or [])]


def test_kill9_then_spec_change_updates_cronjob_without_duplicates(
    api, namespace: str, running_operator: LocalOperator
) -> None:
    policy = BACKUP_POLICIES.create(api, namespace, policy_body("survivor"))
    BACKUP_POLICIES.wait_ready(api, namespace, "survivor")
    [before] = owned_cronjobs(api, namespace, policy["metadata"]["uid"])
    running_operator.kill9()

    BACKUP_POLICIES.patch(api, namespace, "survivor", {"spec": {"schedule": "15 3 * * *"}})
    running_operator.start()
    obj = BACKUP_POLICIES.wait_ready(api, namespace, "survivor")
    assert obj["metadata"]["generation"] == 2
    wait_for_policy_reconciles(running_operator, namespace, "survivor", 2,
                               "more reconciles after the restart")
    [after] = owned_cronjobs(api, namespace, policy["metadata"]["uid"])
    # Updated in place: the same object (a recreated CronJob would forget its last schedule
    # and history), with the new schedule and one owner.
    assert after.metadata.uid == before.metadata.uid
    assert after.metadata.name == obj["status"]["cronJobName"] == "survivor-backup"
    assert after.spec.schedule == "15 3 * * *"
    assert len(after.metadata.owner_references) == 1


def test_operator_identity_is_least_privileged(
    cluster: LocalCluster, operator_kubeconfig: Path, namespace: str
) -> None:
    def can_i(*args: str) -> bool:
        result = cluster.kubectl(
            "auth", "can-i", *args, kubeconfig=operator_kubeconfig, check=False
        )
        return result.stdout.strip() == "yes"

    assert can_i("get", "secrets", "-n", namespace)
    assert can_i("patch", "backuppolicies.runbook.dev", "--subresource=status", "-n", namespace)
    assert can_i("create", "cronjobs.batch", "-n", namespace)
    # A CanaryRollout's `<target>-primary` is a Deployment the operator creates; it deletes none.
    assert can_i("create", "deployments.apps", "-n", namespace)
    # A CanaryRollout's backupBefore patches its BackupPolicy's backup-now annotation.
    assert can_i("patch", "backuppolicies.runbook.dev", "-n", namespace)
    for denied in (
        ("list", "secrets", "--all-namespaces"),
        ("watch", "secrets", "-n", namespace),
        ("create", "secrets", "-n", namespace),
        ("delete", "jobs.batch", "-n", namespace),
        ("update", "jobs.batch", "-n", namespace),
        ("delete", "deployments.apps", "-n", namespace),
        ("update", "deployments.apps", "-n", namespace),
        ("create", "pods", "-n", namespace),
        ("update", "backuppolicies.runbook.dev", "-n", namespace),
        ("delete", "backuppolicies.runbook.dev", "-n", namespace),
        ("create", "backuppolicies.runbook.dev", "-n", namespace),
        ("delete", "pods", "-n", namespace),
        ("create", "clusterrolebindings"),
        ("*", "*"),
    ):
        assert not can_i(*denied), f"operator may {' '.join(denied)}"

    listing = cluster.kubectl(
        "get", "secrets", "-A", kubeconfig=operator_kubeconfig, check=False
    )
    assert listing.returncode != 0 and "Forbidden" in listing.stderr


def test_status_plugin_and_metrics(
    cluster: LocalCluster, api, namespace: str, running_operator: LocalOperator
) -> None:
    BACKUP_POLICIES.create(api, namespace, policy_body("shown"))
    BACKUP_POLICIES.wait_ready(api, namespace, "shown")
    env = cluster.env()
    result = subprocess.run(
        [str(Path(sys.executable).parent / "kubectl-runbook"), "status", "-n", namespace,
         "--fail-unready"],
        env=env, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "shown" in line)
    assert "BackupPolicy" in row and "True" in row and "Scheduled" in row

    listed = cluster.kubectl("get", "runbook", "-n", namespace).stdout.splitlines()
    assert any(line.startswith("backuppolicy.runbook.dev/shown ") and "True" in line
               for line in listed), listed

    metrics = running_operator.metrics()
    assert 'runbook_operator_reconcile_total{kind="BackupPolicy",result="ready"}' in metrics
    assert "runbook_operator_reconcile_duration_seconds_bucket" in metrics


def test_scheduled_run_is_started_by_the_cronjob_controller_and_recorded(
    api, namespace: str, running_operator: LocalOperator
) -> None:
    BACKUP_POLICIES.create(api, namespace, policy_body("every-minute", schedule="* * * * *"))
    BACKUP_POLICIES.wait_ready(api, namespace, "every-minute")
    status = wait_for(
        lambda: (s := BACKUP_POLICIES.get(api, namespace, "every-minute").get("status", {})).get(
            "lastSuccessfulTime") and s.get("lastScheduleTime") and s,
        "a scheduled run to be recorded (the CronJob ticks once a minute)",
        timeout=100,
    )
    assert status["lastJob"]["outcome"] == "Succeeded"
    assert status["lastJob"]["name"].startswith("every-minute-backup-")
    assert status["lastSuccessfulTime"] >= status["lastScheduleTime"]


def test_rpo_breach_with_suspended_cronjob_is_flagged_once_and_cleared_by_a_success(
    cluster: LocalCluster, api, namespace: str, running_operator: LocalOperator
) -> None:
    BACKUP_POLICIES.create(api, namespace, policy_body("rpo", suspend=True, rpo="20s"))
    obj = BACKUP_POLICIES.wait_ready(api, namespace, "rpo")
    assert condition(obj, "RPOMet")["status"] == "True"

    breached = wait_for(
        lambda: (o := BACKUP_POLICIES.get(api, namespace, "rpo"))
        and condition(o, "RPOMet").get("status") == "False" and o,
        "RPOMet=False once 20s pass without a backup (the CronJob is suspended)",
        timeout=60,
    )
    assert condition(breached, "RPOMet")["reason"] == "ObjectiveBreached"
    assert "no successful backup" in condition(breached, "RPOMet")["message"]
    assert breached["status"]["rpoBreachNotifiedAt"]

    def breach_events() -> list:
        return [e for e in client.CoreV1Api(api).list_namespaced_event(namespace).items
                if e.reason == "RPOBreached"]

    wait_for(breach_events, "the RPOBreached Event")
    wait_for_policy_reconciles(running_operator, namespace, "rpo", 5,
                               "five more reconciles of this policy while still in breach")
    assert len(breach_events()) == 1
    assert (breach_events()[0].count or 1) == 1
    still = BACKUP_POLICIES.get(api, namespace, "rpo")
    assert condition(still, "RPOMet")["status"] == "False"
    assert still["status"]["rpoBreachNotifiedAt"] == breached["status"]["rpoBreachNotifiedAt"]

    run_job_from_cronjob(cluster, namespace, "rpo-backup", "rescue")
    recovered = wait_for(
        lambda: (o := BACKUP_POLICIES.get(api, namespace, "rpo"))
        and condition(o, "RPOMet").get("status") == "True" and o,
        "RPOMet=True after a successful backup",
    )
    assert recovered["status"]["lastJob"]["name"] == "rescue"
    series = f'namespace="{namespace}",policy="rpo"'
    wait_for(lambda: f"runbook_backup_rpo_met{{{series}}} 1.0" in running_operator.metrics(),
             "the RPO gauge to show the objective met")
    assert f"runbook_backup_last_success_timestamp_seconds{{{series}}}" in (
        running_operator.metrics())


def test_backup_now_annotation_runs_one_backup_per_token(
    cluster: LocalCluster, api, namespace: str, running_operator: LocalOperator
) -> None:
    BACKUP_POLICIES.create(api, namespace, policy_body("ondemand", suspend=True))
    BACKUP_POLICIES.wait_ready(api, namespace, "ondemand")
    cluster.kubectl("annotate", "-n", namespace, "backuppolicy/ondemand",
                    "runbook.dev/backup-now=before-upgrade")
    status = wait_for(
        lambda: (s := BACKUP_POLICIES.get(api, namespace, "ondemand").get("status", {})).get(
            "lastSuccessfulTime") and s,
        "the on-demand backup to succeed",
    )
    assert status["backupNowToken"] == "before-upgrade"
    assert status["lastJob"]["name"].startswith("ondemand-now-")
    running_operator.kill9()
    running_operator.start()
    wait_for_policy_reconciles(running_operator, namespace, "ondemand", 3,
                               "reconciles of this policy after a restart")
    jobs = client.BatchV1Api(api).list_namespaced_job(
        namespace, label_selector="runbook.dev/backuppolicy=ondemand").items
    assert len(jobs) == 1
