"""CanaryRollout: progressive delivery of a Deployment, Flagger's GitOps-friendly model.

The user's Deployment (`targetRef`) stays the source of truth: the operator never edits it
except to scale it (up when a rollout starts, to zero when it ends). It maintains
`<target>-primary` (the last promoted pod template), the Services `<service>-primary` and
`<service>-canary`, with `autoscalerRef` a primary HorizontalPodAutoscaler, and the traffic
split of one router. The first reconcile promotes the current template without analysis; a
later pod-template change starts a rollout that shifts real traffic step by step, analyses
metrics at each step and promotes the new template — or rolls back. Every time the steps
depend on lives in status, so a restarted operator neither repeats nor skips a step.
"""

from __future__ import annotations

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
    SetList,
    age_column,
    cel,
    parse_duration,
    ready_column,
    reason_column,
    validations,
)
from runbook_operator.api.escalationpolicy import IncidentSeverity
from runbook_operator.api.incident import INCIDENT_SEVERITY_FIELD, IncidentTrigger
from runbook_operator.api.notificationchannel import HTTP_URL_PATTERN

PRIMARY_SUFFIX = "-primary"
CANARY_SUFFIX = "-canary"
#: A Service name is a DNS-1035 label (63 characters) and gets a suffix.
MAX_SERVICE_NAME = 63 - max(len(PRIMARY_SUFFIX), len(CANARY_SUFFIX))
#: `<target>-primary` is a Deployment name (253 characters).
MAX_TARGET_NAME = 253 - len(PRIMARY_SUFFIX)
SERVICE_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
MAX_STEPS = 32
MAX_METRICS = 16
MAX_WEBHOOKS = 16
MAX_CHANNELS = 8
MEASUREMENT_LIMIT = 50
COMMAND_LOG_LIMIT = 20
GATE_LOG_LIMIT = 16
NOTIFICATION_LOG_LIMIT = 50
MIN_INTERVAL_SECONDS = 1
METRIC_NAME_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_-]*$"

#: Manual control: `kubectl runbook canary <command>` sets the annotation to a new token
#: (`<UTC time>-<random>`, so tokens sort by time); the operator acts on a token once and
#: records it in status.commands.
COMMAND_ANNOTATIONS: dict[str, str] = {
    "promote": "runbook.dev/canary-promote",
    "promoteFull": "runbook.dev/canary-promote-full",
    "abort": "runbook.dev/canary-abort",
    "retry": "runbook.dev/canary-retry",
    "pause": "runbook.dev/canary-pause",
    "resume": "runbook.dev/canary-resume",
}
Command = Literal["promote", "promoteFull", "abort", "retry", "pause", "resume"]

Phase = Literal[
    "Initializing", "Initialized", "Progressing", "Paused", "WaitingPromotion", "Promoting",
    "Finalising", "Succeeded", "Failed",
]
Verdict = Literal["Pass", "Fail", "Inconclusive", "Error"]
#: What a router answers when asked whether its traffic split is the one written (Argo
#: Rollouts' VerifyWeight): yes, no, or cannot tell — never a guess.
Verified = Literal["Yes", "No", "Unknown"]
OnNoData = Literal["pass", "inconclusive", "fail"]
Builtin = Literal["requestSuccessRate", "requestDuration"]
WebhookType = Literal["preRollout", "rollout", "confirmPromotion", "postRollout", "rollback"]
NotifiedEvent = Literal["Started", "Promoted", "RolledBack", "Paused", "WaitingPromotion"]
Weight = Annotated[int, Field(ge=0, le=100)]
StepWeight = Annotated[int, Field(ge=1, le=100)]

_INTERVAL_RULE = cel(f"duration(self) >= duration('{MIN_INTERVAL_SECONDS}s')",
                     f"interval must be at least {MIN_INTERVAL_SECONDS}s")


def _at_least_a_second(value: str | None) -> str | None:
    if value is not None and parse_duration(value).total_seconds() < MIN_INTERVAL_SECONDS:
        raise ValueError(f"interval must be at least {MIN_INTERVAL_SECONDS}s")
    return value


class TargetRef(ApiModel):
    """The user's Deployment, in this namespace: the source of truth for the pod template."""

    api_version: Literal["apps/v1"] = Field(default="apps/v1", description="apps/v1.")
    kind: Literal["Deployment"] = Field(default="Deployment", description="Deployment.")
    name: str = Field(
        max_length=MAX_TARGET_NAME, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description=f"Name of the Deployment (at most {MAX_TARGET_NAME} characters: the "
        f"operator adds '{PRIMARY_SUFFIX}').")


class AutoscalerRef(ApiModel):
    """The target's HorizontalPodAutoscaler (autoscaling/v2): copied for the primary."""

    name: ResourceName = Field(description="Name of the HorizontalPodAutoscaler.")


class ServiceSpec(ApiModel):
    """The Services the operator maintains, `<name>-primary` and `<name>-canary`: the port
    they expose and where it goes on the pods."""

    name: str | None = Field(
        default=None, max_length=MAX_SERVICE_NAME, pattern=SERVICE_NAME_PATTERN,
        description="Base name of the generated Services (default: the target's name).")
    port: int = Field(ge=1, le=65535, description="The Services' port.")
    port_name: str = Field(
        default="http", max_length=15, pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$",
        description="Name of that port (gateways name their metrics after it).")
    target_port: int | str | None = Field(
        default=None,
        description="Port number or name on the pods (default: the same as port).")


class GatewayAPIRouter(ApiModel):
    """Gateway API: the operator writes the `rules` of an HTTPRoute the user owns."""

    http_route: ResourceName = Field(
        alias="httpRoute",
        description="Name of the HTTPRoute. The user's manifest declares its parentRefs and "
        "hostnames and leaves out `rules` (an atomic list: whoever writes one weight owns "
        "every rule); the operator writes one rule with the primary and canary backends.")


class NginxRouter(ApiModel):
    """NGINX Ingress canary annotations (`canary`, `canary-weight`) on a copy of an Ingress."""

    ingress: ResourceName = Field(
        description="Name of the user's Ingress, whose backends name `<service>-primary` "
        "(the operator never writes it); the operator maintains `<name>-canary`.")


class ReplicaRatioRouter(ApiModel):
    """For clusters without a mesh or gateway: primary and canary pods behind the user's one
    Service, the canary's share of traffic its share of ready pods."""

    total_replicas: int | None = Field(
        default=None, ge=1, le=1000,
        description="Pods of both versions together (default: the target's replicas when the "
        "rollout starts, moved to the primary one for one).")


class IstioRouter(ApiModel):
    """Istio: the operator writes the `http` routes of a VirtualService the user owns."""

    virtual_service: ResourceName = Field(
        description="Name of the VirtualService. The user's manifest declares its hosts and "
        "gateways and leaves out `http` (an atomic list: whoever writes one weight owns every "
        "route); the operator writes one http route with the primary and canary hosts.")
    route: str | None = Field(
        default=None, max_length=253,
        description="Name of that http route (default: the Services' base name).")


_ROUTERS = ("gatewayAPI", "nginx", "replicaRatio", "istio")
EXACTLY_ONE_ROUTER = "set exactly one of gatewayAPI, nginx, replicaRatio, istio"


class RouterSpec(ApiModel):
    """How traffic is split between primary and canary: exactly one router."""

    model_config = ApiModel.model_config | {"json_schema_extra": validations(cel(
        "[" + ", ".join(f"has(self.{r})" for r in _ROUTERS) + "].filter(x, x).size() == 1",
        EXACTLY_ONE_ROUTER))}

    gateway_api: GatewayAPIRouter | None = Field(
        default=None, alias="gatewayAPI", description="Gateway API HTTPRoute weights.")
    nginx: NginxRouter | None = Field(default=None, description="NGINX Ingress canary.")
    replica_ratio: ReplicaRatioRouter | None = Field(
        default=None, description="Replica ratio behind one Service.")
    istio: IstioRouter | None = Field(default=None, description="Istio VirtualService.")

    @model_validator(mode="after")
    def _exactly_one(self) -> RouterSpec:
        chosen = [self.gateway_api, self.nginx, self.replica_ratio, self.istio]
        if sum(r is not None for r in chosen) != 1:
            raise ValueError(EXACTLY_ONE_ROUTER)
        return self

    def kind(self) -> str:
        """The router chosen: gatewayAPI, nginx, replicaRatio or istio."""
        chosen = (self.gateway_api, self.nginx, self.replica_ratio, self.istio)
        return next(name for name, r in zip(_ROUTERS, chosen, strict=True) if r is not None)


class PauseStep(ApiModel):
    """Hold the current weight."""

    duration: Duration | None = Field(
        default=None,
        description="How long (absent: until `kubectl runbook canary promote`).")


class AnalysisStep(ApiModel):
    """Measure every metric once per analysis interval until enough runs in a row pass."""

    passes: int = Field(default=1, ge=1, le=100,
                        description="Passing runs in a row this step needs.")


_STEP_KINDS = ("setWeight", "pause", "analysis")
EXACTLY_ONE_STEP = "a step sets exactly one of setWeight, pause, analysis"


class Step(ApiModel):
    """One explicit step (as Argo Rollouts' steps)."""

    model_config = ApiModel.model_config | {"json_schema_extra": validations(cel(
        "[" + ", ".join(f"has(self.{k})" for k in _STEP_KINDS) + "].filter(x, x).size() == 1",
        EXACTLY_ONE_STEP))}

    set_weight: Weight | None = Field(
        default=None, description="Send this percentage of traffic to the canary.")
    pause: PauseStep | None = Field(default=None, description="Hold the weight.")
    analysis: AnalysisStep | None = Field(default=None, description="Analyse the metrics.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Step:
        if sum(s is not None for s in (self.set_weight, self.pause, self.analysis)) != 1:
            raise ValueError(EXACTLY_ONE_STEP)
        return self


SHORTHAND_OR_STEPS = "set stepWeight, stepWeights or steps"
STEPS_ALONE = "steps cannot be combined with initialWeight, stepWeight, stepWeights or maxWeight"
WEIGHTS_OR_LIST = "set stepWeight or stepWeights, not both"
INCREASING = "stepWeights must increase"
_SHORTHAND = ("initialWeight", "stepWeight", "stepWeights", "maxWeight")


class CanaryStrategy(ApiModel):
    """The canary's steps: the shorthand (a weight every interval, analysed before the next)
    or explicit steps."""

    model_config = ApiModel.model_config | {"json_schema_extra": validations(
        cel("has(self.stepWeight) || has(self.stepWeights) || has(self.steps)",
            SHORTHAND_OR_STEPS),
        cel("!has(self.steps) || !(" + " || ".join(f"has(self.{f})" for f in _SHORTHAND)
            + ")", STEPS_ALONE, ".steps", "FieldValueForbidden"),
        cel("!has(self.stepWeight) || !has(self.stepWeights)", WEIGHTS_OR_LIST,
            ".stepWeights", "FieldValueForbidden"),
    )}

    initial_weight: StepWeight | None = Field(
        default=None, description="The first weight (default: stepWeight).")
    step_weight: StepWeight | None = Field(
        default=None, description="Added at each step while the analysis passes.")
    step_weights: SetList[StepWeight] | None = Field(
        default=None, min_length=1, max_length=MAX_STEPS,
        json_schema_extra=validations(cel("self.isSorted()", INCREASING)),
        description="The weights, in order, instead of stepWeight and maxWeight.")
    max_weight: StepWeight | None = Field(
        default=None,
        description="The last weight analysed before promotion (default 50; the last "
        "step is capped at it).")
    steps: list[Step] | None = Field(
        default=None, min_length=1, max_length=MAX_STEPS,
        description="Explicit steps instead of the shorthand.")

    @field_validator("step_weights")
    @classmethod
    def _increasing(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and value != sorted(value):
            raise ValueError(INCREASING)
        return value

    @model_validator(mode="after")
    def _one_form(self) -> CanaryStrategy:
        if self.step_weight is None and self.step_weights is None and self.steps is None:
            raise ValueError(SHORTHAND_OR_STEPS)
        shorthand = (self.initial_weight, self.step_weight, self.step_weights,
                     self.max_weight)
        if self.steps is not None and any(f is not None for f in shorthand):
            raise ValueError(STEPS_ALONE)
        if self.step_weight is not None and self.step_weights is not None:
            raise ValueError(WEIGHTS_OR_LIST)
        return self


class BlueGreenStrategy(ApiModel):
    """The new version runs beside the old without traffic for a health-check period of
    analysis, then takes the traffic: at once, or in steps with analysis."""

    health_check_period: Duration = Field(
        default="1m", description="How long the analysis must keep passing before the switch.")
    switch: Literal["instant", "gradual"] = Field(
        default="instant", description="instant: 0 → 100 %; gradual: by stepWeight.")
    step_weight: StepWeight = Field(
        default=25, description="With switch gradual: added at each step, analysed first.")


class ThresholdRange(ApiModel):
    """The range a value must be in to pass (inclusive)."""

    model_config = ApiModel.model_config | {"json_schema_extra": validations(
        cel("has(self.min) || has(self.max)", "set min, max or both"),
        cel("!has(self.min) || !has(self.max) || self.min <= self.max",
            "min must not exceed max", ".min"),
    )}

    min: float | None = Field(default=None, description="Lowest passing value.")
    max: float | None = Field(default=None, description="Highest passing value.")

    @model_validator(mode="after")
    def _bounded(self) -> ThresholdRange:
        if self.min is None and self.max is None:
            raise ValueError("set min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


EXACTLY_ONE_SOURCE = "set exactly one of builtin and query"
QUANTILE_FOR_DURATION = "quantile is for the requestDuration builtin"


class Metric(ApiModel):
    """One check of the analysis: a built-in check on the gateway's own metrics, or a
    PromQL query templated with {{ namespace }}, {{ target }}, {{ service }}, {{ primary }},
    {{ canary }} (Service names) and {{ interval }} (the metric's window)."""

    model_config = ApiModel.model_config | {"json_schema_extra": validations(
        cel("has(self.builtin) != has(self.query)", EXACTLY_ONE_SOURCE),
        cel("!has(self.quantile) || (has(self.builtin) && self.builtin == 'requestDuration')",
            QUANTILE_FOR_DURATION, ".quantile", "FieldValueForbidden"),
    )}

    name: str = Field(max_length=63, pattern=METRIC_NAME_PATTERN,
                      description="Name, shown in status and notifications.")
    builtin: Builtin | None = Field(
        default=None,
        description="requestSuccessRate: the percentage of the canary's requests the gateway "
        "answered without a 5xx; requestDuration: a quantile of the canary's request "
        "duration at the gateway, in seconds (Traefik's traefik_service_* series).")
    quantile: float | None = Field(
        default=None, ge=0, le=1,
        description="With requestDuration: the quantile (default 0.99).")
    query: str | None = Field(
        default=None, min_length=1, max_length=16384,
        description="PromQL returning one value (a scalar or a single series).")
    threshold_range: ThresholdRange = Field(description="The passing range.")
    interval: GoDuration | None = Field(
        default=None, json_schema_extra=validations(_INTERVAL_RULE),
        description="The window {{ interval }} and the built-ins use (default: the "
        "analysis interval).")
    on_no_data: OnNoData = Field(
        default="inconclusive",
        description="When the query returns nothing, or NaN (0/0: no requests): pass, "
        "inconclusive (neither passes nor counts as a failure; the step waits) or fail.")

    @field_validator("interval")
    @classmethod
    def _interval_at_least(cls, value: str | None) -> str | None:
        return _at_least_a_second(value)

    @model_validator(mode="after")
    def _source(self) -> Metric:
        if (self.builtin is None) == (self.query is None):
            raise ValueError(EXACTLY_ONE_SOURCE)
        if self.quantile is not None and self.builtin != "requestDuration":
            raise ValueError(QUANTILE_FOR_DURATION)
        return self


EXACTLY_ONE_URL = "set exactly one of url and urlSecretRef"


class Webhook(ApiModel):
    """A gate or a hook called through the shared outbound caller: a 2xx answer opens the
    gate; anything else holds the rollout (not a metric failure), its reason in status."""

    model_config = ApiModel.model_config | {"json_schema_extra": validations(
        cel("has(self.url) != has(self.urlSecretRef)", EXACTLY_ONE_URL))}

    name: str = Field(max_length=63, pattern=METRIC_NAME_PATTERN, description="Name.")
    type: WebhookType = Field(
        description="preRollout (before the first weight), rollout (every step), "
        "confirmPromotion (before promoting), postRollout (after success or rollback), "
        "rollback (asked at every step: a 2xx answer rolls back).")
    url: str | None = Field(
        default=None, pattern=HTTP_URL_PATTERN, max_length=2048,
        description="The URL, when it holds no credential (otherwise urlSecretRef).")
    url_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the URL.")
    timeout: Duration = Field(default="10s", description="Per attempt.")
    retries: int = Field(default=2, ge=0, le=10, description="Attempts after the first.")
    metadata: dict[str, Annotated[str, Field(max_length=1024)]] = Field(
        default_factory=dict, max_length=16, description="Sent with the call.")

    @model_validator(mode="after")
    def _one_url(self) -> Webhook:
        if (self.url is None) == (self.url_secret_ref is None):
            raise ValueError(EXACTLY_ONE_URL)
        return self


class PrometheusServer(ApiModel):
    """Which Prometheus answers the analysis; absent fields use the operator's default."""

    url: str | None = Field(
        default=None, pattern=HTTP_URL_PATTERN, max_length=2048,
        description="Base URL of the Prometheus HTTP API, e.g. http://prometheus:9090.")
    auth_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding a bearer token sent with each query.")


class Analysis(ApiModel):
    """How each step is judged."""

    interval: GoDuration = Field(
        default="1m", json_schema_extra=validations(_INTERVAL_RULE),
        description="How long each shorthand step holds its weight before it is analysed, "
        "and how often analysis runs (at least 1s).")
    failure_limit: int = Field(
        default=2, ge=1, le=100,
        description="The rollout rolls back when this many analysis runs have failed for "
        "the revision (cumulative: a passing run does not reset the count; inconclusive "
        "runs do not count).")
    minimum_requests: int = Field(
        default=0, ge=0, le=1_000_000_000,
        description="Fewer canary requests than this in the window make a run "
        "inconclusive, whatever the metrics say.")
    request_count_query: str | None = Field(
        default=None, min_length=1, max_length=16384,
        description="PromQL for the canary's requests in the window, templated as metrics "
        "are (default: the gateway's count for the canary Service).")
    metrics: NamedList[Metric] = Field(
        default_factory=list, max_length=MAX_METRICS, description="The checks.")
    webhooks: NamedList[Webhook] = Field(
        default_factory=list, max_length=MAX_WEBHOOKS, description="Gates and hooks.")
    prometheus: PrometheusServer | None = Field(
        default=None, description="Prometheus to query (default: the operator's).")

    @field_validator("interval")
    @classmethod
    def _interval_at_least(cls, value: str) -> str:
        return _at_least_a_second(value) or value


class Notifications(ApiModel):
    """Who hears about the rollout, and about what."""

    channels: SetList[ResourceName] = Field(
        min_length=1, max_length=MAX_CHANNELS, description="NotificationChannel names.")
    events: SetList[NotifiedEvent] = Field(
        default_factory=lambda: ["Promoted", "RolledBack"], min_length=1,
        description="Started, Promoted, RolledBack, Paused, WaitingPromotion.")


class BackupPolicyRef(ApiModel):
    """A BackupPolicy in the rollout's namespace."""

    name: ResourceName = Field(description="Name of the BackupPolicy.")


class BackupBefore(ApiModel):
    """Run a BackupPolicy's backup before a revision's first weight shift, and wait for it."""

    backup_policy_ref: BackupPolicyRef = Field(
        description="The BackupPolicy whose backup runs (through its runbook.dev/backup-now "
        "annotation, once per revision's rollout).")
    timeout: Duration = Field(
        default="30m", description="How long the backup may take before the rollout fails "
        "(reason BackupTimeout), no traffic having moved.")


STRATEGY_BLOCK = "set canary with strategy canary and blueGreen with strategy blueGreen"
SERVICE_NAME_NEEDED = (f"set service.name when the target's name is longer than "
                       f"{MAX_SERVICE_NAME} characters")


class CanaryRolloutSpec(ApiModel):
    """What to roll out, how traffic moves, and how each step is judged."""

    model_config = ApiModel.model_config | {"json_schema_extra": validations(
        cel("self.strategy == 'blueGreen' ? !has(self.canary) : has(self.canary) && "
            "!has(self.blueGreen)", STRATEGY_BLOCK),
        cel(f"has(self.service.name) || size(self.targetRef.name) <= {MAX_SERVICE_NAME}",
            SERVICE_NAME_NEEDED, ".service"),
    )}

    target_ref: TargetRef = Field(description="The Deployment rolled out.")
    service: ServiceSpec = Field(description="The generated Services.")
    autoscaler_ref: AutoscalerRef | None = Field(
        default=None,
        description="The target's HorizontalPodAutoscaler: copied for the primary, whose "
        "minimum is raised to carry the traffic before it is sent back.")
    router: RouterSpec = Field(description="How traffic is split.")
    strategy: Literal["canary", "blueGreen"] = Field(
        default="canary", description="canary (steps of weight) or blueGreen.")
    canary: CanaryStrategy | None = Field(
        default=None, description="The steps, with strategy canary.")
    blue_green: BlueGreenStrategy | None = Field(
        default=None, description="With strategy blueGreen (defaults apply when absent).")
    analysis: Analysis = Field(default_factory=Analysis, description="How steps are judged.")
    progress_deadline: Duration = Field(
        default="10m",
        description="The longest a step may wait — for the canary's pods, enough requests, "
        "conclusive analysis, a gate or the router — before the rollout rolls back. A pause "
        "without a duration, or a manual pause, waits for people instead.")
    notifications: Notifications | None = Field(
        default=None, description="NotificationChannels told about the rollout.")
    incident: IncidentTrigger | None = Field(
        default=None,
        description="Open an Incident on rollback, one per revision, carrying the failing "
        "measurements.")
    block_on_incidents: SetList[IncidentSeverity] = Field(
        default_factory=list, max_length=4,
        description="Do not start a rollout (hold its first step) while an open Incident "
        "of these severities is in the namespace; the Incident is named in status.message.")
    backup_before: BackupBefore | None = Field(
        default=None,
        description="Back up first: a revision's first weight shift waits for a successful "
        "backup of this BackupPolicy; a failed one fails the rollout (BackupFailed).")

    @model_validator(mode="after")
    def _consistent(self) -> CanaryRolloutSpec:
        if (self.strategy == "blueGreen") == (self.canary is not None) or (
                self.strategy == "canary" and self.blue_green is not None):
            raise ValueError(STRATEGY_BLOCK)
        if self.service.name is None and len(self.target_ref.name) > MAX_SERVICE_NAME:
            raise ValueError(SERVICE_NAME_NEEDED)
        return self

    def service_name(self) -> str:
        return self.service.name or self.target_ref.name


class Measurement(ApiModel):
    """One check's result: what was asked, what came back, and what it meant."""

    time: datetime = Field(description="When it was measured.")
    revision: str = Field(max_length=63, description="The revision analysed.")
    step: int = Field(ge=0, description="The step (0-based) it was taken at.")
    metric: str = Field(max_length=63, description="The metric (or `requests`).")
    query: str = Field(default="", max_length=4096, description="The query as sent.")
    value: str | None = Field(default=None, max_length=64,
                              description="The value (absent: no data).")
    min: float | None = Field(default=None, description="Lowest passing value.")
    max: float | None = Field(default=None, description="Highest passing value.")
    verdict: Verdict = Field(description="Pass, Fail, Inconclusive or Error.")
    message: str = Field(default="", max_length=1024, description="Why, for people.")


class RouterStatus(ApiModel):
    """The split last written, and what the router answered when asked about it."""

    weight: int = Field(ge=0, le=100, description="The canary weight last written.")
    verified: Verified = Field(description="Yes, No, or Unknown (cannot tell yet).")
    message: str = Field(default="", max_length=1024, description="What the router said.")
    time: datetime = Field(description="When the router first gave this answer (kept while "
                           "it answers the same).")
    confirmed_at: datetime | None = Field(
        default=None, description="When the router first read back this weight (after a "
        "rollback: when traffic moved back to the primary); absent while it does not.")


class AcknowledgedCommand(ApiModel):
    """A manual command the operator acted on."""

    command: Command = Field(description="The command.")
    token: str = Field(max_length=128, description="The annotation's value acted on.")
    time: datetime = Field(description="When it was acted on.")
    result: str = Field(default="", max_length=256, description="What it did.")


class GateStatus(ApiModel):
    """The last answer of a webhook gate."""

    name: str = Field(max_length=63, description="The webhook.")
    open: bool = Field(description="Whether it let the rollout go on.")
    message: str = Field(default="", max_length=1024, description="Its answer, for people.")
    time: datetime = Field(description="When it answered.")


class Rollback(ApiModel):
    """Why and how the revision was rolled back."""

    reason: str = Field(max_length=64, description="FailureLimit, ProgressDeadline, Aborted, "
                        "or a rollback webhook.")
    message: str = Field(default="", max_length=1024, description="Details.")
    started_at: datetime = Field(description="When the rollback began.")
    primary_replicas: int | None = Field(
        default=None, ge=0, description="Replicas the primary was scaled to before traffic "
        "moved back.")
    completed_at: datetime | None = Field(
        default=None, description="When the router confirmed the primary had all traffic and "
        "the canary was scaled to zero.")


BackupState = Literal["PolicyNotFound", "Requested", "Succeeded", "Failed", "TimedOut"]


class BackupWait(ApiModel):
    """The backup a rollout asked for before its first weight shift (spec.backupBefore)."""

    policy: str = Field(max_length=253, description="The BackupPolicy.")
    token: str = Field(max_length=512, description="The runbook.dev/backup-now value asked "
                       "for (derived from the rollout's revision and start).")
    state: BackupState = Field(description="PolicyNotFound, Requested, Succeeded, Failed or "
                               "TimedOut.")
    since: datetime = Field(description="When the wait began (the timeout counts from here).")
    requested_at: datetime | None = Field(
        default=None, description="When the annotation was set on the policy.")
    finished_at: datetime | None = Field(
        default=None, description="When the backup's outcome was seen.")
    message: str = Field(default="", max_length=1024, description="What happened, for people.")


class CanaryRolloutStatus(ResourceStatus):
    """Where the rollout stands; every time the steps depend on."""

    phase: Phase | None = Field(default=None, description="The rollout's phase.")
    message: str = Field(default="", max_length=1024, description="What is happening.")
    revision: str | None = Field(
        default=None, description="The target's pod-template revision being rolled out (or "
        "last rolled out).")
    primary_revision: str | None = Field(
        default=None, description="The revision the primary runs (the last promoted).")
    failed_revision: str | None = Field(
        default=None, description="A revision rolled back: not rolled out again until it "
        "changes or `retry`.")
    weight: int = Field(default=0, ge=0, le=100, description="The canary's weight now.")
    step_index: int = Field(default=0, ge=0, description="The current step (0-based).")
    step: str = Field(default="", max_length=32, description="The step as `2/5`.")
    step_started_at: datetime | None = Field(
        default=None, description="When the current step began.")
    progressed_at: datetime | None = Field(
        default=None, description="When the rollout last advanced (the progress deadline "
        "counts from here).")
    rollout_started_at: datetime | None = Field(
        default=None, description="When this revision's rollout began.")
    next_analysis_at: datetime | None = Field(
        default=None, description="When the next analysis run is due.")
    passes: int = Field(default=0, ge=0, description="Analysis runs passed in a row at this "
                        "step.")
    failed_checks: int = Field(default=0, ge=0, description="Analysis runs failed for this "
                               "revision.")
    paused_at: datetime | None = Field(
        default=None, description="Set while paused by hand (`kubectl runbook canary pause`).")
    canary_replicas: int | None = Field(
        default=None, ge=0, description="Replicas the target was scaled to for this rollout.")
    primary_replicas: int | None = Field(
        default=None, ge=0, description="Replicas the primary must have ready before traffic "
        "moves to it (set while it is scaled up for that).")
    router: RouterStatus | None = Field(default=None, description="The router's answer.")
    measurements: list[Measurement] = Field(
        default_factory=list, max_length=MEASUREMENT_LIMIT,
        description=f"The newest {MEASUREMENT_LIMIT} measurements, newest first.")
    failed_metrics: str = Field(
        default="", max_length=256,
        description="The metrics that failed in the last run (the printer column).")
    rollback: Rollback | None = Field(default=None, description="The last rollback.")
    incident: str | None = Field(
        default=None, max_length=253,
        description="The Incident opened for the last rollback (with spec.incident).")
    backup: BackupWait | None = Field(
        default=None, description="The backup of spec.backupBefore for the last rollout.")
    commands: list[AcknowledgedCommand] = Field(
        default_factory=list, max_length=COMMAND_LOG_LIMIT,
        description="Manual commands acted on, newest first.")
    gates: list[GateStatus] = Field(
        default_factory=list, max_length=GATE_LOG_LIMIT,
        description="The webhook gates' last answers.")
    notifications: NotificationLog = Field(
        default_factory=list, max_length=NOTIFICATION_LOG_LIMIT,
        description="Notifications sent, newest first (one per revision and event).")
    last_transition_time: datetime | None = Field(
        default=None, description="When the phase last changed.")


class CanaryRollout(Resource):
    """Rolls a Deployment out progressively: real traffic, analysed, promoted or rolled
    back."""

    info = KindInfo(
        kind="CanaryRollout",
        plural="canaryrollouts",
        selectable_fields=[INCIDENT_SEVERITY_FIELD],
        short_names=["cr", "canary"],
        printer_columns=[
            PrinterColumn(name="Phase", type="string", json_path=".status.phase",
                          description="Where the rollout stands."),
            PrinterColumn(name="Weight", type="integer", json_path=".status.weight",
                          description="The canary's share of traffic (%)."),
            PrinterColumn(name="Step", type="string", json_path=".status.step",
                          description="The current step of all."),
            PrinterColumn(name="Failed", type="integer", json_path=".status.failedChecks",
                          description="Analysis runs failed for this revision."),
            PrinterColumn(name="Failing", type="string", json_path=".status.failedMetrics",
                          description="Metrics that failed in the last run.", priority=1),
            ready_column(),
            reason_column(),
            age_column(),
        ],
    )

    spec: CanaryRolloutSpec = Field(description="What to roll out and how.")
    status: CanaryRolloutStatus = Field(
        default_factory=CanaryRolloutStatus, description="Observed state, written by the "
        "operator.")
