"""core.alertrule.actions: cooldown, scaling bounds and the capped action log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from runbook_operator.api.alertrule import ACTION_LOG_LIMIT, ActionRecord
from runbook_operator.core.alertrule.actions import (
    action_due,
    last_action_at,
    record_actions,
    scaled_replicas,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)


def action(minutes: int, result: str = "succeeded") -> ActionRecord:
    return ActionRecord(time=T0 + minutes * MIN, action="scaleDeployment", result=result)


def test_action_cooldown() -> None:
    cooldown = timedelta(minutes=10)
    assert action_due(None, cooldown, T0)
    assert not action_due(T0, cooldown, T0 + 9 * MIN)
    assert action_due(T0, cooldown, T0 + 10 * MIN)


def test_the_last_action_counts_whether_it_succeeded_or_not() -> None:
    assert last_action_at([]) is None
    assert last_action_at([action(1), action(5, "failed"), action(3)]) == T0 + 5 * MIN


def test_the_log_is_newest_first_and_capped() -> None:
    log = record_actions([action(n) for n in range(ACTION_LOG_LIMIT)], [action(100)])
    assert len(log) == ACTION_LOG_LIMIT
    assert log[0].time == T0 + 100 * MIN and log[-1].time == T0 + MIN
    assert [a.time for a in log] == sorted((a.time for a in log), reverse=True)


@given(current=st.integers(0, 50), by=st.integers(-10, 10), low=st.integers(0, 20),
       span=st.integers(0, 20))
def test_scaled_replicas_stay_within_bounds(current, by, low, span) -> None:
    high = low + span
    result = scaled_replicas(current, by, low, high)
    assert low <= result <= high
    if low <= current + by <= high:
        assert result == current + by
