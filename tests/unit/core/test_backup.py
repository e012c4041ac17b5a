from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from runbook_operator.api.backuppolicy import BackupPolicySpec, BackupPolicyStatus, JobRecord
from runbook_operator.api.common import SecretKeyRef
from runbook_operator.core import backup

OWNER = backup.Owner(name="nightly", namespace="db", uid="1234")
IMAGE = "registry.example/runbook-operator:1.2.3"


def spec(**overrides) -> BackupPolicySpec:
    body = {
        "schedule": "0 2 * * *",
        "timeZone": "Europe/Berlin",
        "source": {
            "command": {
                "image": "postgres:16",
                "command": ["sh", "-c", "pg_dump > /dev/null"],
                "env": [
                    {"name": "PGHOST", "value": "db"},
                    {"name": "PGPASSWORD", "secretKeyRef": {"name": "db-cred", "key": "password"}},
                ],
            }
        },
    }
    body.update(overrides)
    return BackupPolicySpec.model_validate(body)


def test_cronjob_carries_schedule_policy_and_identity() -> None:
    cronjob = backup.render_cronjob(spec(), OWNER, IMAGE)
    assert cronjob["metadata"]["name"] == "nightly-backup"
    assert cronjob["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "runbook-operator"
    assert cronjob["metadata"]["labels"]["runbook.dev/backuppolicy"] == "nightly"
    owner = cronjob["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("BackupPolicy", "1234", True)
    s = cronjob["spec"]
    assert s["schedule"] == "0 2 * * *" and s["timeZone"] == "Europe/Berlin"
    assert s["concurrencyPolicy"] == "Forbid"
    assert s["startingDeadlineSeconds"] == 300
    assert (s["successfulJobsHistoryLimit"], s["failedJobsHistoryLimit"]) == (3, 3)
    assert s["suspend"] is False
    job = s["jobTemplate"]["spec"]
    assert job["activeDeadlineSeconds"] == 3600 and job["backoffLimit"] == 1
    assert s["jobTemplate"]["metadata"]["labels"]["runbook.dev/backuppolicy"] == "nightly"
    assert job["template"]["spec"]["restartPolicy"] == "Never"


def test_secrets_are_referenced_never_inlined() -> None:
    container = backup.render_cronjob(spec(), OWNER, IMAGE)["spec"]["jobTemplate"]["spec"]["template"][
        "spec"
    ]["containers"][0]
    by_name = {e["name"]: e for e in container["env"]}
    assert by_name["PGPASSWORD"] == {
        "name": "PGPASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "db-cred", "key": "password"}},
    }
    assert by_name["PGHOST"] == {"name": "PGHOST", "value": "db"}


def test_pod_runs_restricted() -> None:
    pod = backup.render_cronjob(spec(), OWNER, IMAGE)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    container = pod["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}


def test_spec_fields_flow_into_cronjob() -> None:
    rendered = backup.render_cronjob(
        spec(
            suspend=True,
            timeout="90m",
            startingDeadline="30s",
            backoffLimit=0,
            successfulJobsHistoryLimit=1,
            failedJobsHistoryLimit=5,
            serviceAccountName="backup-sa",
            resources={"limits": {"memory": "256Mi"}},
        ),
        OWNER,
        IMAGE,
    )
    s = rendered["spec"]
    job = s["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    assert s["suspend"] is True and s["startingDeadlineSeconds"] == 30
    assert (s["successfulJobsHistoryLimit"], s["failedJobsHistoryLimit"]) == (1, 5)
    assert job["activeDeadlineSeconds"] == 5400 and job["backoffLimit"] == 0
    assert pod["serviceAccountName"] == "backup-sa" and pod["automountServiceAccountToken"]
    assert pod["containers"][0]["resources"] == {"limits": {"memory": "256Mi"}}


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"schedule": "61 * * * *"}, "schedule"),
        ({"timeZone": "Mars/Olympus"}, "time zone"),
        ({"successfulJobsHistoryLimit": -1}, "successfulJobsHistoryLimit"),
        ({"source": {}}, "exactly one source"),
        ({"timeout": "soon"}, "timeout"),
    ],
)
def test_invalid_specs_are_rejected_by_the_models(overrides, fragment) -> None:
    with pytest.raises(ValidationError, match=fragment):
        spec(**overrides)


def test_env_needs_exactly_one_value_source() -> None:
    command = {"image": "x", "command": ["true"], "env": [{"name": "A"}]}
    with pytest.raises(ValidationError, match="exactly one of value and secretKeyRef"):
        BackupPolicySpec.model_validate({"schedule": "@daily", "source": {"command": command}})


def test_semantic_problems() -> None:
    assert backup.semantic_problems(spec()) == []
    assert backup.semantic_problems(spec(timeout="0s")) == ["timeout must be at least 1s"]


def test_missing_secrets_reports_secret_and_key() -> None:
    refs = [SecretKeyRef(name="a", key="k"), SecretKeyRef(name="b", key="k"),
            SecretKeyRef(name="c", key="k")]
    found = {"a": {"k"}, "b": None, "c": {"other"}}
    assert backup.missing_secrets(refs, found) == [
        "Secret 'b' not found",
        "Secret 'c' has no key 'k'",
    ]


def job(name: str, kind: str, when: str, reason: str = "") -> dict:
    condition = {"type": kind, "status": "True", "lastTransitionTime": when, "reason": reason}
    status = {"conditions": [condition]}
    if kind == "Complete":
        status["completionTime"] = when
    return {"metadata": {"name": name}, "status": status}


def test_finished_job_outcomes() -> None:
    assert backup.finished_job({"metadata": {"name": "j"}, "status": {"active": 1}}) is None
    ok = backup.finished_job(job("j1", "Complete", "2026-01-01T02:00:05Z"))
    assert ok.outcome == "Succeeded" and ok.finished_at == datetime(2026, 1, 1, 2, 0, 5, tzinfo=UTC)
    failed = backup.finished_job(job("j2", "Failed", "2026-01-01T03:00:00Z", "DeadlineExceeded"))
    assert failed.outcome == "Failed" and failed.reason == "DeadlineExceeded"


def test_suspended_or_failure_target_conditions_are_not_completion() -> None:
    body = {"metadata": {"name": "j"}, "status": {"conditions": [
        {"type": "FailureTarget", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
        {"type": "Complete", "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"},
    ]}}
    assert backup.finished_job(body) is None


T0 = datetime(2026, 1, 1, tzinfo=UTC)
records = st.builds(
    lambda i, minutes, ok: JobRecord(
        name=f"job-{i}",
        outcome="Succeeded" if ok else "Failed",
        finished_at=T0 + timedelta(minutes=minutes),
    ),
    st.integers(0, 5),
    st.integers(0, 10_000),
    st.booleans(),
)


def fold(items) -> BackupPolicyStatus:
    status = BackupPolicyStatus()
    for record in items:
        status = backup.record_job(status, record)
    return status


@given(st.lists(records, max_size=12), st.randoms())
def test_recording_jobs_is_order_independent_and_idempotent(items, rnd) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)
    assert fold(items) == fold(shuffled) == fold(items + items)


@given(st.lists(records, min_size=1, max_size=12))
def test_recorded_times_are_the_latest_of_each_outcome(items) -> None:
    status = fold(items)
    successes = [r.finished_at for r in items if r.outcome == "Succeeded"]
    failures = [r.finished_at for r in items if r.outcome == "Failed"]
    assert status.last_successful_time == (max(successes) if successes else None)
    assert status.last_failure_time == (max(failures) if failures else None)
    assert status.last_job.finished_at == max(r.finished_at for r in items)
