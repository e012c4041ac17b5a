"""Incident: an incident as a resource, as the runbooks run one — severity P0–P3, the lifecycle
open → investigating → identified → monitoring → resolved, a timeline, escalation until someone
acknowledges, a postmortem on resolution, MTTA and MTTR.

People own `spec` (status, commander, notes, the acknowledgement; `kubectl runbook incident`
writes them and records who acted); the operator owns `status` (when things happened, where
escalation stands, what was sent). Acknowledgement is kept apart from the lifecycle status, as
PagerDuty keeps it, and stops escalation at once. An Incident opened by a source (a firing
AlertRule, a failed BackupPolicy, an Alertmanager group) names it in `spec.source` and is never
owned by it: deleting the source keeps the incident and its history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from runbook_operator.api.common import (
    ApiModel,
    KindInfo,
    NameLimit,
    NotificationLog,
    PrinterColumn,
    Resource,
    ResourceName,
    ResourceStatus,
    SetList,
    cel,
    health_columns,
    status_field,
    validations,
)
from runbook_operator.api.escalationpolicy import IncidentSeverity

Lifecycle = Literal["Open", "Investigating", "Identified", "Monitoring", "Resolved"]
TimelineEvent = Literal[
    "Opened", "StatusChanged", "Acknowledged", "Escalated", "Notified", "NoteAdded",
    "Assigned", "AlertsChanged", "Retriggered", "Resolved", "Reopened", "SourceRecovered",
    "SeverityChanged", "PolicyChanged", "Routed", "PostmortemWritten",
]
MAX_NOTES = 100
MAX_SERVICES = 32
TIMELINE_LIMIT = 50
NOTIFICATION_LOG_LIMIT = 100
MAX_ALERTS = 50
MAX_RELATED = 32
USERNAME_MAX = 253
TIMELINE_SUFFIX = "-timeline"
POSTMORTEM_SUFFIX = "-postmortem"
#: The incident's ConfigMaps add a suffix to its name, and ConfigMap names hold 253 characters.
MAX_NAME_LENGTH = 253 - max(len(TIMELINE_SUFFIX), len(POSTMORTEM_SUFFIX))
NAME_TOO_LONG = (f"name must be at most {MAX_NAME_LENGTH} characters (its ConfigMaps add "
                 f"'{POSTMORTEM_SUFFIX}')")


class PolicyRef(ApiModel):
    """An EscalationPolicy in this namespace."""

    name: ResourceName = Field(description="Name of the EscalationPolicy.")


class IncidentSource(ApiModel):
    """What opened the incident; one open incident per source fingerprint."""

    kind: str = Field(
        min_length=1, max_length=63, pattern=r"^[A-Z][A-Za-z0-9]*$",
        description="AlertRule, BackupPolicy, CanaryRollout, Alertmanager, or Manual.")
    name: str = Field(
        default="", max_length=253,
        description="The source object in this namespace (an Alertmanager receiver for "
        "Alertmanager).")
    fingerprint: str = Field(
        default="", max_length=255,
        description="What the source is about (an alert instance, a policy's failure, an "
        "Alertmanager groupKey's hash): the dedup key.")


class Impact(ApiModel):
    """Who and what is affected."""

    services: SetList[str] = Field(
        default_factory=list, max_length=MAX_SERVICES,
        description="Affected services.")
    users_affected: int | None = Field(
        default=None, ge=0, description="Estimated number of users affected.")
    summary: str = Field(default="", max_length=1024, description="The impact in a sentence.")


class Note(ApiModel):
    """A note in the incident's record, signed by whoever wrote it."""

    at: datetime = Field(description="When it was written.")
    by: str = Field(min_length=1, max_length=USERNAME_MAX,
                    description="Who wrote it (their username; admission checks it).")
    text: str = Field(min_length=1, max_length=4096, description="The note.")


class Acknowledgement(ApiModel):
    """Someone has taken the incident: escalation stops."""

    by: str = Field(min_length=1, max_length=USERNAME_MAX,
                    description="Who acknowledged (their username; admission checks it).")
    at: datetime = Field(description="When.")


class IncidentSpec(ApiModel):
    """What people know and decide about the incident."""

    title: str = Field(min_length=1, max_length=256, description="One line: what is wrong.")
    description: str = Field(default="", max_length=8192, description="Details.")
    severity: IncidentSeverity = Field(
        description="P0 (critical, everyone) to P3 (low): decides routing and escalation.")
    status: Lifecycle = Field(
        default="Open",
        description="Open, Investigating, Identified, Monitoring or Resolved (the Statuspage "
        "lifecycle), set by people.")
    commander: str | None = Field(
        default=None, max_length=USERNAME_MAX, description="Who leads the response.")
    escalation_policy_ref: PolicyRef | None = Field(
        default=None, description="Who is paged, and when, until someone acknowledges.")
    impact: Impact | None = Field(default=None, description="Who and what is affected.")
    notes: list[Note] = Field(
        default_factory=list, max_length=MAX_NOTES,
        description="Notes, oldest first; append only.")
    source: IncidentSource | None = Field(
        default=None,
        json_schema_extra=validations(cel("self == oldSelf", "source is immutable")),
        description="What opened the incident (absent: opened by hand).")
    acknowledgement: Acknowledgement | None = Field(
        default=None, description="Set when someone takes the incident; stops escalation.")
    resolve_when_source_recovers: bool = Field(
        default=False,
        description="Resolve automatically when the source recovers (recorded in the "
        "timeline); otherwise people resolve it.")


class IncidentAlert(ApiModel):
    """One alert of the source (an AlertRule instance, an Alertmanager alert)."""

    fingerprint: str = Field(max_length=255, description="The alert's fingerprint.")
    status: Literal["firing", "resolved"] = Field(description="firing or resolved.")
    labels: dict[str, str] = Field(default_factory=dict, description="The alert's labels.")
    starts_at: datetime | None = Field(default=None, description="When it started firing.")
    ends_at: datetime | None = Field(default=None, description="When it resolved.")


class EscalationState(ApiModel):
    """Where the incident stands on its policy's ladder; every deadline derives from these
    times, so a restarted operator neither skips nor repeats a page."""

    started_at: datetime = Field(
        description="When this climb began (opening, re-trigger, reopening, or a severity "
        "that starts escalating).")
    climbing: bool = Field(
        default=True,
        description="Whether the incident climbs the ladder (false: its severity's route "
        "only tells the route's channels).")
    step: int = Field(default=0, ge=0, description="Steps notified, counting every pass.")
    level: int = Field(default=0, ge=0, description="The level of the newest step (1-based).")
    next_deadline: datetime | None = Field(
        default=None,
        description="When escalation acts next: the next level, or the re-trigger of an "
        "acknowledgement not resolved within ackTimeout; none when nothing is due.")
    policy_generation: int | None = Field(
        default=None, description="metadata.generation of the EscalationPolicy followed.")
    on_call: str | None = Field(
        default=None, description="Who was on call when the newest level paged a rotation.")
    retriggers: int = Field(
        default=0, ge=0, description="Climbs started again after the first (re-triggers).")
    expired_acknowledgement: Acknowledgement | None = Field(
        default=None,
        description="The acknowledgement whose ackTimeout re-triggered this climb (or that "
        "was withdrawn): it no longer stops escalation; a new acknowledgement does.")


class TimelineEntry(ApiModel):
    """One thing that happened, in order; the newest entries in status, all in a ConfigMap."""

    time: datetime = Field(description="When it happened.")
    event: TimelineEvent = Field(description="What kind of thing happened.")
    by: str | None = Field(default=None, max_length=USERNAME_MAX,
                           description="Who did it (absent: the operator).")
    message: str = Field(default="", max_length=1024, description="What happened.")


class RelatedObject(ApiModel):
    """An object the incident concerns (the source, a rolled-back canary, a backup Job)."""

    api_version: str = Field(max_length=253, description="Its apiVersion.")
    kind: str = Field(max_length=63, description="Its kind.")
    name: str = Field(max_length=253, description="Its name, in this namespace.")


class IncidentStatus(ResourceStatus):
    """What the operator observed and did; conditions Acknowledged and Resolved besides the
    kstatus ones."""

    phase: Lifecycle | None = Field(
        default=None, description="The lifecycle status acted on (Resolved also when the "
        "source recovered and spec.resolveWhenSourceRecovers).")
    severity: IncidentSeverity | None = Field(
        default=None, description="The severity acted on (routing and escalation).")
    commander: str | None = Field(
        default=None, max_length=USERNAME_MAX, description="The commander last recorded.")
    notes_recorded: int = Field(
        default=0, ge=0, description="Notes of spec.notes already in the timeline.")
    source_recovered_at: datetime | None = Field(
        default=None,
        description="When the source reported recovery (written by whatever opened the "
        "incident; cleared when it fires again). With spec.resolveWhenSourceRecovers the "
        "incident is resolved then.")
    opened_at: datetime | None = Field(default=None, description="When it opened.")
    acknowledged_at: datetime | None = Field(default=None, description="When acknowledged.")
    acknowledged_by: str | None = Field(default=None, description="Who acknowledged.")
    resolved_at: datetime | None = Field(default=None, description="When resolved.")
    mtta_seconds: float | None = Field(
        default=None, ge=0, description="Time to acknowledge, from opening.")
    mttr_seconds: float | None = Field(
        default=None, ge=0, description="Time to resolve, from opening.")
    escalation: EscalationState | None = Field(
        default=None, description="Where escalation stands.")
    timeline: list[TimelineEntry] = Field(
        default_factory=list, max_length=TIMELINE_LIMIT,
        description=f"The newest {TIMELINE_LIMIT} timeline entries, oldest first.")
    timeline_total: int = Field(default=0, ge=0, description="Entries in the whole timeline.")
    timeline_ref: str | None = Field(
        default=None, description="The ConfigMap that holds the whole timeline.")
    notifications: NotificationLog = Field(
        default_factory=list, max_length=NOTIFICATION_LOG_LIMIT,
        description="The last notification per channel and step, newest first: what keeps "
        "pages from repeating across restarts.")
    postmortem_ref: str | None = Field(
        default=None, description="The ConfigMap holding the postmortem (on resolution).")
    alerts: list[IncidentAlert] = Field(
        default_factory=list, max_length=MAX_ALERTS,
        description=f"The source's alerts (up to {MAX_ALERTS}).")
    truncated_alerts: int = Field(
        default=0, ge=0, description="Alerts left out of `alerts` (or truncated by the sender).")
    related: list[RelatedObject] = Field(
        default_factory=list, max_length=MAX_RELATED, description="Objects it concerns.")


class Incident(Resource):
    """An incident: severity, lifecycle, escalation, timeline, postmortem."""

    info = KindInfo(
        kind="Incident",
        plural="incidents",
        short_names=["inc"],
        printer_columns=[
            PrinterColumn(name="Severity", type="string", json_path=".spec.severity",
                          description="P0 to P3."),
            PrinterColumn(name="Status", type="string", json_path=".status.phase",
                          description="Lifecycle status."),
            PrinterColumn(name="Level", type="integer", json_path=".status.escalation.level",
                          description="Escalation level reached."),
            PrinterColumn(name="Acknowledged", type="string",
                          json_path=".status.acknowledgedBy",
                          description="Who acknowledged it."),
            PrinterColumn(name="Title", type="string", json_path=".spec.title",
                          description="What is wrong.", priority=1),
            *health_columns(),
        ],
        name_limit=NameLimit(length=MAX_NAME_LENGTH, message=NAME_TOO_LONG),
    )

    spec: IncidentSpec = Field(description="What people know and decide.")
    status: IncidentStatus = status_field(IncidentStatus)


#: The selectable field of every kind that takes an IncidentTrigger as `spec.incident`: its
#: severity is required, so it is empty exactly when the object asks for no incidents
#: (`kubectl get alertrules --field-selector spec.incident.severity=P1`).
INCIDENT_SEVERITY_FIELD = "spec.incident.severity"
#: The field selector of the objects that ask for incidents.
ASKS_FOR_INCIDENTS = f"{INCIDENT_SEVERITY_FIELD}!="


class IncidentTrigger(ApiModel):
    """On a source (AlertRule, BackupPolicy, CanaryRollout): open an Incident when it fails."""

    severity: IncidentSeverity = Field(description="Severity of the incidents it opens.")
    escalation_policy_ref: PolicyRef | None = Field(
        default=None, description="The policy its incidents follow.")
    resolve_when_recovered: bool = Field(
        default=False, description="Resolve the incident when the source recovers.")
