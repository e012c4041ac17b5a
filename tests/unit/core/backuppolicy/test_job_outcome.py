"""What finished Jobs mean (the runner's result decides), and how they fold into status."""

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from runbook_operator.api.backuppolicy import BackupPolicyStatus, JobRecord
from runbook_operator.core.backuppolicy.job_outcome import (
    finished_job,
    judge_run,
    record_job,
    record_run,
    runner_message,
)
from runbook_operator.core.backuppolicy.names import OPERATION_LABEL, RUNNER_LABEL
from runbook_operator.runner.results import BackupResult, RestoreResult


def job(outcome: str, operation: str = "backup", name: str = "orders-backup-1") -> dict:
    kind = "Complete" if outcome == "ok" else "Failed"
    status = {"conditions": [{"type": kind, "status": "True", "reason": "BackoffLimitExceeded"
                              if kind == "Failed" else "", "lastTransitionTime":
                              "2026-05-01T02:01:00Z"}]}
    if kind == "Complete":
        status["completionTime"] = "2026-05-01T02:01:00Z"
    labels = {RUNNER_LABEL: "true", OPERATION_LABEL: operation}
    return {"metadata": {"name": name, "labels": labels}, "status": status}


def result(ok: bool = True, **extra) -> str:
    fields = dict(ok=ok, reason="Succeeded" if ok else "DumpFailed",
                  message="" if ok else "pg_dump: connection refused",
                  startedAt="2026-05-01T02:00:00Z", finishedAt="2026-05-01T02:00:55Z",
                  durationSeconds=55.0, location="s3://backups/prod/orders/x/", key="orders/x",
                  sizeBytes=1234, sha256="ab" * 32, verified=True)
    fields.update(extra)
    return BackupResult.model_validate(fields).to_json()


def test_success_needs_a_valid_successful_result() -> None:
    verdict = judge_run(job("ok"), result())
    assert verdict.record.outcome == "Succeeded" and verdict.backup.sha256 == "ab" * 32
    no_result = judge_run(job("ok"), None)
    assert (no_result.record.outcome, no_result.record.reason) == ("Failed", "NoResult")
    garbage = judge_run(job("ok"), "Killed")
    assert garbage.record.reason == "NoResult"
    says_failed = judge_run(job("ok"), result(ok=False))
    assert (says_failed.record.outcome, says_failed.record.reason) == ("Failed", "DumpFailed")


def test_failed_job_takes_the_runner_reason_when_given() -> None:
    with_result = judge_run(job("fail"), result(ok=False))
    assert with_result.record.reason == "DumpFailed"
    assert "connection refused" in with_result.record.message
    without = judge_run(job("fail"), None)
    assert without.record.reason == "BackoffLimitExceeded"


def test_record_run_history_last_backup_and_idempotence() -> None:
    status = BackupPolicyStatus()
    ok = judge_run(job("ok", name="j1"), result())
    failed = judge_run(job("fail", name="j2"), result(ok=False))
    once = record_run(record_run(status, ok), failed)
    twice = record_run(record_run(once, failed), ok)
    assert once == twice
    assert [a.job_name for a in once.history] == ["j2", "j1"]
    assert once.last_backup.job_name == "j1" and once.last_backup.verified
    assert once.last_failure_time is not None and once.last_successful_time is not None


def test_restore_test_sets_verified_without_touching_backup_times() -> None:
    restored = RestoreResult.model_validate(dict(
        ok=True, reason="Succeeded", startedAt="2026-05-01T06:00:00Z",
        finishedAt="2026-05-01T06:00:42Z", durationSeconds=42.0, key="orders/x", verified=True,
    )).to_json()
    verdict = judge_run(job("ok", operation="restore-test"), restored)
    status = record_run(BackupPolicyStatus(), verdict)
    assert status.last_verified_backup.duration_seconds == 42.0
    assert status.last_successful_time is None and status.history == []
    verified = next(c for c in status.conditions if c.type == "Verified")
    assert verified.status == "True" and "orders/x" in verified.message
    failed = judge_run(job("fail", operation="restore-test", name="r2"), None)
    status = record_run(status, failed)
    assert next(c for c in status.conditions if c.type == "Verified").status == "False"


def test_on_demand_restores_are_neither_backups_nor_restore_tests() -> None:
    assert judge_run(job("ok", operation="restore"), result()) is None


def test_the_encryption_key_id_is_recorded_with_the_backup() -> None:
    verdict = judge_run(job("ok"), result(keyId="0123456789abcdef"))
    assert verdict.backup.key_id == "0123456789abcdef"
    status = record_run(BackupPolicyStatus(), verdict)
    assert status.last_backup.key_id == "0123456789abcdef"
    assert status.history[0].key_id == "0123456789abcdef"
    assert judge_run(job("ok"), result()).backup.key_id is None  # not encrypted


def test_a_command_job_counts_by_its_job_outcome() -> None:
    command = job("ok")
    command["metadata"]["labels"][RUNNER_LABEL] = "false"
    verdict = judge_run(command, None)
    assert verdict.record.outcome == "Succeeded" and verdict.backup is None


def pod(finished: str, message: str | None, container: str = "runner") -> dict:
    terminated = {"finishedAt": finished, **({"message": message} if message else {})}
    return {"status": {"containerStatuses": [
        {"name": container, "state": {"terminated": terminated}}]}}


def test_runner_message_takes_the_newest_runner_container() -> None:
    pods = [pod("2026-05-01T06:00:02Z", "second"), pod("2026-05-01T06:00:01Z", "first"),
            pod("2026-05-01T06:00:03Z", "sidecar", container="other"),
            {"status": {"containerStatuses": [{"name": "runner", "state": {"running": {}}}]}},
            {"status": {}}]
    assert runner_message(pods) == "second"
    assert runner_message([]) is None
    assert runner_message([pod("2026-05-01T06:00:02Z", None)]) is None


def plain_job(name: str, kind: str, when: str, reason: str = "") -> dict:
    condition = {"type": kind, "status": "True", "lastTransitionTime": when, "reason": reason}
    status = {"conditions": [condition]}
    if kind == "Complete":
        status["completionTime"] = when
    return {"metadata": {"name": name}, "status": status}


def test_finished_job_outcomes() -> None:
    assert finished_job({"metadata": {"name": "j"}, "status": {"active": 1}}) is None
    ok = finished_job(plain_job("j1", "Complete", "2026-01-01T02:00:05Z"))
    assert ok.outcome == "Succeeded" and ok.finished_at == datetime(2026, 1, 1, 2, 0, 5, tzinfo=UTC)
    failed = finished_job(plain_job("j2", "Failed", "2026-01-01T03:00:00Z", "DeadlineExceeded"))
    assert failed.outcome == "Failed" and failed.reason == "DeadlineExceeded"


def test_suspended_or_failure_target_conditions_are_not_completion() -> None:
    body = {"metadata": {"name": "j"}, "status": {"conditions": [
        {"type": "FailureTarget", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
        {"type": "Complete", "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"},
    ]}}
    assert finished_job(body) is None


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
        status = record_job(status, record)
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
