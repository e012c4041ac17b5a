"""controllers.alertrule_policy: the EscalationPolicy an AlertRule follows, read by name and
kept a few seconds; a missing or invalid policy is a reason to stall, never a guess."""

from __future__ import annotations

from datetime import timedelta

from runbook_operator.api.alertrule import AlertRuleSpec
from runbook_operator.controllers.alertrule_policy import FollowedPolicies, Unfollowable
from runbook_operator.core.alertrule.rule import Rule, compile_rule
from tests.support.fakes import FakeCluster

LADDER = {"levels": [{"after": "0s", "channels": ["slack"]},
                     {"after": "30m", "channels": ["pager"]}]}


def rule() -> Rule:
    return compile_rule(AlertRuleSpec.model_validate({
        "query": "errors", "condition": {"operator": "gt", "threshold": 5},
        "escalationPolicyRef": {"name": "sre"}}))


def stored_policy(spec: dict) -> dict:
    return {"apiVersion": "runbook.dev/v1alpha1", "kind": "EscalationPolicy",
            "metadata": {"name": "sre", "namespace": "shop"}, "spec": spec}


def test_a_rule_follows_its_policy_read_once_per_ttl() -> None:
    store, now = FakeCluster(), [0.0]
    store.put(stored_policy(LADDER))
    policies = FollowedPolicies(store, ttl=5.0, clock=lambda: now[0])
    followed = policies.follow("shop", rule())
    assert isinstance(followed, Rule)
    assert [level.after for level in followed.escalation.levels] == [
        timedelta(0), timedelta(minutes=30)]
    now[0] = 4.9
    policies.follow("shop", rule())
    assert store.requests == ["get EscalationPolicy/sre"]
    now[0] = 5.0
    policies.follow("shop", rule())
    assert store.requests == ["get EscalationPolicy/sre"] * 2


def test_a_missing_or_invalid_policy_cannot_be_followed() -> None:
    store = FakeCluster()
    policies = FollowedPolicies(store, ttl=0.0)
    assert policies.follow("shop", rule()) == Unfollowable(
        "EscalationPolicyNotFound", "EscalationPolicy 'sre' not found in shop")
    store.put(stored_policy({"levels": [{"after": "1h", "channels": ["a"]},
                                        {"after": "5m", "channels": ["b"]}]}))
    refused = policies.follow("shop", rule())
    assert isinstance(refused, Unfollowable) and refused.reason == "EscalationPolicyInvalid"
    assert "strictly increasing" in refused.message
