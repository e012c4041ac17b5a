"""core.escalationpolicy: a policy is Ready when every channel it names exists and every level
reaches someone, Stalled with the names otherwise; who is on call and when that changes."""

from __future__ import annotations

from runbook_operator.api.escalationpolicy import EscalationPolicyStatus, OnCall
from runbook_operator.core.escalationpolicy import invalid, judge, unreachable_levels

from tests.support.incident_core import T0, policy

CHANNELS = {"oncall", "sre", "manager", "cto", "alice-pager"}


def test_a_policy_whose_channels_exist_is_ready_and_shows_who_is_on_call() -> None:
    judged = judge(policy(), EscalationPolicyStatus(), CHANNELS | {"unrelated"}, T0)
    assert (judged.outcome.reason, judged.outcome.message) == (
        "ChannelsFound", "4 level(s), 5 channel(s) found")
    assert judged.status.on_call == [OnCall(rotation="primary", member="alice",
                                            until=T0.replace(day=2, hour=9))]
    assert judged.next_handover == T0.replace(day=2, hour=9)
    assert judged.status.observed_generation == 1
    assert judged.status.on_call_summary == "alice (primary)"
    assert judged.status.ladder == "0s → 30m → 1h → 2h"
    repeated = policy(repeat={"count": 2, "every": "3h30m", "fromLevel": 2})
    assert judge(repeated, EscalationPolicyStatus(), CHANNELS, T0).status.ladder == (
        "0s → 30m → 1h → 2h, 2 more from L2 every 3h30m")


def test_missing_channels_are_named() -> None:
    judged = judge(policy(), EscalationPolicyStatus(), {"oncall", "sre"}, T0)
    assert judged.outcome.reason == "ChannelsNotFound"
    assert judged.outcome.message == ("NotificationChannels not found: alice-pager, cto, "
                                      "manager; pages to them fail until they exist")
    stalled = next(c for c in judged.status.conditions if c.type == "Stalled")
    assert stalled.status == "True"


def test_a_level_paging_only_a_rotation_with_members_without_channels_reaches_nobody() -> None:
    rotation = {"name": "primary", "turn": "24h", "start": "2026-01-01T00:00:00Z",
                "members": [{"name": "alice", "channel": "alice-pager"}, {"name": "bob"},
                            {"name": "carol"}]}
    lonely = policy([{"after": "0s", "rotation": "primary"}], rotations=[rotation])
    assert unreachable_levels(lonely) == [
        "L1 pages only rotation primary, and bob, carol have no channel"]
    judged = judge(lonely, EscalationPolicyStatus(), {"alice-pager"}, T0)
    assert judged.outcome.reason == "NobodyPaged"


def test_a_policy_without_rotations_has_no_handover_and_an_invalid_one_is_stalled() -> None:
    plain = policy([{"after": "0s", "channels": ["oncall"]}])
    assert judge(plain, EscalationPolicyStatus(), {"oncall"}, T0).next_handover is None
    judged = invalid(EscalationPolicyStatus(), "spec.levels: Field required", 3, T0)
    status = judged.status
    assert judged.next_handover is None
    stalled = next(c for c in status.conditions if c.type == "Stalled")
    assert (stalled.reason, stalled.message, status.observed_generation) == (
        "InvalidSpec", "spec.levels: Field required", 3)
