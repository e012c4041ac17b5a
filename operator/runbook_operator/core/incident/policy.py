"""An EscalationPolicy in the core's terms, compiled once per generation: the ladder as a
`core.escalation.Policy`, who each level pages, the acknowledgement timeout, severity routes
and rotations, plus who is on call in a rotation at a moment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from runbook_operator.api.common import parse_duration
from runbook_operator.api.escalationpolicy import EscalationPolicySpec, IncidentSeverity
from runbook_operator.core import escalation
from runbook_operator.core.rotation import Rotation, rotation_of, shift_at


@dataclass(frozen=True)
class Member:
    name: str
    channel: str | None


@dataclass(frozen=True)
class Roster:
    """A rotation with its members."""

    rotation: Rotation
    members: tuple[Member, ...]


@dataclass(frozen=True)
class OnCall:
    """Who is on call in a rotation, until when."""

    rotation: str
    member: Member
    until: datetime


@dataclass(frozen=True)
class Route:
    """Channels told about incidents of some severities, and whether those climb the ladder."""

    channels: tuple[str, ...]
    escalate: bool


@dataclass(frozen=True)
class CompiledPolicy:
    """What escalating an incident needs from one generation of an EscalationPolicy."""

    name: str
    generation: int | None
    ladder: escalation.Policy
    """Levels with their delays and channels, repeats."""
    rotations_by_level: tuple[str | None, ...]
    """The rotation each level pages, by level index."""
    ack_timeout: timedelta | None
    routes: Mapping[str, Route]
    """By severity; severities without a route climb the ladder."""
    rosters: Mapping[str, Roster]

    def route(self, severity: IncidentSeverity) -> Route:
        return self.routes.get(severity, Route(channels=(), escalate=True))

    def on_call(self, rotation: str, at: datetime) -> OnCall | None:
        """The member of `rotation` on call at `at` (None before it starts)."""
        roster = self.rosters[rotation]
        shift = shift_at(roster.rotation, at)
        if shift is None:
            return None
        return OnCall(rotation, roster.members[shift.member], shift.until)

    def channels(self) -> set[str]:
        """Every NotificationChannel the policy may page."""
        names = {c for level in self.ladder.levels for c in level.channels}
        names.update(c for route in self.routes.values() for c in route.channels)
        names.update(m.channel for roster in self.rosters.values() for m in roster.members
                     if m.channel is not None)
        return names


def compile_policy(name: str, generation: int | None,
                   spec: EscalationPolicySpec) -> CompiledPolicy:
    """The compiled form of a validated spec."""
    repeat = spec.repeat
    ladder = escalation.Policy(
        levels=tuple(escalation.Level(after=parse_duration(level.after),
                                      channels=tuple(level.channels or ()))
                     for level in spec.levels),
        repeats=repeat.count if repeat else 0,
        period=parse_duration(repeat.every) if repeat else timedelta(0),
        repeat_from=repeat.from_level - 1 if repeat else 0,
    )
    routes = {severity: Route(tuple(route.channels), route.escalate)
              for route in spec.routes for severity in route.severities}
    rosters = {rotation.name: Roster(rotation_of(rotation), tuple(
        Member(m.name, m.channel) for m in rotation.members)) for rotation in spec.rotations}
    return CompiledPolicy(
        name=name,
        generation=generation,
        ladder=ladder,
        rotations_by_level=tuple(level.rotation for level in spec.levels),
        ack_timeout=parse_duration(spec.ack_timeout) if spec.ack_timeout else None,
        routes=routes,
        rosters=rosters,
    )
