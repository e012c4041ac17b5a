"""The status a reconcile or a finished Job writes, and health: Ready says whether backups
work, not only whether the CronJob is rendered."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runbook_operator.api.backuppolicy import BackupPolicySpec, BackupPolicyStatus, JobRecord
from runbook_operator.core.backuppolicy.job_outcome import RunVerdict
from runbook_operator.core.backuppolicy.rpo import evaluate
from runbook_operator.core.backuppolicy.status import (
    BACKUP_FAILING,
    backup_now_request,
    evaluate_rpo,
    invalid_spec_outcome,
    missing_secrets_outcome,
    reconciled_status,
    rpo_was_met,
    scheduled_outcome,
    status_after_run,
    status_after_schedule,
)
from runbook_operator.core.conditions import Outcome, Phase

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SCHEDULED = Outcome(Phase.READY, "Scheduled", "CronJob p-backup runs '@daily' in UTC")
STALLED = Outcome(Phase.STALLED, "SecretNotFound", "Secret 'db' not found")
CRONJOB = {"metadata": {"name": "p-backup"},
           "status": {"lastScheduleTime": "2026-03-01T02:00:00Z"}}


def spec(**overrides) -> BackupPolicySpec:
    body = {"schedule": "@daily", "source": {"command": {"image": "busybox", "command": ["true"]}}}
    return BackupPolicySpec.model_validate({**body, **overrides})


def cond(status: BackupPolicyStatus, type_: str) -> tuple[str, str] | None:
    found = next((c for c in status.conditions if c.type == type_), None)
    return None if found is None else (found.status, found.reason)


def run(outcome: str, name: str, minutes: int = 0, operation: str = "backup") -> RunVerdict:
    return RunVerdict(operation, JobRecord(
        name=name, outcome=outcome, finished_at=NOW + timedelta(minutes=minutes),
        reason="DumpFailed" if outcome == "Failed" else "Succeeded",
        message="pg_dump: connection\nrefused" if outcome == "Failed" else ""))


def test_reconcile_writes_conditions_generation_and_schedule() -> None:
    new = reconciled_status(BackupPolicyStatus(), SCHEDULED, 3, CRONJOB, NOW)
    assert new.observed_generation == 3 and new.cron_job_name == "p-backup"
    assert new.last_schedule_time == datetime(2026, 3, 1, 2, tzinfo=UTC)
    assert cond(new, "Ready") == ("True", "Scheduled")
    assert cond(new, "Stalled") == ("False", "Progressing")
    assert reconciled_status(new, SCHEDULED, 3, CRONJOB, NOW + timedelta(hours=1)) == new


def test_reconcile_keeps_job_history_and_a_newer_schedule() -> None:
    old = BackupPolicyStatus(last_successful_time=NOW, last_schedule_time=NOW)
    new = reconciled_status(old, STALLED, 4, CRONJOB, NOW)
    assert new.last_successful_time == NOW and new.last_schedule_time == NOW
    assert cond(new, "Stalled") == ("True", "SecretNotFound")


def test_reconcile_without_rpo_drops_its_condition_and_deadline() -> None:
    breach = evaluate(timedelta(minutes=5), None, NOW - timedelta(hours=1), None, NOW)
    breached = reconciled_status(BackupPolicyStatus(), SCHEDULED, 1, None, NOW, rpo=breach)
    assert cond(breached, "RPOMet") == ("False", "ObjectiveBreached")
    assert breached.rpo_breach_notified_at == NOW
    assert breached.rpo_deadline == datetime(2026, 3, 1, 11, 5, tzinfo=UTC)
    assert rpo_was_met(breached) is False
    cleared = reconciled_status(breached, SCHEDULED, 2, None, NOW)
    assert cond(cleared, "RPOMet") is None and cleared.rpo_deadline is None
    assert rpo_was_met(cleared) is None


def test_reconcile_records_the_backup_now_token() -> None:
    assert reconciled_status(BackupPolicyStatus(), SCHEDULED, 1, None, NOW,
                             backup_now_token="t-1").backup_now_token == "t-1"


def test_a_failed_backup_makes_a_ready_policy_backup_failing_at_once() -> None:
    ready = reconciled_status(BackupPolicyStatus(), SCHEDULED, 1, CRONJOB, NOW)
    failed = status_after_run(ready, run("Failed", "nightly-1", 5), [], NOW + timedelta(minutes=5))
    assert cond(failed, "Ready") == ("False", BACKUP_FAILING)
    assert cond(failed, "Stalled") == ("False", "Progressing")  # the next run may succeed
    assert cond(failed, "Reconciling") == ("False", "Idle")
    ready_condition = next(c for c in failed.conditions if c.type == "Ready")
    assert ready_condition.message == (
        "the newest backup run, Job nightly-1, failed at 2026-03-01T12:05:00Z: DumpFailed: "
        "pg_dump: connection refused")
    assert ready_condition.last_transition_time == NOW + timedelta(minutes=5)


def test_reconciles_keep_a_failing_policy_failing_without_rewriting_it() -> None:
    ready = reconciled_status(BackupPolicyStatus(), SCHEDULED, 1, CRONJOB, NOW)
    failed = status_after_run(ready, run("Failed", "nightly-1"), [], NOW)
    later = reconciled_status(failed, SCHEDULED, 1, CRONJOB, NOW + timedelta(hours=1))
    assert later == failed


def test_a_success_lets_the_next_reconcile_make_it_ready_again() -> None:
    ready = reconciled_status(BackupPolicyStatus(), SCHEDULED, 1, CRONJOB, NOW)
    failed = status_after_run(ready, run("Failed", "nightly-1"), [], NOW)
    fixed = status_after_run(failed, run("Succeeded", "nightly-2", 60), [], NOW)
    assert cond(fixed, "Ready") == ("False", BACKUP_FAILING)  # the reconcile it triggers decides
    healthy = reconciled_status(fixed, SCHEDULED, 1, CRONJOB, NOW + timedelta(hours=1))
    assert cond(healthy, "Ready") == ("True", "Scheduled")


def test_a_spec_problem_keeps_its_own_reason_over_a_failing_backup() -> None:
    failed = status_after_run(BackupPolicyStatus(), run("Failed", "nightly-1"), [], NOW)
    stalled = reconciled_status(failed, STALLED, 2, None, NOW)
    assert cond(stalled, "Ready") == ("False", "SecretNotFound")
    assert cond(stalled, "Stalled") == ("True", "SecretNotFound")
    assert status_after_run(stalled, run("Failed", "nightly-2", 5), [], NOW).conditions == (
        stalled.conditions)


def test_a_failed_restore_test_does_not_touch_ready() -> None:
    ready = reconciled_status(BackupPolicyStatus(), SCHEDULED, 1, CRONJOB, NOW)
    tested = status_after_run(ready, run("Failed", "restore-1", operation="restore-test"), [],
                              NOW)
    assert cond(tested, "Ready") == ("True", "Scheduled")
    assert cond(tested, "Verified") == ("False", "RestoreFailed")


runs = st.lists(st.tuples(st.sampled_from(["Succeeded", "Failed"]), st.integers(0, 5),
                          st.integers(0, 600)), max_size=8)


@given(runs, st.randoms())
def test_after_any_runs_ready_says_whether_the_newest_backup_succeeded(items, rnd) -> None:
    """Whatever order the Job events arrive in, the reconcile that follows leaves Ready True
    exactly when the newest run (the last Job by finish time) succeeded."""
    verdicts = [run(outcome, f"job-{i}", minutes) for outcome, i, minutes in items]
    rnd.shuffle(verdicts)
    status = reconciled_status(BackupPolicyStatus(), SCHEDULED, 1, CRONJOB, NOW)
    for verdict in verdicts:
        status = status_after_run(status, verdict, [], NOW)
    status = reconciled_status(status, SCHEDULED, 1, CRONJOB, NOW)
    newest = max((v.record for v in verdicts),
                 key=lambda r: (r.finished_at, r.name, r.outcome), default=None)
    healthy = newest is None or newest.outcome == "Succeeded"
    assert cond(status, "Ready") == (("True", "Scheduled") if healthy
                                     else ("False", BACKUP_FAILING))


def test_schedule_times_never_go_back() -> None:
    earlier, later = NOW - timedelta(hours=1), NOW
    status = status_after_schedule(BackupPolicyStatus(), later)
    assert status.last_schedule_time == later
    assert status_after_schedule(status, earlier) == status


def test_outcomes() -> None:
    assert invalid_spec_outcome([]) is None
    assert invalid_spec_outcome(["a", "b"]) == Outcome(Phase.STALLED, "InvalidSpec", "a; b")
    assert missing_secrets_outcome([]) is None
    assert missing_secrets_outcome(["Secret 'x' not found"]).reason == "SecretNotFound"
    assert scheduled_outcome(spec(), "p-backup").reason == "Scheduled"
    assert scheduled_outcome(spec(suspend=True), "p-backup") == Outcome(
        Phase.READY, "Suspended", "CronJob p-backup is suspended")


@pytest.mark.parametrize("annotations, handled, waiting", [
    ({}, None, None),
    ({"runbook.dev/backup-now": "t-1"}, None, "t-1"),
    ({"runbook.dev/backup-now": "t-1"}, "t-1", None),
    ({"runbook.dev/backup-now": "t-2"}, "t-1", "t-2"),
])
def test_backup_now_request(annotations, handled, waiting) -> None:
    body = {"metadata": {"annotations": annotations}, "status": {"backupNowToken": handled}}
    assert backup_now_request(body) == waiting


def test_rpo_is_evaluated_only_for_a_valid_spec_that_sets_one() -> None:
    created = NOW - timedelta(hours=2)
    assert evaluate_rpo(None, BackupPolicyStatus(), created, NOW) is None
    assert evaluate_rpo(spec(), BackupPolicyStatus(), created, NOW) is None
    rpo = evaluate_rpo(spec(rpo="1h"), BackupPolicyStatus(), created, NOW)
    assert rpo is not None and not rpo.met and rpo.notify
