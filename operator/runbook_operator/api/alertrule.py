"""AlertRule: a PromQL threshold (or an IsolationForest anomaly detector) evaluated on an
interval, one alert instance per series, with notifications, escalation and opt-in actions.

Semantics follow Prometheus alerting rules (`for`, `keepFiringFor`, one instance per series) and
Grafana alerting (`noDataState`, `errorState`). Every time the state machine depends on lives in
status, so an operator restart neither resets `for` nor re-sends a notification.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from runbook_operator.api.common import (
    ApiModel,
    Duration,
    GoDuration,
    KindInfo,
    NamedList,
    NotificationLog,
    PrinterColumn,
    Resource,
    ResourceName,
    ResourceStatus,
    SecretKeyRef,
    cel,
    health_columns,
    parse_duration,
    status_field,
    validations,
    with_rules,
)
from runbook_operator.api.incident import INCIDENT_SEVERITY_FIELD, IncidentTrigger, PolicyRef
from runbook_operator.api.notificationchannel import HTTP_URL_PATTERN, Severity

Operator = Literal["gt", "ge", "lt", "le", "eq", "ne"]
#: How a series with no data, or a failed query, is treated (Grafana's options).
Handling = Literal["Normal", "Alerting", "KeepLast", "Error"]
InstanceState = Literal["Normal", "Pending", "Firing", "Recovering", "NoData", "Error"]

MAX_INSTANCES = 50
MAX_CHANNELS = 8
MAX_ESCALATION_LEVELS = 4
MAX_ESCALATION_CHANNELS = 4
NOTIFICATION_LOG_LIMIT = 200
ACTION_LOG_LIMIT = 20
MIN_INTERVAL_SECONDS = 5

LABEL_NAME_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
Interval = GoDuration

_LABEL_KEYS_RULE = cel(f"self.all(k, k.matches('{LABEL_NAME_PATTERN}'))",
                       "label names must match [a-zA-Z_][a-zA-Z0-9_]*")
#: Labels the operator sets on every alert itself (alertname is the rule's name, severity is
#: spec.severity as escalation raises it): spec.labels may not set them.
RESERVED_LABELS = ("alertname", "namespace", "kind", "severity")
_RESERVED_LABELS_MESSAGE = (f"labels may not set {', '.join(RESERVED_LABELS)}: the operator "
                            "sets them (use spec.severity for the severity)")
_RESERVED_LABELS_RULE = cel(
    "self.all(k, !(k in [" + ", ".join(f"'{k}'" for k in RESERVED_LABELS) + "]))",
    _RESERVED_LABELS_MESSAGE)


class ThresholdCondition(ApiModel):
    """Compares each series' value with a threshold as PromQL does: a NaN value satisfies
    `ne` and no other operator."""

    operator: Operator = Field(description="gt, ge, lt, le, eq or ne (value OP threshold).")
    threshold: float = Field(description="The number each series' value is compared with.")


class ChannelRef(ApiModel):
    """A NotificationChannel in this namespace and how often it hears about an alert."""

    name: ResourceName = Field(description="Name of the NotificationChannel.")
    repeat_interval: Duration = Field(
        default="4h",
        description="Re-send still-firing alerts after this long, as Alertmanager's "
        "repeat_interval: a webhook channel re-sends the rule's group of alerts as one message.",
    )
    send_resolved: bool = Field(
        default=True, description="Also notify when the alert resolves."
    )


class EscalationLevel(ApiModel):
    """A step taken once when an alert has been firing for `after`."""

    model_config = with_rules(
        cel("has(self.channels) || has(self.severity)",
            "an escalation level adds channels or sets a severity"),
    )

    after: Duration = Field(description="Firing time after which this level applies.")
    channels: NamedList[ChannelRef] | None = Field(
        default=None,
        max_length=MAX_ESCALATION_CHANNELS,
        description="Channels notified from this level on, in addition to spec.channels.",
    )
    severity: Severity | None = Field(
        default=None, description="Severity the alert is raised to from this level on."
    )

    @model_validator(mode="after")
    def _does_something(self) -> EscalationLevel:
        if self.channels is None and self.severity is None:
            raise ValueError("an escalation level adds channels or sets a severity")
        return self


class ScaleDeployment(ApiModel):
    """Scale a Deployment in this namespace by a step, within bounds."""

    model_config = with_rules(
        cel("self.min <= self.max", "min must not exceed max", ".min", "FieldValueInvalid"),
        cel("self.by != 0", "by must not be 0", ".by", "FieldValueInvalid"),
    )

    name: ResourceName = Field(description="Name of the Deployment.")
    by: int = Field(ge=-100, le=100, description="Replicas to add (negative to remove).")
    min: int = Field(default=0, ge=0, le=10000, description="Never scale below this.")
    max: int = Field(ge=0, le=10000, description="Never scale above this.")

    @model_validator(mode="after")
    def _bounds(self) -> ScaleDeployment:
        if self.min > self.max:
            raise ValueError("min must not exceed max")
        if self.by == 0:
            raise ValueError("by must not be 0")
        return self


class RestartDeployment(ApiModel):
    """Rollout-restart a Deployment in this namespace (as `kubectl rollout restart`)."""

    name: ResourceName = Field(description="Name of the Deployment.")


class WebhookAction(ApiModel):
    """POST the alert to a URL held in a Secret."""

    url_secret_ref: SecretKeyRef = Field(description="Secret key holding the URL.")


_ACTION_KINDS = ("scaleDeployment", "restartDeployment", "webhook")


class Actions(ApiModel):
    """Automated remediation when an instance starts firing: opt-in, at most once per cooldown."""

    model_config = with_rules(
        cel(" || ".join(f"has(self.{k})" for k in _ACTION_KINDS),
            "set at least one of scaleDeployment, restartDeployment, webhook"),
    )

    scale_deployment: ScaleDeployment | None = Field(
        default=None, description="Scale a Deployment by a step within min and max.")
    restart_deployment: RestartDeployment | None = Field(
        default=None, description="Rollout-restart a Deployment.")
    webhook: WebhookAction | None = Field(default=None, description="Call a webhook.")
    cooldown: Duration = Field(
        default="10m", description="Minimum time between two runs of the actions.")

    @model_validator(mode="after")
    def _at_least_one(self) -> Actions:
        if not (self.scale_deployment or self.restart_deployment or self.webhook):
            raise ValueError("set at least one of scaleDeployment, restartDeployment, webhook")
        return self


class PrometheusSource(ApiModel):
    """Which Prometheus answers the queries; absent fields use the operator's default."""

    url: str | None = Field(
        default=None, pattern=HTTP_URL_PATTERN, max_length=2048,
        description="Base URL of the Prometheus HTTP API, e.g. http://prometheus:9090.")
    auth_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding a bearer token sent with each query.")
    external_url: str | None = Field(
        default=None, alias="externalURL", pattern=HTTP_URL_PATTERN, max_length=2048,
        description="The URL people reach this Prometheus at (its --web.external-url): each "
        "alert's generatorURL links the query there. Default: the operator's "
        "--prometheus-external-url for rules that use its default Prometheus; none otherwise.")


class NamedQuery(ApiModel):
    """One input series (feature) of the anomaly model."""

    name: str = Field(pattern=LABEL_NAME_PATTERN, max_length=63,
                      description="Feature name, shown in status and notifications.")
    query: str = Field(min_length=1, max_length=16384,
                       description="PromQL returning a single series.")


class AnomalySpec(ApiModel):
    """IsolationForest over one or more series, trained on a query_range window."""

    queries: NamedList[NamedQuery] = Field(
        min_length=1, max_length=8,
        description="Input series, joined on their timestamps (rows with NaN are dropped).")
    training_window: Duration = Field(default="7d", description="History the model learns from.")
    step: Duration = Field(default="5m", description="Resolution of the training data.")
    min_samples: int = Field(
        default=288, ge=16, le=100000,
        description="Complete rows needed before the model is trained; never fires before.")
    retrain_interval: Duration = Field(
        default="1h", description="How often the model is retrained (not every evaluation).")
    contamination: float = Field(
        default=0.01, le=0.5,
        json_schema_extra=validations(cel("self > 0.0", "contamination must be greater than 0")),
        description="Expected share of anomalies in the training data (0 < x <= 0.5); sets "
        "the default score threshold.")
    score_threshold: float | None = Field(
        default=None, ge=0, le=1,
        description="Anomaly score (0..1, higher is stranger) above which a point is "
        "anomalous; default from contamination.")
    for_: Duration = Field(
        default="0s", alias="for",
        description="How long points must stay anomalous before the alert fires.")

    @field_validator("contamination")
    @classmethod
    def _positive(cls, value: float) -> float:
        if not value > 0:
            raise ValueError("contamination must be greater than 0")
        return value

    @model_validator(mode="after")
    def _window_holds_min_samples(self) -> AnomalySpec:
        step = parse_duration(self.step).total_seconds()
        if step <= 0:
            raise ValueError("anomaly.step must be positive")
        points = parse_duration(self.training_window).total_seconds() // step
        if points < self.min_samples:
            raise ValueError(
                f"trainingWindow/step gives {int(points)} points, fewer than minSamples "
                f"{self.min_samples}")
        return self


MODE_MESSAGE = "set either query and condition, or anomaly (not both)"
#: One rule per field it is about, so the API server names the field to add or remove.
MODE_RULES = [
    *(cel(f"has(self.anomaly) || has(self.{field})", MODE_MESSAGE, f".{field}",
          "FieldValueRequired") for field in ("query", "condition")),
    *(cel(f"!has(self.anomaly) || !has(self.{field})", MODE_MESSAGE, f".{field}",
          "FieldValueForbidden") for field in ("query", "condition")),
]
LADDER_MESSAGE = "set escalateAfter or escalationPolicyRef, not both"
LADDER_RULE = cel("!has(self.escalationPolicyRef) || !has(self.escalateAfter) || "
                  "size(self.escalateAfter) == 0", LADDER_MESSAGE, ".escalationPolicyRef",
                  "FieldValueForbidden")


class AlertRuleSpec(ApiModel):
    """What to evaluate, when it is a problem, and who hears about it."""

    model_config = with_rules(*MODE_RULES, LADDER_RULE)

    query: str | None = Field(
        default=None, min_length=1, max_length=16384,
        description="PromQL instant query; each returned series is one alert instance. "
        "Required unless anomaly is set.")
    condition: ThresholdCondition | None = Field(
        default=None, description="When a series' value is a problem. Required with query.")
    for_: Duration = Field(
        default="0s", alias="for",
        description="How long the condition must hold before Pending becomes Firing.")
    keep_firing_for: Duration = Field(
        default="0s",
        description="How long an alert keeps firing after the condition clears (stops flaps).")
    interval: Interval = Field(
        default="1m",
        json_schema_extra=validations(cel(
            f"duration(self) >= duration('{MIN_INTERVAL_SECONDS}s')",
            f"interval must be at least {MIN_INTERVAL_SECONDS}s")),
        description="Evaluation interval (at least 5s; units ms, s, m, h).")
    severity: Severity = Field(
        default="medium",
        description="critical, high, medium, low or info; or Prometheus' critical, warning, "
        "info.")
    labels: dict[str, Annotated[str, Field(max_length=1024)]] = Field(
        default_factory=dict, max_length=32,
        json_schema_extra=validations(_LABEL_KEYS_RULE, _RESERVED_LABELS_RULE),
        description="Labels added to every instance's alert (identity, never values); they "
        "win over the series' own labels, whose overwritten values are kept as exported_<name>. "
        "alertname, namespace, kind and severity are the operator's.")
    annotations: dict[str, Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=dict, max_length=32,
        description="Notification texts; templates may use {{ $value }} and {{ $labels.name }}.")
    no_data_state: Handling = Field(
        default="Normal",
        description="When the query returns no series: Normal (reported as NoData, resolves), "
        "Alerting (as if the condition held), KeepLast (state unchanged) or Error.")
    error_state: Handling = Field(
        default="Error",
        description="When the query fails: Normal, Alerting, KeepLast or Error (notified).")
    channels: NamedList[ChannelRef] = Field(
        default_factory=list, max_length=MAX_CHANNELS,
        description="NotificationChannels that hear about this rule's alerts.")
    escalate_after: list[EscalationLevel] = Field(
        default_factory=list, max_length=MAX_ESCALATION_LEVELS,
        description="Levels reached while an instance keeps firing, in increasing `after`.")
    escalation_policy_ref: PolicyRef | None = Field(
        default=None,
        description="An EscalationPolicy whose levels (and repeats) escalate firing instances "
        "instead of escalateAfter, so a team defines its ladder once. Its channels are added "
        "to spec.channels as levels are reached (a rotation level pages the member on call).")
    incident: IncidentTrigger | None = Field(
        default=None,
        description="Open an Incident when an instance fires: one per instance fingerprint, "
        "updated while open, a new one for a new firing after it was resolved.")
    actions: Actions | None = Field(
        default=None, description="Automated remediation (opt-in; RBAC-scoped).")
    prometheus: PrometheusSource | None = Field(
        default=None, description="Prometheus to query (default: the operator's).")
    anomaly: AnomalySpec | None = Field(
        default=None, description="Anomaly detection instead of query and condition.")

    @field_validator("interval")
    @classmethod
    def _min_interval(cls, value: str) -> str:
        if parse_duration(value).total_seconds() < MIN_INTERVAL_SECONDS:
            raise ValueError(f"interval must be at least {MIN_INTERVAL_SECONDS}s")
        return value

    @field_validator("labels")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not re.fullmatch(LABEL_NAME_PATTERN, k)]
        if bad:
            raise ValueError(f"label names must match [a-zA-Z_][a-zA-Z0-9_]*: {bad}")
        if any(k in RESERVED_LABELS for k in value):
            raise ValueError(_RESERVED_LABELS_MESSAGE)
        return value

    @model_validator(mode="after")
    def _mode_and_levels(self) -> AlertRuleSpec:
        if self.anomaly is not None:
            if self.query is not None or self.condition is not None:
                raise ValueError(MODE_MESSAGE)
        elif self.query is None or self.condition is None:
            raise ValueError(MODE_MESSAGE)
        afters = [parse_duration(level.after) for level in self.escalate_after]
        if afters != sorted(set(afters)):
            raise ValueError("escalateAfter levels must have strictly increasing after")
        if self.escalation_policy_ref is not None and self.escalate_after:
            raise ValueError(LADDER_MESSAGE)
        return self


class AlertInstance(ApiModel):
    """One series' alert: its state and the times the state machine needs across restarts."""

    fingerprint: str = Field(description="Stable hash of the rule and the series' labels.")
    labels: dict[str, str] = Field(default_factory=dict, description="The series' labels.")
    state: InstanceState = Field(description="Normal, Pending, Firing, Recovering, NoData, Error.")
    active_since: datetime | None = Field(
        default=None, description="When the condition started holding, or the Error began.")
    pending_since: datetime | None = Field(
        default=None, description="When the instance became Pending (the `for` clock).")
    firing_since: datetime | None = Field(
        default=None, description="When the instance started firing.")
    recovering_since: datetime | None = Field(
        default=None, description="When the condition cleared while firing (keepFiringFor).")
    resolved_at: datetime | None = Field(
        default=None, description="When it last stopped firing or erroring.")
    started_at: datetime | None = Field(
        default=None, description="When the current or last problem (firing or error) began: "
        "its notifications' startsAt, kept after it resolves.")
    active_value: str | None = Field(
        default=None, description="The value at the last evaluation the instance fired with "
        "the condition holding: what its texts show while it fires and once it resolves "
        "(Prometheus resends the last firing text).")
    last_value: str | None = Field(
        default=None, description="Last value as Prometheus prints it (NaN, +Inf, 0.5).")
    last_error: str | None = Field(
        default=None, max_length=1024, description="Why the last evaluation had no value.")
    last_evaluation: datetime | None = Field(
        default=None, description="When this instance was last evaluated.")


class AnomalyStatus(ApiModel):
    """The anomaly model's training state."""

    trained_at: datetime | None = Field(default=None, description="When it was last trained.")
    samples: int = Field(default=0, ge=0, description="Complete rows it was trained on.")
    threshold: float | None = Field(default=None, description="Score threshold in use.")
    last_score: float | None = Field(default=None, description="Score of the last point.")


class ActionRecord(ApiModel):
    """One automated action (newest first, capped)."""

    time: datetime = Field(description="When it ran.")
    action: Literal["scaleDeployment", "restartDeployment", "webhook"] = Field(
        description="Which action.")
    fingerprint: str = Field(default="", description="The instance that triggered it.")
    result: Literal["succeeded", "failed"] = Field(description="How it ended.")
    message: str = Field(default="", max_length=1024, description="What happened.")


class AlertRuleStatus(ResourceStatus):
    """What the operator observed and decided; the Firing condition says whether any
    instance fires, Stalled why a rule cannot be evaluated (e.g. invalid PromQL)."""

    state: InstanceState | None = Field(
        default=None, description="The worst state of any instance.")
    active_since: datetime | None = Field(
        default=None, description="When that worst instance became active.")
    last_value: str | None = Field(default=None, description="That worst instance's value.")
    last_evaluation: datetime | None = Field(default=None, description="When last evaluated.")
    last_error: str | None = Field(
        default=None, max_length=4096, description="The last query or evaluation error.")
    evaluation_duration_seconds: float | None = Field(
        default=None, ge=0, description="How long the last evaluation took.")
    instances: list[AlertInstance] = Field(
        default_factory=list, max_length=MAX_INSTANCES,
        description=f"Up to {MAX_INSTANCES} instances, the worst first.")
    notifications: NotificationLog = Field(
        default_factory=list, max_length=NOTIFICATION_LOG_LIMIT,
        description="The last notification per instance and channel, newest first: what "
        "deduplicates, repeats and escalates them across restarts.")
    anomaly: AnomalyStatus | None = Field(default=None, description="Anomaly model state.")
    actions: list[ActionRecord] = Field(
        default_factory=list, max_length=ACTION_LOG_LIMIT,
        description=f"The last {ACTION_LOG_LIMIT} automated actions, newest first.")


class AlertRule(Resource):
    """Evaluates a PromQL threshold or an anomaly model and notifies while it fires."""

    info = KindInfo(
        kind="AlertRule",
        plural="alertrules",
        selectable_fields=[INCIDENT_SEVERITY_FIELD],
        short_names=["ar"],
        printer_columns=[
            PrinterColumn(name="State", type="string", json_path=".status.state",
                          description="Worst instance state."),
            PrinterColumn(name="Value", type="string", json_path=".status.lastValue",
                          description="Value of the worst instance."),
            PrinterColumn(name="Since", type="date", json_path=".status.activeSince",
                          description="Time since the worst instance became active."),
            PrinterColumn(name="Severity", type="string", json_path=".spec.severity",
                          description="Configured severity.", priority=1),
            *health_columns(),
        ],
    )

    spec: AlertRuleSpec = Field(description="What to evaluate and who hears about it.")
    status: AlertRuleStatus = status_field(AlertRuleStatus)
