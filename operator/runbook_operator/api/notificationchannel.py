"""NotificationChannel: one place to declare where notifications go (Slack, PagerDuty, a
webhook, email), with every credential held in a Secret and referenced by name.

Other kinds (BackupPolicy, AlertRule, EscalationPolicy) name a channel; the operator delivers
through it with retries and records each delivery in the channel's status.
"""

from __future__ import annotations

from typing import Annotated, Literal, NamedTuple

from pydantic import Field, model_validator

from runbook_operator.api.common import (
    ApiModel,
    Duration,
    KindInfo,
    LastNotification,
    NamedList,
    PrinterColumn,
    Resource,
    ResourceStatus,
    SecretKeyRef,
    age_column,
    cel,
    ready_column,
    reason_column,
    status_field,
    with_rules,
)

ChannelType = Literal["slack", "pagerduty", "webhook", "email"]
CHANNEL_TYPES: tuple[ChannelType, ...] = ("slack", "pagerduty", "webhook", "email")
#: Both vocabularies: the runbooks' critical/high/medium/low and Prometheus' critical/warning/info.
Severity = Literal["critical", "high", "medium", "warning", "low", "info"]
PagerDutySeverity = Literal["critical", "error", "warning", "info"]

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
HTTP_URL_PATTERN = r"^https?://[^\s/?#]+([/?#][^\s]*)?$"
HEADER_NAME_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"


class SeverityStyle(NamedTuple):
    """How one severity is shown by the receivers that have a notion of it."""

    pagerduty: PagerDutySeverity
    slack_color: str


#: The one mapping of severities, most severe first (the order escalation raises along).
#: PagerDuty severities are the defaults of a channel's `severityMapping`; Slack colours are
#: the bar beside a problem's details. `warning` ranks with `medium`, just below it.
SEVERITIES: dict[Severity, SeverityStyle] = {
    "critical": SeverityStyle("critical", "#D0021B"),
    "high": SeverityStyle("error", "#F2711C"),
    "medium": SeverityStyle("warning", "#ECB22E"),
    "warning": SeverityStyle("warning", "#ECB22E"),
    "low": SeverityStyle("warning", "#439FE0"),
    "info": SeverityStyle("info", "#9E9EA6"),
}
#: Slack colour of a notification that says the problem is over.
RESOLVED_COLOR = "#2EB67D"

EmailAddress = Annotated[str, Field(pattern=r"^[^@\s<>]+@[^@\s<>]+$", max_length=254)]


class SlackChannel(ApiModel):
    """A Slack incoming webhook."""

    webhook_url_secret_ref: SecretKeyRef = Field(
        alias="webhookURLSecretRef",
        description="Secret key holding the incoming-webhook URL (the URL is the credential).",
    )
    channel: str | None = Field(
        default=None,
        description="Channel override such as #ops (honoured only by legacy webhooks).",
        max_length=80,
    )
    username: str | None = Field(
        default=None,
        description="Sender name override (honoured only by legacy webhooks).",
        max_length=80,
    )


class PagerDutySeverityMapping(ApiModel):
    """How the operator's severities map onto the four PagerDuty Events v2 severities."""

    critical: PagerDutySeverity = Field(
        default=SEVERITIES["critical"].pagerduty, description="PagerDuty severity for critical."
    )
    high: PagerDutySeverity = Field(
        default=SEVERITIES["high"].pagerduty, description="PagerDuty severity for high."
    )
    medium: PagerDutySeverity = Field(
        default=SEVERITIES["medium"].pagerduty, description="PagerDuty severity for medium."
    )
    warning: PagerDutySeverity = Field(
        default=SEVERITIES["warning"].pagerduty, description="PagerDuty severity for warning."
    )
    low: PagerDutySeverity = Field(
        default=SEVERITIES["low"].pagerduty, description="PagerDuty severity for low."
    )
    info: PagerDutySeverity = Field(
        default=SEVERITIES["info"].pagerduty, description="PagerDuty severity for info."
    )


class PagerDutyChannel(ApiModel):
    """A PagerDuty service integration, through the Events API v2."""

    routing_key_secret_ref: SecretKeyRef = Field(
        description="Secret key holding the integration's 32-character routing key."
    )
    endpoint: str = Field(
        default=PAGERDUTY_EVENTS_URL,
        description="Events API v2 enqueue URL (change only for a regional or test endpoint).",
        pattern=HTTP_URL_PATTERN,
        max_length=2048,
    )
    severity_mapping: PagerDutySeverityMapping = Field(
        default_factory=PagerDutySeverityMapping,
        description="Maps critical|high|medium|warning|low|info onto "
        "critical|error|warning|info.",
    )


class WebhookHeader(ApiModel):
    """An HTTP header whose value comes from a Secret (tokens, shared secrets)."""

    name: str = Field(description="Header name.", pattern=HEADER_NAME_PATTERN, max_length=128)
    secret_key_ref: SecretKeyRef = Field(description="Secret key holding the header value.")


class WebhookChannel(ApiModel):
    """A generic HTTP endpoint receiving an Alertmanager-v4-compatible JSON body."""

    model_config = with_rules(
        cel("has(self.url) != has(self.urlSecretRef)", "set exactly one of url and urlSecretRef"),
    )

    url_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the URL, for URLs that embed a credential."
    )
    url: str | None = Field(
        default=None,
        description="The URL, when it holds no credential (otherwise use urlSecretRef).",
        pattern=HTTP_URL_PATTERN,
        max_length=2048,
    )
    headers: NamedList[WebhookHeader] = Field(
        default_factory=list,
        description="Extra request headers, each from a Secret key.",
        max_length=16,
    )

    @model_validator(mode="after")
    def _exactly_one_url(self) -> WebhookChannel:
        if (self.url is None) == (self.url_secret_ref is None):
            raise ValueError("set exactly one of url and urlSecretRef")
        return self


CREDENTIALS_IN_PAIRS = "set both usernameSecretRef and passwordSecretRef, or neither"


class EmailChannel(ApiModel):
    """Email through an SMTP relay."""

    model_config = with_rules(
        cel("!has(self.usernameSecretRef) || has(self.passwordSecretRef)", CREDENTIALS_IN_PAIRS,
            ".passwordSecretRef", "FieldValueRequired"),
        cel("!has(self.passwordSecretRef) || has(self.usernameSecretRef)", CREDENTIALS_IN_PAIRS,
            ".usernameSecretRef", "FieldValueRequired"),
    )

    smtp_host: str = Field(
        description="SMTP relay host name or IP address.",
        max_length=253,
        pattern=r"^[A-Za-z0-9]([-A-Za-z0-9.:]*[A-Za-z0-9])?$",
    )
    smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP relay port.")
    from_: EmailAddress = Field(alias="from", description="Sender address.")
    to: list[EmailAddress] = Field(
        description="Recipient addresses.", min_length=1, max_length=50
    )
    username_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the SMTP login name."
    )
    password_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the SMTP password."
    )
    start_tls: bool = Field(
        default=True,
        alias="startTLS",
        description="Upgrade the connection with STARTTLS before logging in and sending; "
        "delivery fails rather than falling back to plain text.",
    )

    @model_validator(mode="after")
    def _credentials_in_pairs(self) -> EmailChannel:
        if (self.username_secret_ref is None) != (self.password_secret_ref is None):
            raise ValueError(CREDENTIALS_IN_PAIRS)
        return self


class RetryPolicy(ApiModel):
    """Retries of one delivery: on 429, 5xx, timeouts and connection errors; never on other 4xx."""

    max_attempts: int = Field(
        default=5, ge=1, le=20, description="Attempts in total, the first included."
    )
    initial_backoff: Duration = Field(
        default="1s", description="Wait before the second attempt; doubled for each further one."
    )
    max_backoff: Duration = Field(
        default="1m",
        description="Longest wait between attempts, also capping a server's Retry-After.",
    )


class RateLimit(ApiModel):
    """At most `requests` requests per `per`; further requests wait for a free slot."""

    requests: int = Field(ge=1, le=10000, description="Requests allowed in each window.")
    per: Duration = Field(default="1m", description="Length of the sliding window.")


_EXACTLY_ONE_TYPE = " + ".join(f"(has(self.{t}) ? 1 : 0)" for t in CHANNEL_TYPES) + " == 1"


class NotificationChannelSpec(ApiModel):
    """Where notifications go and how delivery is retried. Exactly one channel type is set."""

    model_config = with_rules(
        cel(_EXACTLY_ONE_TYPE, "set exactly one of slack, pagerduty, webhook, email"),
    )

    slack: SlackChannel | None = Field(default=None, description="Slack incoming webhook.")
    pagerduty: PagerDutyChannel | None = Field(
        default=None, description="PagerDuty Events API v2 integration."
    )
    webhook: WebhookChannel | None = Field(
        default=None, description="Generic webhook with an Alertmanager-v4-compatible body."
    )
    email: EmailChannel | None = Field(default=None, description="Email through an SMTP relay.")
    retry: RetryPolicy = Field(
        default_factory=RetryPolicy, description="How failed deliveries are retried."
    )
    timeout: Duration = Field(default="10s", description="Time limit of each delivery attempt.")
    rate_limit: RateLimit | None = Field(
        default=None, description="Upper bound on the request rate to the receiver."
    )

    @model_validator(mode="after")
    def _exactly_one_type(self) -> NotificationChannelSpec:
        set_types = [t for t in CHANNEL_TYPES if getattr(self, t) is not None]
        if len(set_types) != 1:
            raise ValueError("set exactly one of slack, pagerduty, webhook, email")
        return self

    def channel_type(self) -> ChannelType:
        return next(t for t in CHANNEL_TYPES if getattr(self, t) is not None)

    def secret_refs(self) -> list[SecretKeyRef]:
        """Every Secret key a delivery needs, so the controller can check them up front."""
        if self.slack:
            return [self.slack.webhook_url_secret_ref]
        if self.pagerduty:
            return [self.pagerduty.routing_key_secret_ref]
        if self.webhook:
            url = [self.webhook.url_secret_ref] if self.webhook.url_secret_ref else []
            return url + [h.secret_key_ref for h in self.webhook.headers]
        assert self.email is not None
        return [r for r in (self.email.username_secret_ref, self.email.password_secret_ref) if r]


class NotificationChannelStatus(ResourceStatus):
    """What the operator observed about the channel and its deliveries."""

    type: ChannelType | None = Field(default=None, description="The channel type in use.")
    last_delivery: LastNotification = Field(
        default=None, description="The most recent delivery attempt."
    )
    delivered_total: int = Field(default=0, ge=0, description="Notifications delivered.")
    failed_total: int = Field(
        default=0, ge=0, description="Notifications given up on after retries or a final error."
    )


class NotificationChannel(Resource):
    """A destination for notifications: Slack, PagerDuty, a webhook or email."""

    info = KindInfo(
        kind="NotificationChannel",
        plural="notificationchannels",
        short_names=["nc"],
        printer_columns=[
            PrinterColumn(
                name="Type",
                type="string",
                json_path=".status.type",
                description="Channel type.",
            ),
            ready_column(),
            PrinterColumn(
                name="Last Delivery",
                type="date",
                json_path=".status.lastDelivery.time",
                description="Time since the last delivery ended.",
            ),
            PrinterColumn(
                name="Result",
                type="string",
                json_path=".status.lastDelivery.result",
                description="How the last delivery ended.",
                priority=1,
            ),
            reason_column(),
            age_column(),
        ],
    )

    spec: NotificationChannelSpec = Field(description="Where notifications go.")
    status: NotificationChannelStatus = status_field(NotificationChannelStatus)
