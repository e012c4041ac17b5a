"""core.incident.lifecycle: each change people make to an Incident's spec becomes one timeline
entry and the status fields it implies (phase, opening, resolution, reopening, acknowledgement,
severity, commander, notes, MTTA, MTTR), however often it is observed."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from runbook_operator.api.incident import (
    Acknowledgement,
    EscalationState,
    IncidentSpec,
    IncidentStatus,
    TimelineEntry,
)
from runbook_operator.core.incident.lifecycle import (
    effective_acknowledgement,
    observe,
    resolution,
    seconds_between,
)

from tests.support.incident_core import MIN, SEC, T0, ack, spec


def observed_twice(incident: IncidentSpec, status: IncidentStatus, now: datetime):
    """Observe, then observe the result again: the second adds nothing."""
    first = observe(incident, status, T0, now)
    second = observe(incident, first.status, T0, now + MIN)
    assert second.entries == () and second.status == first.status
    return first


def test_opening_is_recorded_once_at_creation() -> None:
    first = observed_twice(spec(), IncidentStatus(), T0 + SEC)
    status = first.status
    assert (status.opened_at, status.phase, status.severity) == (T0, "Open", "P1")
    assert [(e.event, e.time, e.message) for e in first.entries] == [
        ("Opened", T0, "opened by hand: [P1] Checkout returns 500")]


def test_a_source_named_opening_is_kept_and_not_told_twice() -> None:
    source = {"kind": "AlertRule", "name": "checkout-errors", "fingerprint": "3f"}
    entry = observe(spec(source=source), IncidentStatus(), T0, T0).entries[0]
    assert entry.message == "opened by AlertRule checkout-errors: [P1] Checkout returns 500"
    by_source = IncidentStatus(opened_at=T0 - MIN, timeline=[
        TimelineEntry(time=T0 - MIN, event="Opened", message="opened by Alertmanager")])
    seen = observe(spec(source=source), by_source, T0, T0 + SEC)
    assert seen.entries == () and seen.status.opened_at == T0 - MIN
    both = observe(spec(), IncidentStatus(timeline=by_source.timeline), T0, T0)
    assert [e.event for e in both.entries] == []  # the opener told it


def test_status_changes_severity_commander_and_notes_each_become_one_entry() -> None:
    status = observe(spec(), IncidentStatus(), T0, T0).status
    notes = [{"at": (T0 + MIN).isoformat(), "by": "alice", "text": "looking"},
             {"at": (T0 + 2 * MIN).isoformat(), "by": "bob", "text": "x" * 4096}]
    changed = spec(status="Investigating", severity="P0", commander="carol", notes=notes)
    seen = observed_twice(changed, status, T0 + 3 * MIN)
    assert [(e.event, e.by, e.message[:30]) for e in seen.entries] == [
        ("SeverityChanged", None, "severity P1 → P0"),
        ("Assigned", None, "commander: carol"),
        ("NoteAdded", "alice", "looking"),
        ("NoteAdded", "bob", "x" * 30),
        ("StatusChanged", None, "Open → Investigating"),
    ]
    assert len(seen.entries[3].message) == 1024
    assert (seen.status.notes_recorded, seen.status.commander) == (2, "carol")
    handed = observe(changed.model_copy(update={"commander": "dave"}), seen.status, T0, T0)
    assert [e.message for e in handed.entries] == ["commander: dave (was carol)"]
    dropped = observe(changed.model_copy(update={"commander": None}), seen.status, T0, T0)
    assert [e.message for e in dropped.entries] == ["no commander (was carol)"]


def test_notes_removed_by_hand_are_not_told_again_when_new_ones_come() -> None:
    notes = [{"at": T0.isoformat(), "by": "a", "text": f"n{i}"} for i in range(3)]
    status = observe(spec(notes=notes), IncidentStatus(), T0, T0).status
    fewer = observe(spec(notes=notes[:1]), status, T0, T0)
    assert fewer.entries[1:] == () and fewer.status.notes_recorded == 1
    more = observe(spec(notes=[*notes[:1], {"at": T0.isoformat(), "by": "a", "text": "new"}]),
                   fewer.status, T0, T0)
    assert [e.message for e in more.entries] == ["new"]


def test_resolution_sets_resolved_at_and_mttr_and_reopening_clears_them() -> None:
    status = observe(spec(), IncidentStatus(), T0, T0).status
    resolved = observed_twice(spec(status="Resolved"), status, T0 + 90 * MIN)
    assert resolved.resolved_now
    assert (resolved.status.resolved_at, resolved.status.mttr_seconds) == (T0 + 90 * MIN, 5400)
    assert [(e.event, e.message) for e in resolved.entries] == [("Resolved", "resolved")]
    reopened = observed_twice(spec(status="Identified"), resolved.status, T0 + 2 * 60 * MIN)
    assert reopened.reopened and not reopened.resolved_now
    assert (reopened.status.phase, reopened.status.resolved_at,
            reopened.status.mttr_seconds) == ("Identified", None, None)
    assert [e.message for e in reopened.entries] == ["reopened: Identified"]


def test_an_incident_resolved_at_first_sight_is_resolved_then() -> None:
    seen = observe(spec(status="Resolved"), IncidentStatus(), T0, T0 + MIN)
    assert [e.event for e in seen.entries] == ["Opened", "Resolved"]
    assert seen.status.mttr_seconds == 60


def test_a_recovered_source_resolves_only_when_asked() -> None:
    status = observe(spec(), IncidentStatus(), T0, T0).status
    recovered = status.model_copy(update={"source_recovered_at": T0 + 10 * MIN})
    assert observe(spec(), recovered, T0, T0 + 20 * MIN).status.phase == "Open"
    auto = observe(spec(resolveWhenSourceRecovers=True), recovered, T0, T0 + 20 * MIN)
    assert auto.status.phase == "Resolved" and auto.status.resolved_at == T0 + 10 * MIN
    assert [(e.time, e.message) for e in auto.entries] == [
        (T0 + 10 * MIN, "resolved: the source recovered")]
    assert resolution(spec(status="Resolved"), recovered, T0 + MIN) == T0 + MIN


def test_acknowledgement_sets_mtta_once_and_is_told_per_new_acknowledgement() -> None:
    status = observe(spec(), IncidentStatus(), T0, T0).status
    first = observed_twice(spec(acknowledgement=ack("alice", T0 + 4 * MIN)), status,
                           T0 + 5 * MIN)
    assert first.acknowledged_now and first.status.mtta_seconds == 240
    assert [(e.event, e.by, e.time) for e in first.entries] == [
        ("Acknowledged", "alice", T0 + 4 * MIN)]
    again = observe(spec(acknowledgement=ack("bob", T0 + 9 * MIN)), first.status, T0,
                    T0 + 10 * MIN)
    assert again.acknowledged_now and again.status.acknowledged_by == "bob"
    assert again.status.mtta_seconds == 240  # the first acknowledgement's


def test_a_withdrawn_acknowledgement_is_cleared_and_named() -> None:
    status = observe(spec(acknowledgement=ack("alice", T0)), IncidentStatus(), T0, T0).status
    withdrawn = observe(spec(), status, T0, T0 + MIN)
    assert withdrawn.withdrawn_by == "alice"
    assert (withdrawn.status.acknowledged_by, withdrawn.status.acknowledged_at) == (None, None)
    assert withdrawn.status.mtta_seconds == 0


def test_an_expired_acknowledgement_no_longer_counts_and_a_new_one_does() -> None:
    old = Acknowledgement(by="alice", at=T0)
    status = IncidentStatus(escalation=EscalationState(started_at=T0,
                                                       expired_acknowledgement=old))
    assert effective_acknowledgement(spec(acknowledgement=ack("alice", T0)), status) is None
    fresh = effective_acknowledgement(spec(acknowledgement=ack("alice", T0 + MIN)), status)
    assert fresh == Acknowledgement(by="alice", at=T0 + MIN)


def test_an_acknowledgement_stamped_by_a_clock_behind_counts_zero() -> None:
    assert seconds_between(T0, T0 - MIN) == 0.0
    seen = observe(spec(acknowledgement=ack("alice", T0 - MIN)), IncidentStatus(), T0, T0)
    assert seen.status.mtta_seconds == 0.0


# --- properties ------------------------------------------------------------------------------

changes = st.fixed_dictionaries({}, optional={
    "status": st.sampled_from(["Open", "Investigating", "Identified", "Monitoring", "Resolved"]),
    "severity": st.sampled_from(["P0", "P1", "P2", "P3"]),
    "commander": st.none() | st.sampled_from(["alice", "bob"]),
    "notes": st.integers(0, 4),
    "acknowledgement": st.none() | st.sampled_from(["alice", "bob"]),
})


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(changes, min_size=1, max_size=8))
def test_every_entry_is_told_once_whatever_the_order_of_changes(steps) -> None:
    status, notes, told = IncidentStatus(), [], []
    for minute, change in enumerate(steps, start=1):
        now = T0 + minute * MIN
        notes += [{"at": now.isoformat(), "by": "a", "text": f"n{len(notes) + i}"}
                  for i in range(change.get("notes", 0))]
        fields = {k: v for k, v in change.items() if k not in ("notes", "acknowledgement")}
        if change.get("acknowledgement"):
            fields["acknowledgement"] = ack(change["acknowledgement"], now)
        seen = observed_twice(spec(notes=notes, **fields), status, now)
        status = seen.status
        told += seen.entries
    assert [e.message for e in told if e.event == "NoteAdded"] == [n["text"] for n in notes]
    assert [e.event for e in told].count("Opened") == 1
    assert status.notes_recorded == len(notes)
    resolved = [e for e in told if e.event == "Resolved"]
    reopened = [e for e in told if e.event == "Reopened"]
    assert len(resolved) - len(reopened) == (1 if status.phase == "Resolved" else 0)
    if status.phase == "Resolved":
        assert status.mttr_seconds == (status.resolved_at - T0).total_seconds()
