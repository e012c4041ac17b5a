"""Incidents opened by their sources: the I/O around `core.incident.sources`.

AlertRules and BackupPolicies that ask for incidents (`spec.incident`) are watched by a
handler of their own, beside their controllers', and resynced (a LIST of only those: the
field selector ASKS_FOR_INCIDENTS): their status says what fires, and each report opens or
updates one Incident. The Alertmanager receiver applies its reports
the same way. Reads are one label-selector LIST per source; a write happens only when an
incident is created or its status changes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import kopf
from pydantic import ValidationError

from runbook_operator.api.alertrule import AlertRule
from runbook_operator.api.backuppolicy import BackupPolicy
from runbook_operator.api.common import API_VERSION, GROUP, VERSION, Resource, SecretKeyRef
from runbook_operator.api.incident import (
    ASKS_FOR_INCIDENTS,
    Incident,
    IncidentSpec,
    IncidentStatus,
)
from runbook_operator.controllers.common import resync_forever, status_patch
from runbook_operator.controllers.errors import TRANSIENT_API_ERRORS, transient_error_message
from runbook_operator.controllers.registration import Logger, Loop, Operator
from runbook_operator.core.incident.alertmanager import WebhookPayload, group_report
from runbook_operator.core.incident.sources import (
    Report,
    after_report,
    alert_rule_reports,
    backup_policy_report,
    by_label,
    is_open,
    label_selector,
    new_incident,
    open_incident,
    recorded,
)
from runbook_operator.integrations.alertmanager_receiver import (
    ReceiverConfig,
    Unavailable,
    make_app,
    serve,
)
from runbook_operator.integrations.kubernetes import Kube, StatusConflict
from runbook_operator.integrations.secrets import read_secret

KIND = Incident.info.kind
#: How long the receiver's token is kept before it is read again (a rotated token is taken
#: within this long).
TOKEN_TTL_SECONDS = 30.0

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Applied:
    """What one report did: the incident it concerns (None: nothing to do) and whether it was
    created or its status changed."""

    name: str | None
    created: bool = False
    changed: bool = False


class StatusChange:
    """The status patch a report makes to an incident as read (a change for
    Kube.update_status): none once it is resolved, a resolved incident being history.
    Remembers whether the last incident it saw needed one."""

    def __init__(self, report: Report, now: datetime) -> None:
        self.report, self.now = report, now
        self.changed = False

    def __call__(self, current: Mapping[str, Any]) -> dict[str, Any] | None:
        patch = None
        if is_open(current):
            old = IncidentStatus.model_validate(current.get("status") or {})
            spec = IncidentSpec.model_validate(current["spec"])
            patch = status_patch(old, after_report(old, spec, self.report, self.now))
        self.changed = patch is not None
        return patch


def apply_report(kube: Kube, namespace: str, report: Report,
                 incidents: Sequence[Mapping[str, Any]], now: datetime) -> Applied:
    """Open or update the one incident of `report`'s source; `incidents` are those the LIST
    found for it. A firing report with no open incident creates one under the episode's name,
    unless an incident recorded this problem already (people resolved it while it goes on)."""
    change = StatusChange(report, now)
    current = open_incident(incidents)
    if current is not None:
        name = current["metadata"]["name"]
        patch = change(current)
        if patch is None:
            return Applied(name)
        try:
            kube.patch_status(API_VERSION, KIND, name, namespace, patch,
                              current["metadata"]["resourceVersion"])
        except StatusConflict:
            kube.update_status(API_VERSION, KIND, name, namespace, change)
        return Applied(name, changed=change.changed)
    if not report.firing or recorded(report, incidents):
        return Applied(None)
    body = new_incident(report)
    name = body["metadata"]["name"]
    body["metadata"]["namespace"] = namespace
    created = kube.create_if_absent(body)
    kube.update_status(API_VERSION, KIND, name, namespace, change)
    if created:
        log.info("opened Incident %s/%s for %s", namespace, name, report.what)
    return Applied(name, created=created, changed=change.changed)


def apply_reports(kube: Kube, namespace: str, reports: Sequence[Report],
                  now: datetime) -> list[Applied]:
    """Apply a source's reports, finding their incidents with one LIST."""
    if not reports:
        return []
    found = by_label(kube.list(API_VERSION, KIND, [namespace],
                               label_selector=label_selector(reports)))
    return [apply_report(kube, namespace, report, found.get(report.label, []), now)
            for report in reports]


def reports_of(kind: str, body: Mapping[str, Any]) -> list[Report]:
    """What an AlertRule or BackupPolicy says; nothing when it asks for no incidents or its
    spec is invalid (its own controller reports that)."""
    try:
        if kind == AlertRule.info.kind:
            return alert_rule_reports(body)
        report = backup_policy_report(body)
    except ValidationError:
        return []
    return [] if report is None else [report]


def reconcile_source(kube: Kube, kind: str, body: Mapping[str, Any]) -> list[Applied]:
    """Open or update the incidents of one source; an Event on the source names each incident
    it opened."""
    meta = body["metadata"]
    applied = apply_reports(kube, meta["namespace"], reports_of(kind, body), _now())
    for opened in applied:
        if opened.created:
            kube.event({"apiVersion": API_VERSION, "kind": kind, **body}, "Normal",
                       "IncidentOpened", f"opened Incident {opened.name}")
    return applied


def asks_for_incidents(body: Mapping[str, Any], event: Mapping[str, Any] | None = None,
                       **_: Any) -> bool:
    """A source with spec.incident that stays (a deleted rule opens nothing more)."""
    going = (event or {}).get("type") == "DELETED" or body["metadata"].get("deletionTimestamp")
    return bool((body.get("spec") or {}).get("incident")) and not going


class CachedToken:
    """The receiver's bearer token from its Secret, read again after TOKEN_TTL_SECONDS."""

    def __init__(self, read: Callable[[], str], ttl: float = TOKEN_TTL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.read, self.ttl, self.clock = read, ttl, clock
        self.value: str | None = None
        self.read_at = 0.0

    async def __call__(self) -> str:
        if self.value is None or self.clock() - self.read_at >= self.ttl:
            self.value = await asyncio.to_thread(self.read)
            self.read_at = self.clock()
        return self.value


def receiver_loop(kube: Kube, config: ReceiverConfig) -> Loop:
    """The Alertmanager receiver as a background loop of the operator."""
    ref = SecretKeyRef(name=config.token_secret, key=config.token_key)
    token = CachedToken(lambda: read_secret(kube, config.token_namespace, ref))
    settings = config.settings

    async def apply(payload: WebhookPayload) -> dict[str, Any]:
        report = group_report(payload, settings)
        try:
            [applied] = await asyncio.to_thread(apply_reports, kube, settings.namespace,
                                                [report], _now())
        except TRANSIENT_API_ERRORS as error:
            raise Unavailable(transient_error_message(error)) from None
        log.info("Alertmanager %s (%s): incident %s%s", report.what, payload.status,
                 applied.name or "-", " created" if applied.created else
                 " updated" if applied.changed else " unchanged")
        return {"incident": applied.name, "created": applied.created,
                "changed": applied.changed}

    app = make_app(token, apply, config.max_body_bytes)

    async def run(_: Logger) -> None:
        await serve(app, config.host, config.port)

    return run


def register(operator: Operator) -> None:
    """Watch and resync the sources that ask for incidents. (The Alertmanager receiver,
    `receiver_loop`, serves on every instance, leading or not: cli/serve.py starts it.)"""
    kube, config = operator.kube, operator.config
    sources: tuple[type[Resource], ...] = (AlertRule, BackupPolicy)
    for resource in sources:
        kind, plural = resource.info.kind, resource.info.plural

        def changed(body: kopf.Body, logger: kopf.Logger, kind: str = kind, **_: Any) -> None:
            try:
                reconcile_source(kube, kind, body)
            except TRANSIENT_API_ERRORS as error:
                logger.warning("incidents of %s not updated, retried at the next resync: %s",
                               kind, transient_error_message(error))

        kopf.on.event(GROUP, VERSION, plural, registry=operator.registry,
                      id=f"{plural}-incidents", when=asks_for_incidents)(changed)

        def resyncing(logger: Logger, kind: str = kind) -> Coroutine[Any, Any, None]:
            return resync_forever(kube, kind, list(config.namespaces), config.resync_seconds,
                                  logger, partial(reconcile_source, kube, kind),
                                  field_selector=ASKS_FOR_INCIDENTS)

        operator.loops.append(resyncing)
