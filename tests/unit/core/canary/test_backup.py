from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from runbook_operator.api.canaryrollout import CanaryRolloutStatus
from runbook_operator.core.backuppolicy.names import BACKUP_NOW_ANNOTATION, on_demand_job_name
from runbook_operator.core.canary.backup import (
    current,
    request_patch,
    seen,
    token,
    waiting,
)
from runbook_operator.core.canary.machine import NewCommand
from runbook_operator.core.canary.status import outcome
from tests.support.canary_world import START, Simulation, rolled_back, spec
from tests.support.canary_world import initialized as with_backup

BACKUP = {"backupPolicyRef": {"name": "db"}, "timeout": "10m"}


def initialized(**overrides: object) -> Simulation:
    return with_backup(backupBefore=BACKUP, **overrides)


def reasons(sim: Simulation) -> list[str]:
    return [e.reason for d in sim.decisions for e in d.events]


def test_the_first_reconcile_promotes_without_a_backup() -> None:
    sim = initialized()
    assert sim.policy.asked == []
    assert sim.status.backup is None


def test_a_new_revision_waits_for_its_backup_before_the_first_weight_shift() -> None:
    sim = initialized()
    sim.target.change(revision="r2")
    sim.run_until(lambda s: s.status.backup is not None and s.status.backup.state == "Requested")
    assert sim.route.writes == [0]
    assert sim.status.phase == "Progressing"
    assert outcome(sim.status).reason == "WaitingForBackup"
    assert "waiting for the backup of BackupPolicy 'db'" in sim.status.message
    sim.run_until(lambda s: s.route.writes[-1] == 5)
    backup = sim.status.backup
    assert backup is not None and backup.state == "Succeeded"
    assert backup.finished_at is not None and backup.requested_at is not None
    assert backup.finished_at > backup.requested_at
    sim.run_until(sim.phase_is("Succeeded"), seconds=5)
    assert sim.route.writes == [0, 5, 30, 55, 80, 100, 0]
    assert sim.policy.asked == [token("checkout", sim.status)]
    assert reasons(sim).count("BackupRequested") == reasons(sim).count("BackupSucceeded") == 1


def test_a_failed_backup_fails_the_rollout_before_any_traffic_moved() -> None:
    sim = initialized()
    sim.policy.outcome = "Failed"
    sim.target.change(revision="r2")
    sim.run_until(rolled_back)
    assert sim.route.writes == [0]
    assert sim.status.rollback is not None and sim.status.rollback.reason == "BackupFailed"
    assert "failed: Job db-now-" in sim.status.rollback.message
    assert sim.status.backup is not None and sim.status.backup.state == "Failed"
    assert sim.status.failed_revision == "r2"
    assert sim.target.replicas == 0
    assert sim.primary is not None and sim.primary.revision == "r1"
    assert "RolledBack" in reasons(sim)


def test_a_backup_that_does_not_end_in_time_fails_the_rollout() -> None:
    sim = initialized()
    sim.policy.outcome = None
    sim.target.change(revision="r2")
    sim.run_until(rolled_back, seconds=30)
    assert sim.route.writes == [0]
    assert sim.status.rollback is not None and sim.status.rollback.reason == "BackupTimeout"
    backup = sim.status.backup
    assert backup is not None and backup.state == "TimedOut"
    assert sim.status.rollback.started_at - backup.since < timedelta(minutes=10, seconds=31)
    assert sim.status.rollback.started_at - backup.since >= timedelta(minutes=10)


def test_the_progress_deadline_does_not_count_the_backup() -> None:
    sim = initialized(progressDeadline="1m")
    sim.policy.takes = 20
    sim.target.change(revision="r2")
    sim.run_until(sim.phase_is("Succeeded"), seconds=5)
    assert sim.status.rollback is None
    assert sim.route.writes == [0, 5, 30, 55, 80, 100, 0]


def test_a_missing_policy_holds_the_rollout_with_a_reason_until_it_appears() -> None:
    sim = initialized()
    sim.policy.exists = False
    sim.target.change(revision="r2")
    for _ in range(10):
        sim.tick(5)
    assert sim.status.backup is not None and sim.status.backup.state == "PolicyNotFound"
    assert outcome(sim.status).reason == "BackupPolicyNotFound"
    assert "BackupPolicy 'db' not found" in sim.status.message
    assert reasons(sim).count("BackupPolicyNotFound") == 1
    assert sim.route.writes == [0] and sim.policy.asked == []
    sim.policy.exists = True
    sim.run_until(sim.phase_is("Succeeded"), seconds=5)
    assert len(sim.policy.asked) == 1


def test_a_request_whose_status_was_lost_asks_again_with_the_same_token() -> None:
    """A restart between the annotation and the status write: the same request again."""
    sim = initialized()
    sim.target.change(revision="r2")
    sim.run_until(lambda s: s.policy.asked != [])
    sim.status = sim.decisions[-2].status
    sim.run_until(sim.phase_is("Succeeded"), seconds=5)
    assert len(sim.policy.asked) == 2 and len(set(sim.policy.asked)) == 1
    assert len(sim.policy.history) == 1


def test_a_newer_revision_asks_for_a_backup_of_its_own() -> None:
    sim = initialized()
    sim.policy.takes = 10
    sim.target.change(revision="r2")
    sim.run_until(lambda s: s.policy.asked != [])
    sim.target.change(revision="r3")
    sim.run_until(sim.phase_is("Succeeded"), seconds=5)
    assert len(set(sim.policy.asked)) == 2
    assert sim.primary is not None and sim.primary.revision == "r3"
    sim.target.change(revision="r4")
    sim.run_until(sim.phase_is("Progressing"))
    sim.run_until(sim.phase_is("Succeeded"), seconds=5)
    assert len(set(sim.policy.asked)) == 3


def test_a_retried_revision_asks_for_a_new_backup() -> None:
    sim = initialized()
    sim.policy.outcome = "Failed"
    sim.target.change(revision="r2")
    sim.run_until(rolled_back)
    sim.policy.outcome = "Succeeded"
    sim.commands.append(NewCommand("retry", "t1"))
    sim.run_until(sim.phase_is("Succeeded"), seconds=5)
    assert len(set(sim.policy.asked)) == 2


def test_a_step_skipped_by_hand_during_the_wait_goes_on_without_the_backup() -> None:
    sim = initialized()
    sim.policy.outcome = None
    sim.target.change(revision="r2")
    sim.run_until(lambda s: s.policy.asked != [])
    sim.commands.append(NewCommand("promote", "t1"))
    sim.run_until(sim.phase_is("Succeeded"), seconds=5)
    assert sim.status.backup is not None and sim.status.backup.state == "Requested"
    assert [d.status.step_index for d in sim.decisions if d.effects.weight == 5][0] == 1
    assert sim.route.writes == [0, 5, 30, 55, 80, 100, 0]
    assert outcome(sim.status).reason == "Promoted"


@settings(max_examples=40, deadline=None)
@given(takes=st.integers(1, 30), outcome_=st.sampled_from(["Succeeded", "Failed", None]),
       missing_for=st.integers(0, 30), seconds=st.sampled_from([1.0, 5.0, 30.0]))
def test_no_traffic_moves_before_a_backup_of_the_revision_succeeded(
        takes: int, outcome_: str | None, missing_for: int, seconds: float) -> None:
    sim = initialized()
    sim.policy.takes, sim.policy.outcome = takes, outcome_  # type: ignore[assignment]
    sim.policy.exists = missing_for == 0
    sim.target.change(revision="r2")
    for tick in range(200):
        if tick == missing_for:
            sim.policy.exists = True
        backup = current(sim.status.backup, sim.status.rollout_started_at)
        if sim.route.writes[-1] > 0:
            assert backup is not None and backup.state == "Succeeded"
        if sim.status.phase in ("Succeeded", "Failed") and tick > 0:
            break
        sim.tick(seconds)
    assert len(set(sim.policy.asked)) <= 1
    if sim.status.rollback is not None:
        assert sim.route.writes == [0]
        assert sim.status.rollback.reason in ("BackupFailed", "BackupTimeout")


def status(**fields: object) -> CanaryRolloutStatus:
    return CanaryRolloutStatus.model_validate(
        {"phase": "Progressing", "revision": "abc", "rolloutStartedAt": START, **fields})


def test_the_token_names_the_rollout_its_revision_and_its_start() -> None:
    assert token("checkout", status()) == "canary-checkout-abc-20260301T120000.000000Z"
    later = status(rolloutStartedAt=START + timedelta(microseconds=1))
    assert token("checkout", later) != token("checkout", status())
    assert token("checkout", status(revision="def")) != token("checkout", status())


def test_the_policys_history_answers_for_the_request_only() -> None:
    asked = token("checkout", status())
    job = on_demand_job_name("db", asked)
    other = {"jobName": "db-now-0123456789", "outcome": "Succeeded"}
    policy = {"metadata": {"name": "db"}, "status": {"history": [other]}}
    assert seen("checkout", status(), None).found is False
    answer = seen("checkout", status(), policy)
    assert answer.found and not answer.acknowledged and answer.outcome is None
    policy["status"]["backupNowToken"] = asked
    assert seen("checkout", status(), policy).acknowledged
    policy["status"]["history"] = [{"jobName": job, "outcome": "Failed",
                                    "reason": "BackupFailed", "message": "exit 1"}, other]
    answer = seen("checkout", status(), policy)
    assert answer.outcome == "Failed"
    assert answer.message == f"Job {job} (BackupFailed: exit 1)"


def test_only_a_rollout_at_its_first_step_with_a_backup_to_wait_for_looks() -> None:
    with_backup = spec(backupBefore=BACKUP)
    assert waiting(with_backup, status())
    assert not waiting(spec(), status())
    assert not waiting(with_backup, status(stepIndex=1))
    assert not waiting(with_backup, status(pausedAt=START))
    assert not waiting(with_backup, status(phase="Succeeded"))
    done = {"policy": "db", "token": "t", "state": "Succeeded", "since": START}
    assert not waiting(with_backup, status(backup=done))
    earlier = {**done, "since": START - timedelta(hours=1)}
    assert waiting(with_backup, status(backup=earlier))


def test_the_request_sets_the_annotation_alone() -> None:
    assert request_patch("t") == {"metadata": {"annotations": {BACKUP_NOW_ANNOTATION: "t"}}}
