"""An AlertRule that follows an EscalationPolicy (spec.escalationPolicyRef) instead of inline
`escalateAfter` levels, so a team defines its ladder once.

The policy becomes the rule's ladder in the one escalation model (`core.escalation.Policy`):
its levels at their delays from the instance's firing start, run again `repeat.count` times.
Each level reached adds its channels to spec.channels, with the default timing (repeat after
4 h, resolved notifications on) unless spec.channels names the channel too. A level that pages
a rotation adds the channel of the member on call, as the policy's status names them (the
EscalationPolicy controller keeps `status.onCall` current at handovers). Severity routes and
`ackTimeout` concern Incidents (an alert has no acknowledgement) and are not used here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from runbook_operator.api.common import parse_duration
from runbook_operator.api.escalationpolicy import EscalationPolicySpec, EscalationPolicyStatus
from runbook_operator.core.alertrule.rule import Rule
from runbook_operator.core.escalation import Level, Policy
from runbook_operator.core.notify_plan import ChannelRule


def on_call(status: EscalationPolicyStatus, now: datetime) -> dict[str, str]:
    """Rotation → the member on call at `now`, from the policy's status (a turn that has
    ended names nobody)."""
    return {entry.rotation: entry.member for entry in status.on_call if entry.until > now}


def _member_channels(spec: EscalationPolicySpec) -> dict[tuple[str, str], str]:
    return {(rotation.name, member.name): member.channel for rotation in spec.rotations
            for member in rotation.members if member.channel is not None}


def ladder(spec: EscalationPolicySpec, on_call: Mapping[str, str]) -> Policy:
    """The policy's ladder: each level's channels, plus its rotation's on-call member's."""
    members = _member_channels(spec)
    levels = []
    for level in spec.levels:
        channels = list(level.channels or [])
        member = on_call.get(level.rotation) if level.rotation is not None else None
        paged = members.get((level.rotation or "", member or ""))
        if paged is not None and paged not in channels:
            channels.append(paged)
        levels.append(Level(after=parse_duration(level.after), channels=tuple(channels)))
    repeat = spec.repeat
    return Policy(levels=tuple(levels), repeats=0 if repeat is None else repeat.count,
                  period=timedelta(0) if repeat is None else parse_duration(repeat.every))


def following(rule: Rule, spec: EscalationPolicySpec, on_call: Mapping[str, str]) -> Rule:
    """`rule` escalating along the policy. Every channel the policy may page has a timing, so
    a member paged before a handover still hears that the alert resolved."""
    rules = dict(rule.channel_rules)
    paged = [c for level in spec.levels for c in level.channels or []]
    for name in [*paged, *_member_channels(spec).values()]:
        rules.setdefault(name, ChannelRule(name=name))
    return replace(rule, escalation=ladder(spec, on_call), channel_rules=rules)
