"""core.alertrule.status: the status after an evaluation, and when it is worth a write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from runbook_operator.api.alertrule import AlertRuleSpec, AlertRuleStatus
from runbook_operator.api.common import NotificationRecord
from runbook_operator.core.alertrule.decide import Evaluation, decide
from runbook_operator.core.alertrule.rule import compile_rule
from runbook_operator.core.alertrule.state import QueryError
from runbook_operator.core.alertrule.status import (
    STATUS_HEARTBEAT,
    Heartbeat,
    heartbeat_of,
    heartbeat_period,
    next_status,
    stalled_status,
    status_write_due,
)
from runbook_operator.core.conditions import Phase

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
KEY = ("shop", "web-5xx")
RULE = compile_rule(AlertRuleSpec.model_validate({
    "query": "errors", "condition": {"operator": "gt", "threshold": 0.05}}))


def status(**fields: Any) -> AlertRuleStatus:
    return AlertRuleStatus.model_validate(fields)


def condition(new: AlertRuleStatus, type_: str) -> tuple[str, str]:
    found = next(c for c in new.conditions if c.type == type_)
    return found.status, found.reason


def after(samples: Any, error_kind: str | None = None, generation: int = 3):
    assert RULE.threshold is not None
    evaluation = Evaluation(KEY, RULE, samples, RULE.threshold.holds, error_kind)
    decision = decide(AlertRuleStatus(), evaluation, T0)
    return next_status(AlertRuleStatus(), evaluation, decision, [], [], 0.123456, T0, generation)


def test_a_firing_evaluation_is_ready_and_firing() -> None:
    new, outcome = after([({"pod": "a"}, 0.5), ({"pod": "b"}, 0.01)])
    assert (outcome.phase, outcome.message) == (Phase.READY, "2 series, 1 firing")
    assert condition(new, "Firing") == ("True", "Firing")
    assert (new.state, new.last_value, new.observed_generation) == ("Firing", "0.5", 3)
    assert new.evaluation_duration_seconds == 0.1235 and new.last_evaluation == T0
    assert all(c.observed_generation == 3 for c in new.conditions)


def test_a_query_prometheus_rejects_stalls_and_a_failed_one_is_retried() -> None:
    bad, outcome = after(QueryError("parse error"), "bad_data")
    assert (outcome.phase, outcome.reason) == (Phase.STALLED, "InvalidQuery")
    assert bad.last_error == "parse error"
    _, outcome = after(QueryError("deadline exceeded"), "timeout")
    assert (outcome.phase, outcome.reason, outcome.message) == (
        Phase.RECONCILING, "QueryFailed", "timeout: deadline exceeded")


def test_a_stalled_status_keeps_the_rest() -> None:
    old = status(state="Firing", lastValue="0.5")
    new = stalled_status(old, "SecretNotFound", "Secret 'gone' not found", T0, 4)
    assert condition(new, "Stalled") == ("True", "SecretNotFound")
    assert condition(new, "Ready") == ("False", "SecretNotFound")
    assert (new.state, new.last_value, new.observed_generation) == ("Firing", "0.5", 4)


def test_rules_written_together_beat_evenly_over_the_period_from_the_first_one() -> None:
    """5,000 rules created at once, at the period 2 writes a second gives them: their first
    heartbeats are spread over the period, not a wave every period."""
    period = heartbeat_period(5_000, 2.0)
    beats = [heartbeat_of(("shop", f"rule-{i}"), period).after(T0) for i in range(5_000)]
    assert all(T0 < beat <= T0 + period for beat in beats)
    per_tenth = [0] * 10
    for beat in beats:
        per_tenth[min(9, int(10 * ((beat - T0) / period)))] += 1
    assert max(per_tenth) < 600  # 500 each if perfectly even
    assert heartbeat_of(("shop", "rule-1"), period) == heartbeat_of(("shop", "rule-1"), period)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                    timezones=st.just(UTC)),
       st.integers(min_value=5, max_value=600), st.floats(min_value=0, max_value=1,
                                                           exclude_max=True))
def test_a_rule_beats_once_a_period_at_its_own_moment_of_it(
        written: datetime, minutes: int, spread: float) -> None:
    period = timedelta(minutes=minutes)
    heartbeat = Heartbeat(period, int(spread * period.total_seconds()))
    beat = heartbeat.after(written)
    assert written < beat <= written + period
    assert heartbeat.after(beat) - beat == period
    assert (beat.timestamp() - heartbeat.phase) % period.total_seconds() == 0


@given(st.integers(min_value=0, max_value=100_000),
       st.floats(min_value=0.1, max_value=100, allow_nan=False))
def test_heartbeats_keep_within_their_write_budget_and_never_come_more_often_than_5_minutes(
        rules: int, writes_per_second: float) -> None:
    period = heartbeat_period(rules, writes_per_second)
    assert period >= STATUS_HEARTBEAT and period.total_seconds() % 60 == 0
    # every rule beats once a period: the writes a second, at most
    assert rules / period.total_seconds() <= writes_per_second
    if rules / writes_per_second <= STATUS_HEARTBEAT.total_seconds() - 60:
        assert period == STATUS_HEARTBEAT


def test_heartbeats_of_many_rules_come_less_often_and_an_unbounded_budget_keeps_5_minutes(
        ) -> None:
    assert heartbeat_period(600, 2.0) == STATUS_HEARTBEAT
    assert heartbeat_period(601, 2.0) == timedelta(minutes=6)
    assert heartbeat_period(5_000, 2.0) == timedelta(minutes=42)
    assert heartbeat_period(5_000, 0) == STATUS_HEARTBEAT


INSTANCE = {"fingerprint": "f1", "state": "Firing", "lastValue": "0.5", "activeValue": "0.5",
            "lastEvaluation": "2026-11-22T08:00:00Z", "firingSince": "2026-11-22T07:00:00Z"}


def test_status_write_due_ignores_per_tick_values_until_the_heartbeat() -> None:
    old = status(state="Firing", lastValue="0.5", lastEvaluation="2026-11-22T08:00:00Z",
                 evaluationDurationSeconds=0.1, instances=[INSTANCE],
                 anomaly={"samples": 30, "lastScore": 0.4})
    later = T0 + timedelta(seconds=15)
    new = old.model_copy(update={
        "last_value": "0.7", "last_evaluation": later, "evaluation_duration_seconds": 0.2,
        "instances": [old.instances[0].model_copy(update={
            "last_value": "0.7", "last_evaluation": later, "active_value": "0.7"})],
        "anomaly": old.anomaly.model_copy(update={"last_score": 0.6}),  # type: ignore[union-attr]
    })
    heartbeat = heartbeat_of(KEY)
    beat = heartbeat.after(T0)
    assert not status_write_due(old, new, later, heartbeat)
    assert not status_write_due(old, new, beat - timedelta(microseconds=1), heartbeat)
    assert status_write_due(old, new, beat, heartbeat)
    assert status_write_due(status(), new, later, heartbeat)  # never evaluated


def test_a_write_for_a_lasting_change_carries_the_value_it_fires_with_now() -> None:
    """The firing value moves without a write; the next lasting change (here a repeat
    notification) writes the value of that moment, which a later resolve repeats."""
    old = status(state="Firing", lastEvaluation="2026-11-22T08:00:00Z", instances=[INSTANCE])
    moved = old.instances[0].model_copy(update={"last_value": "0.9", "active_value": "0.9"})
    new = old.model_copy(update={"instances": [moved]})
    assert not status_write_due(old, new, T0 + timedelta(seconds=15), heartbeat_of(KEY))
    record = NotificationRecord(time=T0, channel="oncall", fingerprint="f1", event="firing",
                                severity="high", result="delivered")
    repeated = new.model_copy(update={"notifications": [record]})
    assert status_write_due(old, repeated, T0 + timedelta(seconds=15), heartbeat_of(KEY))
    assert repeated.instances[0].active_value == "0.9"


@pytest.mark.parametrize("change", [
    {"state": "Normal"},
    {"last_error": "timeout"},
    {"observed_generation": 2},
    {"instances": []},
    {"anomaly": None},
])
def test_status_write_due_on_every_lasting_change(change: dict[str, Any]) -> None:
    old = status(state="Firing", lastEvaluation="2026-11-22T08:00:00Z", instances=[INSTANCE],
                 observedGeneration=1, anomaly={"samples": 30})
    new = old.model_copy(update=change)
    assert status_write_due(old, new, T0 + timedelta(seconds=15), heartbeat_of(KEY))
