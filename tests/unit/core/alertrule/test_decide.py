"""core.alertrule.decide: one evaluation's next instances, due notifications with escalation
by firing time, and due actions — driven through status as the controller drives it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from runbook_operator.api.alertrule import (
    ActionRecord,
    AlertInstance,
    AlertRuleSpec,
    AlertRuleStatus,
    InstanceState,
)
from runbook_operator.core.alertrule.decide import Decision, Evaluation, decide, subject_of
from runbook_operator.core.alertrule.rule import Rule, compile_rule
from runbook_operator.core.alertrule.state import QueryError
from runbook_operator.core.alertrule.status import next_status
from runbook_operator.core.notify_plan import Problem, sent_record

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)
KEY = ("shop", "web-5xx")
LEVELS = [{"after": "15m", "channels": [{"name": "oncall"}]},
          {"after": "1h", "severity": "critical"}]


def rule(**spec: Any) -> Rule:
    base = {"query": "errors", "condition": {"operator": "gt", "threshold": 5},
            "severity": "high", "channels": [{"name": "slack"}]}
    return compile_rule(AlertRuleSpec.model_validate({**base, **spec}))


def evaluate(status: AlertRuleStatus, compiled: Rule, value: float | None | QueryError,
             now: datetime) -> tuple[Decision, AlertRuleStatus]:
    """One evaluation as the controller runs it: decide, 'deliver' what is due, next status."""
    if isinstance(value, QueryError):
        samples: Any = value
    else:
        samples = [] if value is None else [({"pod": "a"}, value)]
    assert compiled.threshold is not None
    evaluation = Evaluation(KEY, compiled, samples, compiled.threshold.holds)
    decision = decide(status, evaluation, now)
    sent = [sent_record(d, "delivered", now) for d in decision.due]
    new, _ = next_status(status, evaluation, decision, sent, status.actions, 0.01, now, 1)
    return decision, new


def told(decision: Decision) -> list[tuple[str, str, str, str]]:
    return sorted((d.channel, d.event, d.reason, d.severity) for d in decision.due)


def firing(since: datetime = T0, state: InstanceState = "Firing") -> AlertInstance:
    return AlertInstance(fingerprint="fp1", state=state, active_since=since,
                         pending_since=since, firing_since=since)


def test_a_firing_instance_escalates_by_the_time_it_has_been_firing() -> None:
    compiled = rule(escalateAfter=LEVELS)
    assert subject_of(firing(), compiled, T0).problem == Problem(
        "firing", T0, "high", ("slack",), 0)
    assert subject_of(firing(), compiled, T0 + 15 * MIN).problem == Problem(
        "firing", T0, "high", ("slack", "oncall"), 1)
    top = subject_of(firing(state="Recovering"), compiled, T0 + 2 * 60 * MIN).problem
    assert top is not None and (top.severity, top.step) == ("critical", 2)


def test_an_error_is_notified_at_the_rules_severity_and_never_escalates() -> None:
    error = AlertInstance(fingerprint="fp1", state="Error", active_since=T0)
    assert subject_of(error, rule(escalateAfter=LEVELS), T0 + 3 * 60 * MIN).problem == Problem(
        "error", T0, "high", ("slack",), 0)


def test_pending_and_normal_instances_are_no_problem() -> None:
    pending = AlertInstance(fingerprint="fp1", state="Pending", active_since=T0,
                            pending_since=T0)
    assert subject_of(pending, rule(), T0 + 3 * 60 * MIN).problem is None
    assert subject_of(AlertInstance(fingerprint="fp1", state="Normal"), rule(), T0).problem is None


def test_each_level_is_notified_once_while_firing_then_everyone_hears_it_resolved() -> None:
    compiled = rule(escalateAfter=LEVELS)
    decision, status = evaluate(AlertRuleStatus(), compiled, 10, T0)
    assert told(decision) == [("slack", "firing", "new", "high")]
    decision, status = evaluate(status, compiled, 10, T0 + 15 * MIN)
    assert told(decision) == [("oncall", "firing", "new", "high"),
                              ("slack", "firing", "escalated", "high")]
    assert evaluate(status, compiled, 10, T0 + 16 * MIN)[0].due == []
    decision, status = evaluate(status, compiled, 10, T0 + 60 * MIN)
    assert told(decision) == [("oncall", "firing", "escalated", "critical"),
                              ("slack", "firing", "escalated", "critical")]
    decision, _ = evaluate(status, compiled, 1, T0 + 61 * MIN)
    assert told(decision) == [("oncall", "resolved", "resolved", "critical"),
                              ("slack", "resolved", "resolved", "critical")]


def test_recovering_is_still_firing_and_a_flap_is_not_resent() -> None:
    compiled = rule(keepFiringFor="5m")
    decision, status = evaluate(AlertRuleStatus(), compiled, 10, T0)
    assert told(decision) == [("slack", "firing", "new", "high")]
    for minute, value in enumerate([1, 10, 1], start=1):
        decision, status = evaluate(status, compiled, value, T0 + minute * MIN)
        assert decision.due == []
    assert status.instances[0].state == "Recovering"


def test_an_action_is_due_for_the_firing_instance_once_per_cooldown() -> None:
    compiled = rule(actions={"restartDeployment": {"name": "web"}, "cooldown": "10m"})
    decision, status = evaluate(AlertRuleStatus(), compiled, 10, T0)
    assert decision.act_for is not None and decision.act_for.state == "Firing"
    ran = ActionRecord(time=T0, action="restartDeployment", result="failed")
    status = status.model_copy(update={"actions": [ran]})
    assert evaluate(status, compiled, 10, T0 + 9 * MIN)[0].act_for is None
    assert evaluate(status, compiled, 10, T0 + 10 * MIN)[0].act_for is not None
    assert evaluate(AlertRuleStatus(), rule(), 10, T0)[0].act_for is None  # no actions


handlings = st.sampled_from(["Normal", "Alerting", "KeepLast", "Error"])
specs = st.fixed_dictionaries({
    "for": st.integers(0, 6).map(lambda n: f"{n}m"),
    "keepFiringFor": st.integers(0, 6).map(lambda n: f"{n}m"),
    "noDataState": handlings,
    "errorState": handlings,
})
values = st.sampled_from([10.0, 1.0, None, QueryError("bad_data: parse error")])


@settings(max_examples=150, deadline=None)
@given(spec=specs, script=st.lists(st.tuples(values, st.integers(1, 90), st.booleans()),
                                   max_size=40))
def test_notifications_are_never_duplicated_and_resolutions_follow_problems(spec, script) -> None:
    """The state machine and the planner together, through status, restarting at random:
    each problem episode is notified once per channel (plus repeats), and every resolved
    follows a problem."""
    compiled = rule(**spec)
    status = AlertRuleStatus()
    now = T0
    episodes: set[tuple[str, str, str, datetime | None]] = set()
    last_sent: dict[tuple[str, str], str] = {}
    for value, minutes, restarted in script:
        now += minutes * MIN
        if restarted:
            status = AlertRuleStatus.model_validate(status.to_wire())
        decision, status = evaluate(status, compiled, value, now)
        instances = {i.fingerprint: i for i in decision.instances}
        for due in decision.due:
            instance = instances[due.fingerprint]
            channel = (due.fingerprint, due.channel)
            if due.event == "resolved":
                assert last_sent.get(channel) in ("firing", "error")
                assert instance.state not in ("Firing", "Recovering", "Error")
            else:
                start = instance.firing_since if due.event == "firing" else instance.active_since
                key = (*channel, due.event, start)
                assert (due.reason == "new") == (key not in episodes)
                assert due.reason in ("new", "repeat")
                episodes.add(key)
            last_sent[channel] = due.event
