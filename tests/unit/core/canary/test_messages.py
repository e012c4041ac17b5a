from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from runbook_operator.api.canaryrollout import CanaryRolloutStatus, Measurement, Rollback
from runbook_operator.api.common import NotificationRecord
from runbook_operator.core.canary import messages
from tests.support.canary_world import START, spec

NOTIFIED = spec(notifications={"channels": ["oncall", "team"],
                               "events": ["Started", "Promoted", "RolledBack"]})


def rolled_back(revision: str = "r2") -> CanaryRolloutStatus:
    return CanaryRolloutStatus(
        phase="Failed", revision=revision, rollout_started_at=START,
        rollback=Rollback(reason="FailureLimit", message="2 failed analysis runs",
                          started_at=START, completed_at=START),
        measurements=[Measurement(time=START, revision=revision, step=1, metric="ok",
                                  value="95", verdict="Fail", message="95 outside [99, ]")])


def sent(status: CanaryRolloutStatus, event: str) -> CanaryRolloutStatus:
    outcome = NotificationRecord(time=START, channel="oncall", fingerprint="x", event="y",
                                 severity="info", result="delivered")
    return messages.record(status, "shop", "checkout", event, [outcome])  # type: ignore[arg-type]


def test_a_rollback_is_told_once_per_revision_with_its_failing_measurements() -> None:
    status = rolled_back()
    due = messages.due(NOTIFIED, "checkout", "shop", status, START)
    assert [d.event for d in due] == ["Started", "RolledBack"]
    rollback = due[1].notification
    assert rollback.severity == "critical" and rollback.event == "failed"
    assert "rolled back" in rollback.title and "FailureLimit" in rollback.summary
    assert "ok = 95" in rollback.details["measurement 1"]
    assert due[1].channels == ["oncall", "team"]
    status = sent(sent(status, "Started"), "RolledBack")
    assert messages.due(NOTIFIED, "checkout", "shop", status, START + timedelta(1)) == []
    again = messages.due(NOTIFIED, "checkout", "shop",
                         status.model_copy(update={"revision": "r3"}), START)
    assert [d.event for d in again] == ["Started", "RolledBack"]


def test_only_the_events_asked_for_and_nothing_without_channels() -> None:
    promoted = CanaryRolloutStatus(phase="Succeeded", revision="r2", rollout_started_at=START)
    only = spec(notifications={"channels": ["oncall"], "events": ["RolledBack"]})
    assert messages.due(only, "checkout", "shop", promoted, START) == []
    assert [d.event for d in messages.due(NOTIFIED, "checkout", "shop", promoted, START)] == [
        "Started", "Promoted"]
    assert messages.due(spec(), "checkout", "shop", rolled_back(), START) == []


def test_initialization_is_not_news() -> None:
    status = CanaryRolloutStatus(phase="Initialized", revision="r1")
    assert messages.due(NOTIFIED, "checkout", "shop", status, START) == []


def delivery(seconds: int, channel: str = "oncall") -> NotificationRecord:
    return NotificationRecord(time=START + timedelta(seconds=seconds), channel=channel,
                              fingerprint="shop/checkout@r2", event="RolledBack",
                              severity="critical", result="delivered")


def test_what_a_tick_sent_is_what_its_status_holds_beyond_the_old_one() -> None:
    old = CanaryRolloutStatus(notifications=[delivery(-5)])
    new = messages.record(old, "shop", "checkout", "RolledBack", [delivery(1), delivery(1, "team")])
    assert [(r.channel, r.time) for r in messages.sent_between(old, new)] == [
        ("oncall", START + timedelta(seconds=1)), ("team", START + timedelta(seconds=1))]
    assert messages.sent_between(new, new) == []


def test_sent_records_are_kept_on_a_fresh_status_of_another_revision() -> None:
    fresh = CanaryRolloutStatus(phase="Progressing", revision="r3",
                                notifications=[delivery(-5)])
    sent = [delivery(1)]
    merged = messages.kept(fresh, sent)
    assert merged.revision == "r3" and merged.phase == "Progressing"
    assert merged.notifications == [delivery(1), delivery(-5)]
    assert messages.kept(merged, sent) is merged


@settings(max_examples=80, deadline=None)
@given(prior=st.integers(0, 8), count=st.integers(1, 4), landed=st.booleans(),
       revision=st.sampled_from(["r2", "r3"]), failed=st.lists(st.booleans(), max_size=4))
def test_records_are_never_lost_or_doubled_whatever_the_interleaving(
        prior: int, count: int, landed: bool, revision: str, failed: list[bool]) -> None:
    """A tick sends `count` notifications; its status write conflicts (someone changed the
    rollout, maybe its revision) or fails although it `landed`; the records are then kept
    on the fresh copy, by attempts that fail first — each after its write landed or not."""
    old = CanaryRolloutStatus(phase="Failed", revision="r2",
                              notifications=[delivery(-i - 1) for i in range(prior)])
    new = messages.record(old, "shop", "checkout", "RolledBack",
                          [delivery(i, f"channel-{i}") for i in range(count)])
    sent = messages.sent_between(old, new)
    stored = old.model_copy(update={"revision": revision, "phase": "Progressing"})
    if landed:
        stored = stored.model_copy(update={"notifications": new.notifications})
    for lands in failed:
        attempt = messages.kept(stored, sent)
        stored = attempt if lands else stored
    stored = messages.kept(stored, sent)
    wire = [r.to_wire() for r in stored.notifications]
    assert len(sent) == count
    assert all(wire.count(r.to_wire()) == 1 for r in sent)
    assert all(r.to_wire() in wire for r in old.notifications)
    assert stored.revision == revision
