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

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from runbook_operator.api.common import (
    ApiModel,
    GoDuration,
    KindInfo,
    NamedList,
    PrinterColumn,
    Resource,
    ResourceName,
    ResourceStatus,
    age_column,
    cel,
    parse_duration,
    ready_column,
    reason_column,
    validations,
)

IncidentSeverity = Literal["P0", "P1", "P2", "P3"]
MAX_LEVELS = 8
MAX_LEVEL_CHANNELS = 8
MAX_ROTATIONS = 8
MAX_MEMBERS = 50
MAX_REPEATS = 9
HANDOFF_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
#: IANA zone names: letters, digits, `_+-` and `/` between parts (e.g. Europe/Berlin, UTC).
TIME_ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"

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

    name: ResourceName = Field(description="Name levels use to page this rotation.")
    members: NamedList[Member] = Field(
        min_length=1, max_length=MAX_MEMBERS,
        description="In turn order; the first is on call from `start`.")
    turn: GoDuration = Field(
        json_schema_extra=validations(cel("duration(self) >= duration('1m')",
                                          "turn must be at least 1m")),
        description="Length of one member's turn, e.g. 168h for a weekly rotation.")
    start: datetime = Field(description="When the first member's first turn begins (RFC 3339).")
    handoff_time: str | None = Field(
        default=None, pattern=HANDOFF_PATTERN,
        description="Local time of day (HH:MM, in timeZone) at which turns change; by default "
        "the time of day of `start`. Keeps a weekly handover at 09:00 across DST changes.")
    time_zone: str = Field(
        default="UTC", pattern=TIME_ZONE_PATTERN, max_length=64,
        description="IANA time zone of handoffTime, e.g. Europe/Berlin.")


class Level(ApiModel):
    """One rung of the ladder."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(cel(
            "has(self.channels) || has(self.rotation)",
            "a level pages channels or a rotation", field_path=".channels",
            reason="FieldValueRequired"))
    }

    after: GoDuration = Field(
        description="Delay from the start (opening, or a re-trigger) at which this level is "
        "reached; cumulative, strictly increasing across levels (0s: at once).")
    channels: list[ChannelName] | None = Field(
        default=None, max_length=MAX_LEVEL_CHANNELS,
        json_schema_extra={"x-kubernetes-list-type": "set"},
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
    """Run the ladder again while nobody acknowledges (PagerDuty's num_loops)."""

    count: int = Field(ge=1, le=MAX_REPEATS, description="How many more times to run it.")
    every: GoDuration = Field(
        description="Period of the ladder: pass k starts k × every after the start; must be "
        "longer than the last level's delay.")


class SeverityRoute(ApiModel):
    """How incidents of some severities are routed (e.g. P2/P3 only to the team channel)."""

    severities: list[IncidentSeverity] = Field(
        min_length=1, max_length=4, json_schema_extra={"x-kubernetes-list-type": "set"},
        description="The severities this route applies to.")
    channels: list[ChannelName] = Field(
        default_factory=list, max_length=MAX_LEVEL_CHANNELS,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Channels told when such an incident opens and resolves.")
    escalate: bool = Field(
        default=True,
        description="Whether such incidents climb the levels too (false: only these channels).")


class EscalationPolicySpec(ApiModel):
    """The ladder, its repeats, the acknowledgement timeout, severity routes and rotations."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel("self.levels.all(l, !has(l.rotation) || "
                "(has(self.rotations) && self.rotations.exists(r, r.name == l.rotation)))",
                "a level's rotation must name one of spec.rotations", field_path=".levels"),
            cel("self.levels.all(i, self.levels.all(j, self.levels.indexOf(i) >= "
                "self.levels.indexOf(j) || duration(i.after) < duration(j.after)))",
                "levels must have strictly increasing after", field_path=".levels"),
            cel("!has(self.repeat) || duration(self.repeat.every) > "
                "duration(self.levels[size(self.levels) - 1].after)",
                "repeat.every must be longer than the last level's after",
                field_path=".repeat.every"),
        )
    }

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


class EscalationPolicy(Resource):
    """A team's escalation ladder, referenced by Incidents and AlertRules."""

    info = KindInfo(
        kind="EscalationPolicy",
        plural="escalationpolicies",
        short_names=["ep"],
        printer_columns=[
            PrinterColumn(name="Levels", type="string", json_path=".spec.levels[*].after",
                          description="Delays of the levels from the start."),
            PrinterColumn(name="On Call", type="string", json_path=".status.onCall[*].member",
                          description="Who is on call now, per rotation."),
            ready_column(),
            reason_column(),
            age_column(),
        ],
    )

    spec: EscalationPolicySpec = Field(description="The ladder and who it pages.")
    status: EscalationPolicyStatus = Field(
        default_factory=EscalationPolicyStatus,
        description="Observed state, written by the operator.")
