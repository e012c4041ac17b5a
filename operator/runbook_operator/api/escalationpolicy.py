"""EscalationPolicy: who is paged, and when, while an Incident (or a firing AlertRule) is not
acknowledged — defined once per team and referenced by name.

Levels are reached at cumulative delays from the start (the runbooks' L1 0 m → L2 30 m →
L3 1 h → L4 2 h from opening), as in PagerDuty escalation rules; `repeat` runs the ladder again
(PagerDuty's `num_loops`); `ackTimeout` re-triggers an acknowledged incident that is not resolved
in time. A level pages NotificationChannels and, optionally, whoever is on call in one of the
policy's rotations (PagerDuty's schedule layers: ordered members taking turns of a fixed length
from a start, handing over at a time of day in a time zone).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from runbook_operator.api.common import (
    ApiModel,
    GoDuration,
    KindInfo,
    NamedList,
    PrinterColumn,
    Resource,
    ResourceName,
    ResourceStatus,
    SetList,
    cel,
    health_columns,
    parse_duration,
    status_field,
    validations,
    with_rules,
)
from runbook_operator.api.schedule import TimeZone

IncidentSeverity = Literal["P0", "P1", "P2", "P3"]
MAX_LEVELS = 8
MAX_LEVEL_CHANNELS = 8
MAX_ROTATIONS = 8
MAX_MEMBERS = 50
MAX_REPEATS = 9
HANDOFF_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
DAY_SECONDS = 86400
MIN_TURN = timedelta(minutes=1)

ChannelName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)]


class Member(ApiModel):
    """One person in a rotation."""

    name: str = Field(
        min_length=1, max_length=253,
        description="Who this is, as the API server knows them (the username `kubectl auth "
        "whoami` prints), so acknowledgements can be matched to the person paged.")
    channel: ResourceName | None = Field(
        default=None,
        description="A NotificationChannel that reaches this person directly (e.g. their "
        "PagerDuty or email); paged when a level pages the rotation and it is their turn.")


class Rotation(ApiModel):
    """Members taking turns of a fixed length from a start (a PagerDuty schedule layer)."""

    model_config = with_rules(cel(
        "!has(self.handoffTime) || duration(self.turn).getSeconds() % 86400 == 0",
        "handoffTime needs a turn of whole days (24h, 168h, ...)",
        field_path=".handoffTime", reason="FieldValueForbidden"))

    name: ResourceName = Field(description="Name levels use to page this rotation.")
    members: NamedList[Member] = Field(
        min_length=1, max_length=MAX_MEMBERS,
        description="In turn order; the first is on call from `start`.")
    turn: GoDuration = Field(
        json_schema_extra=validations(cel("duration(self) >= duration('1m')",
                                          "turn must be at least 1m")),
        description="Length of one member's turn, e.g. 168h for a weekly rotation. Turns of "
        "whole days follow the wall clock of timeZone (a handover at 09:00 stays at 09:00 "
        "across DST changes); shorter turns are fixed lengths of real time.")
    start: datetime = Field(description="When the first member's first turn begins (RFC 3339).")
    handoff_time: str | None = Field(
        default=None, pattern=HANDOFF_PATTERN,
        description="Local time of day (HH:MM, in timeZone) at which turns change; by default "
        "the time of day of `start`. Keeps a weekly handover at 09:00 across DST changes.")
    time_zone: TimeZone = Field(
        default="UTC",
        description="IANA time zone whose wall clock turns of whole days follow, e.g. "
        "Europe/Berlin.")

    @field_validator("turn")
    @classmethod
    def _turn_at_least_a_minute(cls, turn: str) -> str:
        if parse_duration(turn) < MIN_TURN:
            raise ValueError("turn must be at least 1m")
        return turn

    @model_validator(mode="after")
    def _handoff_with_whole_days(self) -> Rotation:
        whole_days = parse_duration(self.turn).total_seconds() % DAY_SECONDS == 0
        if self.handoff_time is not None and not whole_days:
            raise ValueError("handoffTime needs a turn of whole days (24h, 168h, ...)")
        return self


class Level(ApiModel):
    """One rung of the ladder."""

    model_config = with_rules(cel(
        "(has(self.channels) && size(self.channels) > 0) || has(self.rotation)",
        "a level pages channels or a rotation", field_path=".channels",
        reason="FieldValueRequired"))

    after: GoDuration = Field(
        description="Delay from the start (opening, or a re-trigger) at which this level is "
        "reached; cumulative, strictly increasing across levels (0s: at once).")
    channels: SetList[ChannelName] | None = Field(
        default=None, max_length=MAX_LEVEL_CHANNELS,
        description="NotificationChannels (in this namespace) paged at this level.")
    rotation: ResourceName | None = Field(
        default=None,
        description="A rotation of this policy whose current on-call member is paged (through "
        "their channel, if they have one) and named in every page of this level.")

    @model_validator(mode="after")
    def _pages_someone(self) -> Level:
        if not self.channels and self.rotation is None:
            raise ValueError("a level pages channels or a rotation")
        return self


class Repeat(ApiModel):
    """Run the ladder again while nobody acknowledges (PagerDuty's num_loops), from its first
    level or from a later one (e.g. keep paging the manager without paging on-call again)."""

    count: int = Field(ge=1, le=MAX_REPEATS, description="How many more times to run it.")
    every: GoDuration = Field(
        description="Period of the ladder: pass k starts k × every after the start; must be "
        "longer than the last level's delay.")
    from_level: int = Field(
        default=1, ge=1, le=MAX_LEVELS,
        description="The level (1-based) each repeated pass starts from: the levels before "
        "it are skipped, the others keep their delays within the pass.")


class SeverityRoute(ApiModel):
    """How incidents of some severities are routed (e.g. P2/P3 only to the team channel)."""

    model_config = with_rules(cel(
        "self.escalate || size(self.channels) > 0",
        "a route that does not escalate needs channels (or nobody would be told)",
        field_path=".channels", reason="FieldValueRequired"))

    severities: SetList[IncidentSeverity] = Field(
        min_length=1, max_length=4,
        description="The severities this route applies to.")
    channels: SetList[ChannelName] = Field(
        default_factory=list, max_length=MAX_LEVEL_CHANNELS,
        description="Channels told when such an incident opens and resolves.")
    escalate: bool = Field(
        default=True,
        description="Whether such incidents climb the levels too (false: only these channels).")

    @model_validator(mode="after")
    def _tells_someone(self) -> SeverityRoute:
        if not self.escalate and not self.channels:
            raise ValueError("a route that does not escalate needs channels (or nobody would "
                             "be told)")
        return self


class EscalationPolicySpec(ApiModel):
    """The ladder, its repeats, the acknowledgement timeout, severity routes and rotations."""

    model_config = with_rules(
        cel("self.levels.all(l, !has(l.rotation) || "
            "(has(self.rotations) && self.rotations.exists(r, r.name == l.rotation)))",
            "a level's rotation must name one of spec.rotations", field_path=".levels"),
        # Strictly increasing: exactly i levels are at or before the i-th (1-based).
        cel("self.levels.all(l, self.levels.filter(m, duration(m.after) <= "
            "duration(l.after)).size() == self.levels.indexOf(l) + 1)",
            "levels must have strictly increasing after", field_path=".levels"),
        # Guarded against no levels, which minItems reports (CEL rules run regardless).
        cel("!has(self.repeat) || size(self.levels) == 0 || duration(self.repeat.every) > "
            "duration(self.levels[size(self.levels) - 1].after)",
            "repeat.every must be longer than the last level's after",
            field_path=".repeat.every"),
        cel("!has(self.repeat) || size(self.levels) == 0 || "
            "self.repeat.fromLevel <= size(self.levels)",
            "repeat.fromLevel must name one of the levels", field_path=".repeat.fromLevel"),
        cel("!has(self.routes) || self.routes.all(r, r.severities.all(s, "
            "self.routes.filter(q, s in q.severities).size() == 1))",
            "a severity may be routed by one route only", field_path=".routes"),
    )

    levels: list[Level] = Field(
        min_length=1, max_length=MAX_LEVELS,
        description="The ladder, in increasing `after`.")
    repeat: Repeat | None = Field(
        default=None, description="Run the ladder again while unacknowledged.")
    ack_timeout: GoDuration | None = Field(
        default=None,
        description="An acknowledged incident not resolved within this re-triggers: "
        "escalation starts again from the first level (as PagerDuty does).")
    routes: list[SeverityRoute] = Field(
        default_factory=list, max_length=4,
        description="Per-severity routing; severities without a route climb the levels.")
    rotations: NamedList[Rotation] = Field(
        default_factory=list, max_length=MAX_ROTATIONS,
        description="On-call rotations that levels may page.")

    @model_validator(mode="after")
    def _consistent(self) -> EscalationPolicySpec:
        afters = [parse_duration(level.after) for level in self.levels]
        if afters != sorted(set(afters)):
            raise ValueError("levels must have strictly increasing after")
        if self.repeat is not None and parse_duration(self.repeat.every) <= afters[-1]:
            raise ValueError("repeat.every must be longer than the last level's after")
        if self.repeat is not None and self.repeat.from_level > len(self.levels):
            raise ValueError("repeat.fromLevel must name one of the levels")
        routed = [s for route in self.routes for s in route.severities]
        if len(routed) != len(set(routed)):
            raise ValueError("a severity may be routed by one route only")
        rotations = {rotation.name for rotation in self.rotations}
        if any(level.rotation not in rotations for level in self.levels if level.rotation):
            raise ValueError("a level's rotation must name one of spec.rotations")
        return self


class OnCall(ApiModel):
    """Who is on call in one rotation now, and until when."""

    rotation: str = Field(description="The rotation.")
    member: str = Field(description="The member on call.")
    until: datetime = Field(description="When their turn ends.")


class EscalationPolicyStatus(ResourceStatus):
    """Whether the policy is usable (its channels exist) and who is on call."""

    on_call: list[OnCall] = Field(
        default_factory=list, max_length=MAX_ROTATIONS,
        description="The current on-call member of each rotation (refreshed at handovers).")
    on_call_summary: str | None = Field(
        default=None, description="Who is on call, per rotation, in one line (for kubectl).")
    ladder: str | None = Field(
        default=None,
        description="The levels' delays and the repeats in one line, e.g. 0s → 30m → 1h → 2h.")


class EscalationPolicy(Resource):
    """A team's escalation ladder, referenced by Incidents and AlertRules."""

    info = KindInfo(
        kind="EscalationPolicy",
        plural="escalationpolicies",
        short_names=["ep"],
        printer_columns=[
            PrinterColumn(name="Ladder", type="string", json_path=".status.ladder",
                          description="Delays of the levels from the start, and repeats."),
            PrinterColumn(name="On Call", type="string", json_path=".status.onCallSummary",
                          description="Who is on call now, per rotation."),
            *health_columns(),
        ],
    )

    spec: EscalationPolicySpec = Field(description="The ladder and who it pages.")
    status: EscalationPolicyStatus = status_field(EscalationPolicyStatus)
