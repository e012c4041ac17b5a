"""core.incident.escalate, through whole reconciles (decide + finish): the runbooks' ladder on
time, who is on call, acknowledgement, ackTimeout, repeats, severity routes, reopening,
withdrawn acknowledgements, policy changes — and the property the escalation exists for: however
the reconciles fall in time (an operator down for a while, restarted, or reconciling every
second), every step is paged exactly once and never before its deadline."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from runbook_operator.core.escalation import steps_reached
from runbook_operator.core.incident.escalate import page_message

from tests.support.incident_core import (
    MIN,
    SEC,
    T0,
    Run,
    ack,
    events,
    messages,
    policy,
    spec,
)

HOUR = 60 * MIN


def test_the_runbook_ladder_pages_each_level_at_its_delay() -> None:
    run = Run(policy())
    incident = spec()
    for minute in (0, 29, 30, 59, 60, 119, 120, 500):
        run.at(T0 + minute * MIN, incident)
    assert [(when - T0, d.channel, d.event, d.step) for when, d in run.sent] == [
        (timedelta(0), "oncall", "opened", 1), (timedelta(0), "alice-pager", "opened", 1),
        (30 * MIN, "sre", "escalated", 2), (60 * MIN, "manager", "escalated", 3),
        (120 * MIN, "cto", "escalated", 4)]
    state = run.status.escalation
    assert (state.step, state.level, state.next_deadline) == (4, 4, None)
    assert messages(run.status, "Escalated")[0] == (
        "L1 (step 1): paged oncall, alice-pager; on call in primary: alice via alice-pager; "
        "EscalationPolicy default generation 1")


def test_the_next_deadline_is_the_next_level_and_then_nothing() -> None:
    run = Run(policy())
    run.at(T0, spec())
    assert run.status.escalation.next_deadline == T0 + 30 * MIN
    run.at(T0 + 45 * MIN, spec())
    assert run.status.escalation.next_deadline == T0 + HOUR


def test_steps_missed_while_the_operator_was_down_are_paged_at_once_and_said_late() -> None:
    run = Run(policy())
    run.at(T0, spec())
    run.at(T0 + 150 * MIN, spec())
    assert run.channels()[2:] == ["sre", "manager", "cto"]
    assert messages(run.status, "Escalated")[-1].endswith(
        "; due 2026-03-01T14:00:00Z, 30m late")


def test_an_acknowledgement_stops_the_climb_and_is_told_to_those_paged() -> None:
    run = Run(policy())
    run.at(T0, spec())
    run.at(T0 + 30 * MIN, spec())
    acked = spec(acknowledgement=ack("alice", T0 + 40 * MIN))
    run.at(T0 + 40 * MIN, acked)
    for minute in (60, 120, 600):
        run.at(T0 + minute * MIN, acked)
    assert run.channels("escalated") == ["sre"]
    assert sorted(run.channels("acknowledged")) == ["alice-pager", "oncall", "sre"]
    assert run.status.escalation.next_deadline is None


def test_ack_timeout_retriggers_from_l1_at_its_deadline_and_a_new_ack_stops_it_again() -> None:
    run = Run(policy(ackTimeout="30m"))
    run.at(T0, spec())
    acked = spec(acknowledgement=ack("alice", T0 + 5 * MIN))
    run.at(T0 + 5 * MIN, acked)
    assert run.status.escalation.next_deadline == T0 + 35 * MIN
    run.at(T0 + 34 * MIN, acked)
    assert run.channels("opened") == ["oncall", "alice-pager"]
    run.at(T0 + 36 * MIN, acked)
    assert run.channels("opened") == ["oncall", "alice-pager"] * 2
    state = run.status.escalation
    assert (state.started_at, state.retriggers, state.step) == (T0 + 35 * MIN, 1, 1)
    assert state.expired_acknowledgement.by == "alice"
    assert run.status.acknowledged_by is None and run.status.mtta_seconds == 300
    assert messages(run.status, "Retriggered") == [
        "not resolved within ackTimeout of the acknowledgement by alice: escalation starts "
        "again from L1"]
    run.at(T0 + 65 * MIN, acked)  # L2 of the new climb, 30 min after it began
    assert run.channels()[-1] == "sre"
    again = spec(acknowledgement=ack("bob", T0 + 70 * MIN))
    run.at(T0 + 70 * MIN, again)
    assert run.status.acknowledged_by == "bob"
    assert run.status.escalation.next_deadline == T0 + 100 * MIN


def test_repeats_loop_from_their_level_with_their_period() -> None:
    levels = [{"after": "0s", "channels": ["l1"]}, {"after": "5m", "channels": ["l2"]}]
    run = Run(policy(levels, repeat={"count": 2, "every": "10m", "fromLevel": 2}))
    for minute in range(0, 60):
        run.at(T0 + minute * MIN, spec())
    assert [(when - T0, d.channel, d.step) for when, d in run.sent] == [
        (timedelta(0), "l1", 1), (5 * MIN, "l2", 2), (15 * MIN, "l2", 3), (25 * MIN, "l2", 4)]
    assert messages(run.status, "Escalated")[-1].startswith("L2 (step 4, pass 3): paged l2")


def test_a_severity_routed_to_channels_only_tells_them_and_climbs_once_it_is_raised() -> None:
    routes = [{"severities": ["P2", "P3"], "channels": ["team"], "escalate": False}]
    run = Run(policy(routes=routes))
    low = spec(severity="P3")
    for minute in (0, 31, 90):
        run.at(T0 + minute * MIN, low)
    assert [(d.channel, d.event, d.step) for _, d in run.sent] == [("team", "opened", 0)]
    assert messages(run.status, "Routed") == ["P3: routed to team only, no escalation"]
    run.at(T0 + 100 * MIN, spec(severity="P1"))
    assert run.channels()[1:] == ["oncall", "alice-pager"]
    assert run.status.escalation.started_at == T0 + 100 * MIN
    assert messages(run.status, "Routed")[-1] == "P1: climbs the ladder from L1"
    run.at(T0 + 110 * MIN, spec(severity="P2"))
    assert run.status.escalation.next_deadline is None
    assert messages(run.status, "Routed")[-1] == "P2: routed to team only, no escalation"


def test_reopening_and_a_withdrawn_acknowledgement_start_the_climb_again() -> None:
    run = Run(policy())
    run.at(T0, spec())
    run.at(T0 + 10 * MIN, spec(status="Resolved"))
    assert sorted(run.channels("resolved")) == ["alice-pager", "oncall"]
    run.at(T0 + 20 * MIN, spec(status="Investigating"))
    assert run.channels()[-2:] == ["oncall", "alice-pager"]
    assert messages(run.status, "Retriggered") == ["reopened: escalation starts again from L1"]
    acked = spec(status="Investigating", acknowledgement=ack("alice", T0 + 21 * MIN))
    run.at(T0 + 21 * MIN, acked)
    run.at(T0 + 30 * MIN, spec(status="Investigating"))
    assert messages(run.status, "Retriggered")[-1] == (
        "acknowledgement by alice withdrawn: escalation starts again from L1")
    assert run.status.escalation.retriggers == 2
    assert run.status.escalation.started_at == T0 + 30 * MIN


def test_a_policy_change_is_told_and_the_rest_of_the_climb_follows_it() -> None:
    run = Run(policy())
    run.at(T0, spec())
    run.policy = policy([{"after": "0s", "channels": ["oncall"]},
                         {"after": "10m", "channels": ["new-sre"]}], generation=2)
    run.at(T0 + 11 * MIN, spec())
    assert run.channels()[-1] == "new-sre"
    assert messages(run.status, "PolicyChanged") == [
        "EscalationPolicy default generation 1 → 2: the rest of the climb follows it"]
    assert run.status.escalation.policy_generation == 2


def test_a_rotation_that_has_not_started_pages_the_level_and_says_nobody_is_on_call() -> None:
    levels = [{"after": "0s", "channels": ["team"], "rotation": "later"}]
    rotation = {"name": "later", "turn": "24h", "start": "2026-04-01T09:00:00Z",
                "members": [{"name": "alice", "channel": "alice-pager"}]}
    run = Run(policy(levels, rotations=[rotation]))
    run.at(T0, spec())
    assert run.channels() == ["team"]
    assert "nobody on call in rotation later yet" in messages(run.status, "Escalated")[0]


def test_the_page_message_names_the_pass_of_a_repeat() -> None:
    run = Run(policy([{"after": "0s", "channels": ["l1"]}], repeat={"count": 1, "every": "1m"}))
    decision = run.at(T0 + MIN, spec())
    assert page_message(decision.pages[-1], run.policy).startswith("L1 (step 2, pass 2)")


# --- properties ------------------------------------------------------------------------------

ladders = st.lists(st.integers(0, 90), min_size=1, max_size=4, unique=True).map(
    lambda minutes: [{"after": f"{m}m", "channels": [f"c{i}"]}
                     for i, m in enumerate(sorted(minutes))])


@st.composite
def policies(draw):
    levels = draw(ladders)
    last = int(levels[-1]["after"][:-1])
    if draw(st.booleans()):
        repeat = {"count": draw(st.integers(1, 3)), "every": f"{last + draw(st.integers(1, 60))}m",
                  "fromLevel": draw(st.integers(1, len(levels)))}
        return policy(levels, repeat=repeat)
    return policy(levels)


@settings(max_examples=300, deadline=None)
@given(compiled=policies(),
       seconds=st.lists(st.integers(0, 8 * 3600), min_size=1, max_size=30))
def test_every_step_is_paged_once_never_early_however_the_reconciles_fall(
        compiled, seconds: list[int]) -> None:
    run = Run(compiled)
    moments = sorted(T0 + s * SEC for s in seconds)
    for now in moments:
        run.at(now, spec())
    reached = steps_reached(compiled.ladder, T0, moments[-1])
    paged = [page.step for decision in run.decisions for page in decision.pages]
    assert paged == list(range(1, reached + 1))
    for decision in run.decisions:
        # A channel on several steps due at once is paged once, for the highest.
        channels = [d.channel for d in decision.deliveries]
        assert len(channels) == len(set(channels))
        assert all(decision.now >= page.due_at for page in decision.pages)
    assert {d.step for _, d in run.sent} <= set(paged)
    assert run.status.escalation.step == reached
    assert run.status.escalation.next_deadline == compiled.ladder.deadline(T0, reached + 1)
    assert events(run.status).count("Escalated") == reached


@settings(max_examples=200, deadline=None)
@given(compiled=policies(), seconds=st.lists(st.integers(0, 4 * 3600), min_size=2,
                                             max_size=20), acked=st.integers(0, 4 * 3600))
def test_nothing_pages_after_the_acknowledgement_is_seen(compiled, seconds, acked) -> None:
    run = Run(compiled)
    acknowledged = T0 + acked * SEC
    for now in sorted(T0 + s * SEC for s in seconds):
        run.at(now, spec(acknowledgement=ack("alice", acknowledged))
               if now >= acknowledged else spec())
    assert all(when < acknowledged for when, d in run.sent if d.page is not None)
