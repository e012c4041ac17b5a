"""core.incident.policy: an EscalationPolicy compiled for escalation — ladder, repeats from a
level, routes by severity, rotations and who is on call, every channel it may page."""

from __future__ import annotations

from datetime import timedelta

from runbook_operator.core.incident.policy import Member, Route

from tests.support.incident_core import MIN, T0, policy


def test_the_runbook_policy_compiles_to_its_ladder() -> None:
    compiled = policy(ackTimeout="30m", repeat={"count": 2, "every": "3h", "fromLevel": 2},
                      routes=[{"severities": ["P2", "P3"], "channels": ["team"],
                               "escalate": False}])
    ladder = compiled.ladder
    assert [level.after for level in ladder.levels] == [timedelta(0), 30 * MIN, 60 * MIN,
                                                         120 * MIN]
    assert (ladder.repeats, ladder.period, ladder.repeat_from) == (2, 180 * MIN, 1)
    assert compiled.rotations_by_level == ("primary", None, None, None)
    assert compiled.ack_timeout == 30 * MIN
    assert compiled.route("P3") == Route(("team",), False)
    assert compiled.route("P0") == Route((), True)
    assert compiled.channels() == {"oncall", "sre", "manager", "cto", "team", "alice-pager"}


def test_who_is_on_call_and_until_when() -> None:
    compiled = policy()
    now = compiled.on_call("primary", T0)
    assert now is not None and now.member == Member("alice", "alice-pager")
    assert now.until == T0.replace(day=2, hour=9)
    later = compiled.on_call("primary", now.until)
    assert later is not None and later.member == Member("bob", None)
    assert compiled.on_call("primary", T0 - timedelta(days=30)) is None
