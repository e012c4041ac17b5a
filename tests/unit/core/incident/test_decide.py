"""core.incident.decide: one reconcile's status, deliveries, Events and postmortem; `finish`
counts a step as paged only once all its channels were tried; `merged_onto` keeps what another
writer put in status meanwhile; an incident without a usable policy says so once."""

from __future__ import annotations

from runbook_operator.api.incident import IncidentAlert, TimelineEntry
from runbook_operator.core.incident.decide import (
    Incident,
    PolicyProblem,
    decide,
    finish,
    merged_onto,
    next_due,
    still_pages,
)
from runbook_operator.core.incident.records import with_timeline

from tests.support.incident_core import (
    MIN,
    REF,
    T0,
    Run,
    ack,
    delivered,
    events,
    messages,
    policy,
    spec,
)

NO_POLICY = PolicyProblem("NoEscalationPolicy",
                          "spec.escalationPolicyRef is not set: nobody is paged")


def conditions(status) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def test_an_escalating_incident_is_ready_unacknowledged_and_unresolved() -> None:
    run = Run(policy())
    decision = run.at(T0, spec())
    assert conditions(run.status) == {
        "Ready": ("True", "Escalating"), "Reconciling": ("False", "Idle"),
        "Stalled": ("False", "Progressing"), "Acknowledged": ("False", "NotAcknowledged"),
        "Resolved": ("False", "Unresolved")}
    ready = next(c for c in run.status.conditions if c.type == "Ready")
    assert ready.message == "L1 paged; next level at 2026-03-01T12:30:00Z"
    assert run.status.observed_generation == 1
    assert (run.status.timeline_ref, run.status.postmortem_ref) == ("checkout-timeline", None)
    assert decision.has_pages and next_due(run.status) == T0 + 30 * MIN
    assert [(e.type, e.reason) for e in finish(decision, [])[1]] == []


def test_acknowledged_and_resolved_show_in_conditions_events_and_metrics_fields() -> None:
    run = Run(policy(ackTimeout="1h"))
    run.at(T0, spec())
    decision = run.at(T0 + 5 * MIN, spec(acknowledgement=ack("alice", T0 + 4 * MIN)))
    assert conditions(run.status)["Acknowledged"] == ("True", "Acknowledged")
    assert next(c for c in run.status.conditions if c.type == "Ready").message == (
        "acknowledged by alice; re-triggers at 2026-03-01T13:04:00Z unless resolved")
    assert [(e.type, e.reason) for e in decision.events] == [("Normal", "Acknowledged")]
    assert (decision.mtta_recorded, decision.mttr_recorded) == (240, None)
    resolved = run.at(T0 + 30 * MIN, spec(acknowledgement=ack("alice", T0 + 4 * MIN),
                                          status="Resolved"))
    assert conditions(run.status)["Resolved"] == ("True", "Resolved")
    assert conditions(run.status)["Ready"] == ("True", "Resolved")
    assert resolved.postmortem_due and run.status.postmortem_ref == "checkout-postmortem"
    assert (resolved.mtta_recorded, resolved.mttr_recorded) == (None, 1800)
    assert [e.message for e in resolved.events] == ["resolved; MTTR 30m"]
    again = run.at(T0 + 31 * MIN, spec(acknowledgement=ack("alice", T0 + 4 * MIN),
                                       status="Resolved"))
    assert not again.postmortem_due and again.deliveries == ()


def test_no_policy_is_stalled_and_said_once_in_the_timeline_and_an_event() -> None:
    run = Run(NO_POLICY)
    first = run.at(T0, spec())
    second = run.at(T0 + MIN, spec())
    assert conditions(run.status)["Stalled"] == ("True", "NoEscalationPolicy")
    assert messages(run.status, "Routed") == [
        "nobody is paged: spec.escalationPolicyRef is not set: nobody is paged"]
    assert [e.reason for e in first.events] == ["NoEscalationPolicy"] and second.events == ()
    assert first.deliveries == () and run.status.escalation is None
    run.at(T0 + 2 * MIN, spec(status="Resolved"))
    assert conditions(run.status)["Ready"] == ("True", "Resolved")


def test_a_climb_whose_policy_went_waits_and_resumes_where_it_stood() -> None:
    run = Run(policy())
    run.at(T0, spec())
    run.policy = PolicyProblem("EscalationPolicyNotFound", "EscalationPolicy default not found")
    run.at(T0 + 40 * MIN, spec())
    assert run.status.escalation.next_deadline is None and run.channels()[-1] == "alice-pager"
    run.policy = policy()
    run.at(T0 + 41 * MIN, spec())
    assert run.channels()[-1] == "sre" and run.status.escalation.step == 2
    assert conditions(run.status)["Stalled"] == ("False", "Progressing")


def test_a_step_counts_as_paged_only_when_all_its_channels_were_tried() -> None:
    run = Run(policy([{"after": "0s", "channels": ["a", "b"]},
                      {"after": "5m", "channels": ["c"]}]))
    run.at(T0, spec(), stop_before=lambda delivery: delivery.channel == "b")
    assert run.status.escalation.step == 0 and run.status.escalation.next_deadline == T0
    assert events(run.status) == ["Opened", "Notified"]
    run.at(T0 + MIN, spec())  # the restarted operator pages only what is missing
    assert run.channels() == ["a", "b"] and run.status.escalation.step == 1
    assert events(run.status).count("Escalated") == 1


def test_failed_deliveries_are_recorded_told_and_warned_about() -> None:
    decision = decide(Incident(REF, 1, T0, spec(), run_status()), policy(), T0)
    outcomes = [delivered(d, T0, "failed") for d in decision.deliveries]
    status, warnings = finish(decision, outcomes, "postmortem written")
    assert [r.result for r in status.notifications] == ["failed", "failed"]
    assert [(e.type, e.reason) for e in warnings] == [
        ("Normal", "Escalated"), ("Warning", "NotificationFailed"),
        ("Warning", "NotificationFailed")]
    assert messages(status, "PostmortemWritten") == ["postmortem written"]


def run_status():
    return Run(policy()).status


def test_still_pages_while_the_spec_and_the_sources_word_are_unchanged() -> None:
    decision = decide(Incident(REF, 3, T0, spec(), run_status()), policy(), T0)
    status = decision.incident.status
    assert still_pages(decision, 3, status)
    assert not still_pages(decision, 4, status)
    recovered = status.model_copy(update={"source_recovered_at": T0})
    assert not still_pages(decision, 3, recovered)


def test_a_decision_replayed_onto_another_writers_status_keeps_both() -> None:
    run = Run(policy())
    run.at(T0, spec())
    base = run.status
    decision = decide(Incident(REF, 1, T0, spec(), base), policy(), T0 + 30 * MIN)
    final, _ = finish(decision, [delivered(d, T0 + 30 * MIN) for d in decision.deliveries])
    alert = IncidentAlert(fingerprint="f1", status="firing", labels={"a": "b"})
    theirs = with_timeline(base, [TimelineEntry(time=T0 + 29 * MIN, event="AlertsChanged",
                                                message="1 alert")]).model_copy(
        update={"alerts": [alert], "truncated_alerts": 2})
    merged = merged_onto(theirs, base, final)
    assert merged.alerts == [alert] and merged.truncated_alerts == 2
    assert merged.escalation == final.escalation and merged.conditions == final.conditions
    assert "AlertsChanged" in events(merged) and events(merged).count("Escalated") == 2
    assert merged.timeline_total == len(merged.timeline)
    assert {r.channel for r in merged.notifications} == {"oncall", "alice-pager", "sre"}
    assert merged_onto(base, base, final) == final
