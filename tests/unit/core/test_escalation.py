"""core.escalation: levels reached, severity raised, channels added and the next deadline, as
functions of a start time, a policy and `now` (the runbooks' ladder, repeats, stops), with
properties over random policies and times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from runbook_operator.core.escalation import (
    SEVERITY_ORDER,
    Level,
    Policy,
    escalation,
    raised,
    steps_reached,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)
TICK = timedelta(microseconds=1)
#: The runbooks' ladder: L1 on-call at once, L2 SRE after 30 min, L3 manager after 1 h, L4 CTO
#: after 2 h from opening.
RUNBOOK = Policy(levels=(
    Level(timedelta(0), channels=("oncall",)),
    Level(30 * MIN, channels=("sre",), severity="high"),
    Level(60 * MIN, channels=("manager",)),
    Level(120 * MIN, channels=("cto",), severity="critical"),
))


def test_the_runbook_ladder_climbs_on_time() -> None:
    start = escalation(RUNBOOK, T0, T0, "medium")
    assert (start.step, start.level, start.channels) == (1, 1, ("oncall",))
    assert start.next_deadline == T0 + 30 * MIN
    before = escalation(RUNBOOK, T0, T0 + 30 * MIN - TICK, "medium")
    assert (before.step, before.severity) == (1, "medium")
    second = escalation(RUNBOOK, T0, T0 + 30 * MIN, "medium")
    assert (second.step, second.severity, second.channels) == (2, "high", ("oncall", "sre"))
    assert second.next_deadline == T0 + 60 * MIN
    top = escalation(RUNBOOK, T0, T0 + 5 * 60 * MIN, "medium")
    assert (top.step, top.level, top.loop, top.severity) == (4, 4, 0, "critical")
    assert top.channels == ("oncall", "sre", "manager", "cto")
    assert top.next_deadline is None


def test_severity_is_never_lowered() -> None:
    policy = Policy(levels=(Level(MIN, severity="low"), Level(2 * MIN, severity="high")))
    assert escalation(policy, T0, T0 + MIN, "medium").severity == "medium"
    assert escalation(policy, T0, T0 + 2 * MIN, "critical").severity == "critical"
    assert raised("info", None) == "info" and raised("info", "high") == "high"


def test_a_channel_added_twice_is_listed_once() -> None:
    policy = Policy(levels=(Level(MIN, channels=("a", "b")), Level(2 * MIN, channels=("b", "c"))))
    assert escalation(policy, T0, T0 + 3 * MIN, "info").channels == ("a", "b", "c")


def test_nothing_is_reached_before_the_start_or_without_levels() -> None:
    early = escalation(RUNBOOK, T0, T0 - MIN, "medium")
    assert (early.step, early.level, early.channels) == (0, 0, ())
    assert early.next_deadline == T0
    empty = escalation(Policy(), T0, T0 + 60 * MIN, "high")
    assert (empty.step, empty.severity, empty.next_deadline) == (0, "high", None)


def test_repeats_run_the_ladder_again_from_its_first_level() -> None:
    policy = Policy(levels=RUNBOOK.levels, repeats=2, period=180 * MIN)
    second_pass = escalation(policy, T0, T0 + 180 * MIN, "medium")
    assert (second_pass.step, second_pass.level, second_pass.loop) == (5, 1, 1)
    assert second_pass.severity == "critical"  # what was raised stays raised
    assert second_pass.next_deadline == T0 + 210 * MIN
    last = escalation(policy, T0, T0 + 2 * 180 * MIN + 120 * MIN, "medium")
    assert (last.step, last.level, last.loop, last.next_deadline) == (12, 4, 2, None)
    assert escalation(policy, T0, T0 + 100 * 180 * MIN, "medium").step == 12


def test_repeats_may_skip_the_first_levels() -> None:
    policy = Policy(levels=RUNBOOK.levels, repeats=2, period=180 * MIN, repeat_from=1)
    assert policy.steps == 4 + 2 * 3
    at_l2 = escalation(policy, T0, T0 + 210 * MIN, "medium")
    assert (at_l2.step, at_l2.level, at_l2.loop) == (5, 2, 1)
    assert escalation(policy, T0, T0 + 209 * MIN, "medium").step == 4  # L1 is not repeated
    assert escalation(policy, T0, T0 + 200 * MIN, "medium").next_deadline == T0 + 210 * MIN
    last = escalation(policy, T0, T0 + 480 * MIN, "medium")
    assert (last.step, last.level, last.loop, last.next_deadline) == (10, 4, 2, None)


def test_a_stop_freezes_escalation_where_it_stands() -> None:
    acked = escalation(RUNBOOK, T0, T0 + 300 * MIN, "medium", stopped_at=T0 + 45 * MIN)
    assert (acked.step, acked.severity, acked.next_deadline) == (2, "high", None)
    assert acked.channels == ("oncall", "sre")
    not_yet = escalation(RUNBOOK, T0, T0 + 45 * MIN, "medium", stopped_at=T0 + 50 * MIN)
    assert not_yet.next_deadline == T0 + 60 * MIN


@pytest.mark.parametrize("policy", [
    {"levels": (Level(MIN), Level(MIN))},
    {"levels": (Level(2 * MIN), Level(MIN))},
    {"levels": (Level(-MIN),)},
    {"levels": (Level(MIN),), "repeats": -1},
    {"levels": (Level(MIN),), "repeats": 1},
    {"levels": (Level(MIN),), "repeats": 1, "period": MIN},
    {"repeats": 1, "period": MIN},
    {"levels": (Level(MIN),), "repeats": 1, "period": 2 * MIN, "repeat_from": 1},
    {"levels": (Level(MIN),), "repeat_from": -1},
])
def test_invalid_policies_are_refused(policy) -> None:
    with pytest.raises(ValueError):
        Policy(**policy)


# --- properties ------------------------------------------------------------------------------

levels = st.lists(
    st.tuples(st.integers(0, 600), st.lists(st.sampled_from("abcd"), max_size=2),
              st.none() | st.sampled_from(SEVERITY_ORDER)),
    max_size=5, unique_by=lambda level: level[0],
).map(lambda found: tuple(
    Level(n * MIN, tuple(dict.fromkeys(channels)), severity)
    for n, channels, severity in sorted(found)))


@st.composite
def policies(draw) -> Policy:
    ladder = draw(levels)
    repeats = draw(st.integers(0, 3)) if ladder else 0
    period = ladder[-1].after + draw(st.integers(1, 300)) * MIN if repeats else timedelta(0)
    repeat_from = draw(st.integers(0, len(ladder) - 1)) if repeats else 0
    return Policy(levels=ladder, repeats=repeats, period=period, repeat_from=repeat_from)


moments = st.integers(-60, 4000).map(lambda n: T0 + n * MIN + n * TICK)
severities = st.sampled_from(SEVERITY_ORDER)


@settings(max_examples=300, deadline=None)
@given(policy=policies(), times=st.lists(moments, min_size=2, max_size=6), base=severities)
def test_escalation_is_monotone_in_time(policy: Policy, times, base: str) -> None:
    seen = [escalation(policy, T0, now, base) for now in sorted(times)]
    for earlier, later in zip(seen, seen[1:]):
        assert earlier.step <= later.step
        assert SEVERITY_ORDER.index(earlier.severity) <= SEVERITY_ORDER.index(later.severity)
        assert later.channels[: len(earlier.channels)] == earlier.channels
    assert all(SEVERITY_ORDER.index(e.severity) >= SEVERITY_ORDER.index(base) for e in seen)


@settings(max_examples=300, deadline=None)
@given(policy=policies(), now=moments, base=severities)
def test_the_next_deadline_is_after_now_and_is_where_the_next_step_begins(
        policy: Policy, now: datetime, base: str) -> None:
    current = escalation(policy, T0, now, base)
    deadline = current.next_deadline
    if deadline is None:
        assert current.step == policy.steps
        return
    assert deadline > now
    assert escalation(policy, T0, deadline, base).step == current.step + 1
    assert escalation(policy, T0, deadline - TICK, base).step == current.step


@settings(max_examples=200, deadline=None)
@given(policy=policies())
def test_deadlines_strictly_increase_and_passes_repeat_the_ladder(policy: Policy) -> None:
    assume(policy.levels)
    deadlines = [policy.deadline(T0, step) for step in range(1, policy.steps + 1)]
    assert all(a < b for a, b in zip(deadlines, deadlines[1:]))
    passes: dict[int, list[int]] = {}
    for step, moment in enumerate(deadlines, start=1):
        assert moment is not None
        reached = escalation(policy, T0, moment, "info")
        assert reached.step == step
        passes.setdefault(reached.loop, []).append(reached.level)
        assert moment - T0 - reached.loop * policy.period == policy.levels[reached.level - 1].after
    every = list(range(1, len(policy.levels) + 1))
    assert passes == {0: every, **{
        loop: every[policy.repeat_from:] for loop in range(1, policy.repeats + 1)}}
    assert policy.deadline(T0, policy.steps + 1) is None and policy.deadline(T0, 0) is None


@settings(max_examples=200, deadline=None)
@given(policy=policies(), stop=moments, later=st.integers(0, 5000), base=severities)
def test_after_a_stop_nothing_moves(policy: Policy, stop: datetime, later: int,
                                    base: str) -> None:
    frozen = escalation(policy, T0, stop, base)
    after = escalation(policy, T0, stop + later * MIN, base, stopped_at=stop)
    assert after.next_deadline is None
    assert (after.step, after.severity, after.channels) == (
        frozen.step, frozen.severity, frozen.channels)
    assert steps_reached(policy, T0, stop) == frozen.step
