"""core.alertrule.quiet: a rule that stays Normal or keeps firing with nothing due is answered
without deciding, and only when deciding would have changed nothing."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from runbook_operator.api.alertrule import ActionRecord, AlertRuleSpec, AlertRuleStatus
from runbook_operator.core.alertrule.decide import Evaluation, decide
from runbook_operator.core.alertrule.quiet import Quiet, Unchanged, labels_key, recall, remember
from runbook_operator.core.alertrule.rule import Rule, compile_rule
from runbook_operator.core.alertrule.state import QueryError
from runbook_operator.core.alertrule.status import Heartbeat, next_status, status_write_due
from runbook_operator.core.notify_plan import sent_record

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
KEY = ("shop", "web-5xx")
#: A heartbeat 4 minutes after T0, on the 15-s grid the tests evaluate on.
HEARTBEAT = Heartbeat(timedelta(minutes=4), int(T0.timestamp()) % 240)


def compiled(**spec: Any) -> Rule:
    return compile_rule(AlertRuleSpec.model_validate({
        "query": "errors", "condition": {"operator": "gt", "threshold": 0.05}, **spec}))


RULE = compiled(channels=[{"name": "oncall"}])


def evaluation(samples: Any, rule: Rule = RULE) -> Evaluation:
    assert rule.threshold is not None
    return Evaluation(KEY, rule, samples, rule.threshold.holds)


class Simulated:
    """One rule evaluated again and again as the operator does: status written (a new
    resourceVersion) when it is due, the quiet evaluation remembered when it is not, and the
    remembered one recalled whenever it answers."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.status = AlertRuleStatus()
        self.version = 1
        self.quiet: Quiet | None = None

    def evaluate(self, samples: Any, now: datetime) -> tuple[Unchanged | None, bool, Any]:
        """What recall said, whether deciding would have written or sent anything, and the
        status deciding leads to."""
        observed = evaluation(samples, self.rule)
        recalled = recall(self.quiet, str(self.version), observed, now)
        decision = decide(self.status, observed, now)
        sent = [sent_record(d, "delivered", now) for d in decision.due]
        actions = self.status.actions
        if decision.act_for is not None:
            actions = [ActionRecord(time=now, action="webhook", result="succeeded"), *actions]
        new, _ = next_status(self.status, observed, decision, sent, actions, 0.01, now, 1)
        changed = decision.has_effects or status_write_due(self.status, new, now, HEARTBEAT)
        if changed:
            self.status = AlertRuleStatus.model_validate(new.to_wire())
            self.version += 1
        elif recalled is None:
            self.quiet = remember(str(self.version), self.status, observed, decision, HEARTBEAT,
                                  now)
        return recalled, changed, new


def test_a_normal_rule_is_recalled_with_its_new_value_until_its_heartbeat() -> None:
    rule = Simulated(RULE)
    assert rule.evaluate([({"pod": "a"}, 0.01)], T0)[1]  # the first evaluation writes
    assert rule.evaluate([({"pod": "a"}, 0.02)], T0 + timedelta(seconds=15))[0] is None
    recalled, changed, _ = rule.evaluate([({"__name__": "errors", "pod": "a"}, 0.03)],
                                         T0 + timedelta(seconds=30))
    assert recalled == Unchanged("Normal", "0.03") and not changed
    recalled, changed, _ = rule.evaluate([({"pod": "a"}, 0.04)], HEARTBEAT.after(T0))
    assert recalled is None and changed


def test_what_could_change_a_decision_is_never_recalled() -> None:
    rule = Simulated(RULE)
    rule.evaluate([({"pod": "a"}, 0.01), ({"pod": "b"}, 0.01)], T0)
    rule.evaluate([({"pod": "a"}, 0.01), ({"pod": "b"}, 0.01)], T0 + timedelta(seconds=15))
    now = T0 + timedelta(seconds=30)
    quiet = rule.quiet
    assert quiet is not None
    for samples in ([({"pod": "a"}, 0.5), ({"pod": "b"}, 0.01)],  # the condition holds
                    [({"pod": "a"}, 0.01)],  # a series is gone
                    [({"pod": "a"}, 0.01), ({"pod": "c"}, 0.01)],  # another series
                    [({"pod": "a"}, 0.01), ({"pod": "a", "__name__": "x"}, 0.01)],  # twice
                    [], QueryError("timeout")):
        assert recall(quiet, "2", evaluation(samples), now) is None
    steady = [({"pod": "b"}, 0.02), ({"pod": "a"}, 0.02)]  # in another order
    assert recall(quiet, "2", evaluation(steady), now) == Unchanged("Normal", "0.02")
    assert recall(quiet, "3", evaluation(steady), now) is None  # status written meanwhile
    assert recall(quiet, "2", evaluation(steady, compiled()), now) is None  # spec changed


SECONDS = timedelta(seconds=1)


def firing_until_due(rule: Rule) -> datetime:
    """Evaluate a rule whose series `a` keeps firing (and `b` stays Normal) every 15 s until
    deciding is needed again; when that was."""
    simulated = Simulated(rule)
    samples = [({"pod": "a"}, 0.5), ({"pod": "b"}, 0.01)]
    assert simulated.evaluate(samples, T0)[1]  # fires: notified and written
    assert simulated.evaluate(samples, T0 + 15 * SECONDS)[0] is None  # decided, remembered
    now = T0 + 30 * SECONDS
    while (outcome := simulated.evaluate(samples, now))[0] is not None:
        assert outcome[0] == Unchanged("Firing", "0.5") and not outcome[1]
        now += 15 * SECONDS
    assert outcome[1]  # what ended the recall needed deciding
    return now


def test_a_firing_rule_is_recalled_until_something_is_due() -> None:
    assert firing_until_due(compiled(channels=[{"name": "oncall"}])) == HEARTBEAT.after(T0)
    repeating = [{"name": "oncall", "repeatInterval": "1m"}]
    assert firing_until_due(compiled(channels=repeating)) == T0 + 60 * SECONDS
    escalating = {"escalateAfter": [{"after": "45s", "severity": "critical"}]}
    assert firing_until_due(compiled(channels=[{"name": "oncall"}], **escalating)) == (
        T0 + 45 * SECONDS)
    acting = {"actions": {"cooldown": "2m", "restartDeployment": {"name": "web"}}}
    assert firing_until_due(compiled(channels=[{"name": "oncall"}], **acting)) == (
        T0 + 120 * SECONDS)


def test_a_memo_holds_one_copy_of_each_series_key() -> None:
    for values in ((0.5,), (0.5, 0.01)):
        rule = Simulated(RULE)
        samples = [({"__name__": "errors", "pod": pod}, v) for pod, v in zip("ab", values)]
        rule.evaluate(samples, T0)
        rule.evaluate(samples, T0 + 15 * SECONDS)
        assert rule.quiet is not None and rule.quiet.firing == {(("pod", "a"),)}
        kept = {id(key) for key in rule.quiet.series}
        assert {id(key) for key in rule.quiet.firing} <= kept and id(rule.quiet.shown) in kept
        if len(values) == 1:
            assert rule.quiet.firing is rule.quiet.series


def test_a_firing_rule_is_not_recalled_when_another_series_holds_or_one_clears() -> None:
    rule = Simulated(RULE)
    samples = [({"pod": "a"}, 0.5), ({"pod": "b"}, 0.01)]
    rule.evaluate(samples, T0)
    rule.evaluate(samples, T0 + 15 * SECONDS)
    now = T0 + 30 * SECONDS
    assert rule.quiet is not None
    for changed in ([({"pod": "a"}, 0.01), ({"pod": "b"}, 0.01)],
                    [({"pod": "a"}, 0.5), ({"pod": "b"}, 0.5)]):
        assert recall(rule.quiet, "2", evaluation(changed), now) is None
    assert recall(rule.quiet, "2", evaluation(samples[::-1]), now) == Unchanged("Firing", "0.5")


def test_only_a_quiet_evaluation_is_remembered() -> None:
    assert labels_key({"b": "2", "__name__": "x", "a": "1"}) == (("a", "1"), ("b", "2"))
    rule = Simulated(compiled(**{"for": "1m"}))
    rule.evaluate([({"pod": "a"}, 0.5)], T0)
    rule.evaluate([({"pod": "a"}, 0.5)], T0 + timedelta(seconds=15))
    assert rule.quiet is None  # Pending: time alone moves it on
    rule = Simulated(RULE)
    rule.evaluate([], T0)
    rule.evaluate([], T0 + timedelta(seconds=15))
    assert rule.quiet is None  # no data
    rule = Simulated(RULE)
    rule.evaluate([({"pod": "a"}, 0.5), ({"pod": "b"}, 0.01)], T0)
    rule.evaluate([({"pod": "b"}, 0.01)], T0 + timedelta(seconds=15))  # a resolves, kept
    assert not rule.evaluate([({"pod": "b"}, 0.01)], T0 + timedelta(seconds=30))[1]
    assert rule.quiet is None  # the resolved instance is dropped after a while


#: The series a query returns, mostly the same ones with values that mostly do not hold, one
#: interval apart (as most rules are evaluated), sometimes others, twice the same labels, none,
#: or an error, and sometimes late or early.
LAYOUTS = [[{"pod": "a"}, {"pod": "b"}]] * 12 + [
    [{"pod": "a"}], [{"__name__": "errors", "pod": "a"}, {"pod": "c"}],
    [{"pod": "a"}, {"__name__": "errors", "pod": "a"}], [],
]
VALUES = [0.01, 0.02] * 4 + [0.0, 0.04, 0.05, 0.06, 1.0, math.nan]


def observed(layout: list[dict[str, str]] | None) -> st.SearchStrategy[Any]:
    if layout is None:
        return st.just(QueryError("timeout"))
    return st.lists(st.sampled_from(VALUES), min_size=len(layout), max_size=len(layout)).map(
        lambda values: list(zip(layout, values, strict=True)))


observations = st.sampled_from([*LAYOUTS, None]).flatmap(observed)
#: An observation, or the previous one again (None) for the long steady runs in which
#: repeats, escalation steps and cooldowns come due.
steps = st.lists(st.tuples(st.sampled_from([15] * 6 + [1, 14, 16, 30, 61, 300]),
                           st.one_of(st.none(), st.none(), observations)),
                 min_size=1, max_size=40)
LADDERS = [[], [{"after": "45s", "severity": "critical"}],
           [{"after": "30s", "channels": [{"name": "pager"}]}, {"after": "2m", "severity": "high"}]]
ACTIONS = [{}, {"actions": {"cooldown": "1m", "restartDeployment": {"name": "web"}}}]
rules = st.builds(
    lambda pending, keep, no_data, error, resolved, operator, repeat, ladder, actions: compiled(
        **{"for": pending, "keepFiringFor": keep, "noDataState": no_data, "errorState": error,
           "channels": [{"name": "oncall", "sendResolved": resolved, "repeatInterval": repeat}],
           "condition": {"operator": operator, "threshold": 0.05}, "interval": "15s",
           "escalateAfter": ladder, **actions}),
    st.sampled_from(["0s", "15s", "1m"]), st.sampled_from(["0s", "30s"]),
    st.sampled_from(["Normal", "Alerting", "KeepLast", "Error"]),
    st.sampled_from(["Normal", "Alerting", "KeepLast", "Error"]), st.booleans(),
    st.sampled_from(["gt", "ge", "lt", "ne", "eq"]), st.sampled_from(["4h", "1m", "45s"]),
    st.sampled_from(LADDERS), st.sampled_from(ACTIONS),
)


@settings(max_examples=500, deadline=None)
@given(rules, steps)
def test_a_recalled_evaluation_is_what_deciding_gives(rule: Rule, steps: list[Any]) -> None:
    """Whenever recall answers, deciding would have written, sent and run nothing, and shown
    the same state and value."""
    simulated = Simulated(rule)
    now = T0
    samples: Any = []
    for seconds, observation in steps:
        now += timedelta(seconds=seconds)
        samples = samples if observation is None else observation
        recalled, changed, new = simulated.evaluate(samples, now)
        if recalled is not None:
            assert not changed
            assert (new.state, new.last_value) == (recalled.state, recalled.last_value)
