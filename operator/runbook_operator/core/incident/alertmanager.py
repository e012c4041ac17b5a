"""Alertmanager's webhook (payload version 4, as DESIGN §7 gives it) as the operator receives
it: the checks a request passes before anything is written, and the report a valid group
makes (`sources.Report`: the group opens or updates the Incident keyed by its `groupKey`).

Every check is a pure function raising `Rejected` with the HTTP status and the reason the
sender is told, so invalid input is answered with a 4xx and never reaches the API server.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from runbook_operator.api.escalationpolicy import IncidentSeverity
from runbook_operator.api.incident import IncidentAlert, IncidentSource
from runbook_operator.core.delivery import fingerprint, rfc3339, truncate
from runbook_operator.core.incident.sources import Opening, Report, describe_alert

SOURCE_KIND = "Alertmanager"
PAYLOAD_VERSION = "4"
DEFAULT_MAX_BODY_BYTES = 1 << 20
#: Bounds on what one alert brings into an Incident's status (etcd caps objects near 1 MiB).
MAX_LABELS = 32
LABEL_VALUE_LIMIT = 256
ERRORS_SHOWN = 5
SEVERITIES: tuple[IncidentSeverity, ...] = ("P0", "P1", "P2", "P3")
#: The usual values of Alertmanager's `severity` label; P0..P3 are taken as they are.
SEVERITY_LABELS: dict[str, IncidentSeverity] = {
    "critical": "P1", "error": "P2", "high": "P2",
    "warning": "P3", "medium": "P3", "low": "P3", "info": "P3",
}


class Rejected(Exception):
    """A request refused before anything is written: its HTTP status and the reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True,
                              extra="ignore", strict=True)


class WebhookAlert(_Wire):
    """One alert of the group."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime
    generator_url: str = Field(alias="generatorURL")
    fingerprint: str = Field(min_length=1, max_length=255)

    @property
    def ended(self) -> datetime | None:
        """endsAt, None for Go's zero time (`0001-01-01T00:00:00Z`, sent while firing)."""
        return None if self.ends_at.year == 1 else self.ends_at


class WebhookPayload(_Wire):
    """A notification of one alert group."""

    version: Literal["4"]
    group_key: str = Field(min_length=1)
    truncated_alerts: int = Field(ge=0)
    status: Literal["firing", "resolved"]
    receiver: str
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    common_annotations: dict[str, str]
    external_url: str = Field(alias="externalURL")
    alerts: list[WebhookAlert] = Field(min_length=1)


def check_token(authorization: str | None, token: str) -> None:
    """`Authorization: Bearer <token>`, compared in constant time."""
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Rejected(401, "missing bearer token (Authorization: Bearer <token>)")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Rejected(401, "wrong bearer token")


def check_content_type(content_type: str | None) -> None:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise Rejected(415, f"Content-Type must be application/json, not {media or 'absent'!r}")


def check_size(length: int, limit: int) -> None:
    if length > limit:
        raise Rejected(413, f"body of {length} bytes exceeds the limit of {limit} bytes")


def parse_payload(body: bytes) -> WebhookPayload:
    """The payload, or Rejected: 400 for anything that is not a JSON object, 422 for another
    version or missing or malformed fields."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise Rejected(400, f"body is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise Rejected(400, "body is not a JSON object")
    version = data.get("version")
    if version != PAYLOAD_VERSION:
        raise Rejected(422, f"unsupported payload version {version!r}: this receiver takes "
                       f"Alertmanager's webhook version {PAYLOAD_VERSION}")
    try:
        return WebhookPayload.model_validate_json(body)
    except ValidationError as error:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                    for e in error.errors()[:ERRORS_SHOWN]]
        more = error.error_count() - len(problems)
        raise Rejected(422, "; ".join(problems) + (f"; and {more} more" if more > 0 else "")
                       ) from None


@dataclass(frozen=True)
class ReceiverSettings:
    """Where incidents from Alertmanager go and how they are opened (operator flags)."""

    namespace: str
    severity: IncidentSeverity = "P2"
    """For groups whose `severity` label says nothing this maps."""
    policy: str | None = None
    resolve_when_resolved: bool = False


def severity_of(labels: dict[str, str], default: IncidentSeverity) -> IncidentSeverity:
    """P0..P3 from the group's `severity` label (see SEVERITY_LABELS), else `default`."""
    value = labels.get("severity", "").strip()
    if value.upper() in SEVERITIES:
        return SEVERITIES[SEVERITIES.index(value.upper())]
    return SEVERITY_LABELS.get(value.lower(), default)


def _labels(labels: dict[str, str]) -> dict[str, str]:
    kept = sorted(labels.items())[:MAX_LABELS]
    return {name: truncate(value, LABEL_VALUE_LIMIT) for name, value in kept}


def _alert(alert: WebhookAlert) -> IncidentAlert:
    return IncidentAlert(fingerprint=alert.fingerprint, status=alert.status,
                         labels=_labels(alert.labels), starts_at=alert.starts_at,
                         ends_at=alert.ended if alert.status == "resolved" else None)


def _group(payload: WebhookPayload) -> str:
    """The group as Prometheus would show it (`alertname{label="value"}`), else the
    receiver's name."""
    return describe_alert(IncidentAlert(fingerprint="-", status="firing",
                                        labels=payload.group_labels)) or payload.receiver


def group_report(payload: WebhookPayload, settings: ReceiverSettings) -> Report:
    """The report of one notification: source Alertmanager, fingerprint the hash of the
    groupKey (so later notifications of the group update one incident), episode the earliest
    start of its firing alerts (a retry or a second Alertmanager of an HA pair sends the same
    one; the group firing again after it resolved starts a new one)."""
    firing = payload.status == "firing"
    current = [a for a in payload.alerts if a.status == "firing"] or payload.alerts
    ends = [a.ended for a in payload.alerts if a.ended is not None]
    group = _group(payload)
    annotations = payload.common_annotations
    title = annotations.get("summary") or f"{group} is firing"
    details = [annotations.get("description", ""), f"Alertmanager group {group} "
               f"(receiver {payload.receiver}): {payload.external_url}"]
    return Report(
        source=IncidentSource(kind=SOURCE_KIND, name=truncate(payload.receiver, 253),
                              fingerprint=fingerprint(SOURCE_KIND, payload.group_key)),
        what=f"Alertmanager group {group}",
        firing=firing,
        episode=rfc3339(min(a.starts_at for a in current)) if firing else "",
        alerts=tuple(_alert(a) for a in payload.alerts),
        opening=Opening(
            title=title, severity=severity_of(payload.common_labels, settings.severity),
            description="\n\n".join(d for d in details if d), policy=settings.policy,
            resolve_when_recovered=settings.resolve_when_resolved),
        truncated=payload.truncated_alerts,
        recovered_at=None if firing else max(ends, default=None),
        stem=payload.common_labels.get("alertname") or "alertmanager",
    )
