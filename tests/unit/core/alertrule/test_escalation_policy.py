"""core.alertrule.escalation_policy: an AlertRule following an EscalationPolicy escalates along
the policy's ladder in the one escalation model, repeats, and pages the member on call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from runbook_operator.api.alertrule import AlertRuleSpec, AlertRuleStatus
from runbook_operator.api.escalationpolicy import EscalationPolicySpec, EscalationPolicyStatus
from runbook_operator.core.alertrule.decide import Evaluation, decide
from runbook_operator.core.alertrule.escalation_policy import following, ladder, on_call
from runbook_operator.core.alertrule.rule import Rule, compile_rule
from runbook_operator.core.alertrule.status import next_status
from runbook_operator.core.escalation import Level
from runbook_operator.core.notify_plan import ChannelRule, sent_record

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
POLICY = {
    "levels": [{"after": "0s", "channels": ["team-slack"]},
               {"after": "30m", "rotation": "sre"},
               {"after": "1h", "channels": ["manager"], "rotation": "sre"}],
    "rotations": [{"name": "sre", "turn": "168h", "start": "2026-11-30T09:00:00Z",
                   "members": [{"name": "alice", "channel": "alice-pager"},
                               {"name": "bob", "channel": "bob-pager"},
                               {"name": "carol"}]}],
}


def policy(**changes: Any) -> EscalationPolicySpec:
    return EscalationPolicySpec.model_validate({**POLICY, **changes})


def rule() -> Rule:
    return compile_rule(AlertRuleSpec.model_validate({
        "query": "errors", "condition": {"operator": "gt", "threshold": 5},
        "channels": [{"name": "team-slack", "repeatInterval": "1h"}],
        "escalationPolicyRef": {"name": "sre-ladder"}}))


def test_the_ladder_is_the_policys_levels_with_the_on_call_members_channel() -> None:
    built = ladder(policy(), {"sre": "bob"})
    assert built.levels == (
        Level(after=timedelta(0), channels=("team-slack",)),
        Level(after=30 * MIN, channels=("bob-pager",)),
        Level(after=60 * MIN, channels=("manager", "bob-pager")))
    assert built.repeats == 0
    nobody = ladder(policy(), {"sre": "carol"})
    assert nobody.levels[1].channels == () and nobody.levels[2].channels == ("manager",)
    assert ladder(policy(), {}).levels[1].channels == ()


def test_repeat_runs_the_ladder_again() -> None:
    built = ladder(policy(repeat={"count": 2, "every": "2h"}), {})
    assert (built.repeats, built.period, built.steps) == (2, 120 * MIN, 9)
    assert built.deadline(T0, 4) == T0 + 120 * MIN


def test_only_turns_that_have_not_ended_name_someone() -> None:
    status = EscalationPolicyStatus.model_validate({"onCall": [
        {"rotation": "sre", "member": "bob", "until": (T0 + MIN).isoformat()},
        {"rotation": "dba", "member": "dan", "until": T0.isoformat()}]})
    assert on_call(status, T0) == {"sre": "bob"}


def test_every_channel_the_policy_may_page_has_a_timing_and_spec_channels_keep_theirs() -> None:
    followed = following(rule(), policy(), {"sre": "alice"})
    assert followed.channel_rules["team-slack"] == ChannelRule("team-slack", 60 * MIN)
    for name in ("manager", "alice-pager", "bob-pager"):
        assert followed.channel_rules[name] == ChannelRule(name)
    assert followed.channels == ("team-slack",)


def test_a_firing_instance_climbs_the_policys_ladder_one_level_at_a_time() -> None:
    followed = following(rule(), policy(), {"sre": "alice"})
    status = AlertRuleStatus()
    told = []
    for minute in (0, 10, 30, 45, 60, 61):
        now = T0 + minute * MIN
        assert followed.threshold is not None
        evaluation = Evaluation(("shop", "web-5xx"), followed, [({"pod": "a"}, 10.0)],
                                followed.threshold.holds)
        decision = decide(status, evaluation, now)
        told.append(sorted((d.channel, d.reason, d.level) for d in decision.due))
        sent = [sent_record(d, "delivered", now) for d in decision.due]
        status, _ = next_status(status, evaluation, decision, sent, [], 0.01, now, 1)
    assert told == [
        [("team-slack", "new", 1)],
        [],
        [("alice-pager", "new", 2), ("team-slack", "escalated", 2)],
        [],
        [("alice-pager", "escalated", 3), ("manager", "new", 3),
         ("team-slack", "escalated", 3)],
        [],
    ]
