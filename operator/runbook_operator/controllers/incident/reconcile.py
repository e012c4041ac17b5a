"""One Incident reconciled (blocking: runs in a worker thread): read, decide
(`core.incident.decide`), notify, write the postmortem, status, the timeline ConfigMap and
Events.

The decision is made from the operator's copy of the incident; before anything is sent the
incident is read again, and before every further page once more, so an acknowledgement or a
resolution stops paging at once: no page goes out after one is seen. Delivery is at least once:
a page whose record did not reach status before the operator died is sent again after the
restart (receivers deduplicate by the incident's dedup key); every other deadline is derived
from status, so nothing is skipped or repeated otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from runbook_operator.api.common import API_VERSION, MANAGED_BY_LABEL, NotificationRecord
from runbook_operator.api.incident import Incident as IncidentKind
from runbook_operator.api.incident import IncidentSpec, IncidentStatus, TimelineEntry
from runbook_operator.controllers import metrics
from runbook_operator.controllers.common import status_patch, warn_if_newly_stalled
from runbook_operator.controllers.errors import (
    TRANSIENT_API_ERRORS,
    transient_error_message,
    validation_message,
)
from runbook_operator.controllers.metrics import measured
from runbook_operator.controllers.notify import notify
from runbook_operator.controllers.scheduler import Key
from runbook_operator.core.conditions import Outcome, Phase, apply_outcome
from runbook_operator.core.incident import configmaps
from runbook_operator.core.incident.decide import (
    Decision,
    Incident,
    PolicyProblem,
    completed,
    decide,
    finish,
    merged_onto,
    next_due,
    still_pages,
)
from runbook_operator.core.incident.lifecycle import RESOLVED
from runbook_operator.core.incident.messages import IncidentRef, notification_for
from runbook_operator.core.incident.escalate import Page
from runbook_operator.core.incident.notifications import Delivery
from runbook_operator.core.incident.policy import CompiledPolicy
from runbook_operator.core.incident.postmortem import render_postmortem
from runbook_operator.integrations.kubernetes import Kube, StatusConflict

KIND = IncidentKind.info.kind
#: How soon a postmortem that could not be written is tried again.
POSTMORTEM_RETRY_SECONDS = 10
log = logging.getLogger(__name__)
Lookup = Callable[[str, str | None], CompiledPolicy | PolicyProblem]


@dataclass
class Memory:
    """What the controller remembers between reconciles to save requests; a restart loses
    it and reads once more."""

    timelines: dict[Key, list[TimelineEntry] | None] = field(default_factory=dict)
    """What each timeline ConfigMap holds, as last read or written; None when a ConfigMap of
    that name is someone else's."""
    postmortem_kept: dict[Key, bool] = field(default_factory=dict)

    def forget(self, key: Key) -> None:
        self.timelines.pop(key, None)
        self.postmortem_kept.pop(key, None)


@dataclass(frozen=True)
class Reconciled:
    body: Mapping[str, Any] | None
    """The newest copy seen or written (None: the incident is gone)."""
    due: datetime | None
    """When it must be reconciled again unless it changes before."""


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def parse(body: Mapping[str, Any]) -> Incident | str:
    """The incident, or why its spec cannot be read."""
    meta = body["metadata"]
    try:
        spec = IncidentSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError as error:
        return validation_message(error, "spec")
    status = IncidentStatus.model_validate(body.get("status") or {})
    created = datetime.fromisoformat(meta["creationTimestamp"].replace("Z", "+00:00"))
    return Incident(ref=IncidentRef(meta["namespace"], meta["name"], meta["uid"]),
                    generation=meta["generation"], created=created, spec=spec, status=status)


def _get(kube: Kube, ref: IncidentRef) -> dict[str, Any] | None:
    return kube.get(API_VERSION, KIND, ref.name, ref.namespace)


@dataclass
class Sent:
    deliveries: list[tuple[Delivery, NotificationRecord]] = field(default_factory=list)
    page_ends: dict[Page, datetime] = field(default_factory=dict)
    """When the last delivery of each page ended."""


def send(kube: Kube, decision: Decision) -> Sent:
    """Deliver in order, from a freshly read incident; before every further page, read it
    again and stop if it changed (acknowledged, resolved, edited)."""
    incident = decision.incident
    sent = Sent()
    for delivery in decision.deliveries:
        if delivery.page is not None and sent.deliveries:
            current = _get(kube, incident.ref)
            if current is None or not still_pages(
                    decision, current["metadata"]["generation"],
                    IncidentStatus.model_validate(current.get("status") or {})):
                log.info("incident %s/%s changed while paging: stopped before %s",
                         incident.ref.namespace, incident.ref.name, delivery.channel)
                break
        notification = notification_for(incident.ref, incident.spec, decision.status,
                                         delivery, decision.now)
        (outcome,) = notify(kube, incident.ref.namespace, [delivery.channel], notification)
        metrics.NOTIFICATIONS.labels(KIND, outcome.result).inc()
        sent.deliveries.append((delivery, outcome))
        if delivery.page is not None:
            sent.page_ends[delivery.page] = datetime.now(UTC)
    return sent


def _stored_timeline(kube: Kube, ref: IncidentRef,
                     memory: Memory) -> list[TimelineEntry] | None:
    """The timeline ConfigMap's entries; None when a ConfigMap of its name is not the
    operator's (an Incident's name must not let its author overwrite, or hand to the garbage
    collector, a ConfigMap they may not touch)."""
    key = ref.key
    if key not in memory.timelines:
        name = configmaps.timeline_name(ref.name)
        found = kube.get("v1", "ConfigMap", name, ref.namespace)
        if found is not None and not _ours(found):
            log.warning("incident %s/%s: ConfigMap %s is not the operator's; the timeline is "
                        "kept in status only", ref.namespace, ref.name, name)
            memory.timelines[key] = None
        else:
            memory.timelines[key] = configmaps.parse_timeline(found)
    return memory.timelines[key]


def _ours(configmap: Mapping[str, Any]) -> bool:
    return MANAGED_BY_LABEL in (configmap["metadata"].get("labels") or {})


def keep_postmortem_as_asked(kube: Kube, ref: IncidentRef, keep: bool, memory: Memory,
                             existing: Mapping[str, Any] | None = None) -> None:
    """Own the postmortem (it goes with the Incident) unless asked to keep it."""
    key = ref.key
    if memory.postmortem_kept.get(key) == keep:
        return
    name = configmaps.postmortem_name(ref.name)
    found = existing or kube.get("v1", "ConfigMap", name, ref.namespace)
    if found is not None and _ours(found):
        patch = configmaps.ownership_patch(found, ref, keep)
        if patch is not None:
            kube.merge_patch("v1", "ConfigMap", name, ref.namespace, patch)
    memory.postmortem_kept[key] = keep


def write_postmortem(kube: Kube, body: Mapping[str, Any], decision: Decision,
                     stored: Sequence[TimelineEntry], memory: Memory) -> str:
    """Render the postmortem into its ConfigMap (never over people's edits); what happened."""
    incident = decision.incident
    ref, status = incident.ref, decision.status
    keep = configmaps.keeps_postmortem(body["metadata"].get("annotations"))
    policy = incident.spec.escalation_policy_ref
    text = render_postmortem(ref, incident.spec, status,
                             configmaps.merged_timeline(stored, status.timeline),
                             policy.name if policy else None)
    name = configmaps.postmortem_name(ref.name)
    kept = " (kept when the Incident is deleted)" if keep else ""
    existing = kube.get("v1", "ConfigMap", name, ref.namespace)
    if existing is None:
        kube.create_if_absent(configmaps.postmortem_configmap(ref, text, keep))
        memory.postmortem_kept[ref.key] = keep
        return f"postmortem written to ConfigMap {name}{kept}"
    keep_postmortem_as_asked(kube, ref, keep, memory, existing)
    if configmaps.edited(existing):
        return f"ConfigMap {name} was edited since it was written: kept as it is"
    rendered = configmaps.postmortem_configmap(ref, text, keep)
    kube.merge_patch("v1", "ConfigMap", name, ref.namespace, {
        "data": rendered["data"],
        "metadata": {"annotations": rendered["metadata"]["annotations"]}})
    return f"postmortem rewritten in ConfigMap {name}{kept}"


def sync_timeline(kube: Kube, ref: IncidentRef, status: IncidentStatus,
                  memory: Memory) -> None:
    """The whole timeline in its ConfigMap: what it held plus status' newest entries."""
    stored = _stored_timeline(kube, ref, memory)
    if stored is None:
        return
    entries = configmaps.merged_timeline(stored, status.timeline)
    if entries != stored or not stored:
        kube.apply(configmaps.timeline_configmap(ref, entries))
        memory.timelines[ref.key] = entries


def incident_status_patch(old: IncidentStatus, new: IncidentStatus) -> dict[str, Any] | None:
    """The merge patch from `old` to `new`; a changed `escalation` is sent whole, with nulls,
    since a merge patch merges nested objects and would keep a cleared nextDeadline."""
    patch = status_patch(old, new)
    if patch is not None and patch.get("escalation") is not None:
        assert new.escalation is not None
        patch["escalation"] = new.escalation.model_dump(mode="json", by_alias=True)
    return patch


def write_status(kube: Kube, body: Mapping[str, Any], base: IncidentStatus,
                 final: IncidentStatus) -> Mapping[str, Any] | None:
    """One guarded patch; if someone wrote meanwhile, the decision is replayed onto what they
    wrote (`merged_onto`), so neither write is lost."""
    patch = incident_status_patch(base, final)
    if patch is None:
        return body
    meta = body["metadata"]
    try:
        return kube.patch_status(API_VERSION, KIND, meta["name"], meta["namespace"], patch,
                                 meta["resourceVersion"])
    except StatusConflict:

        def change(current: dict[str, Any]) -> dict[str, Any] | None:
            fresh = IncidentStatus.model_validate(current.get("status") or {})
            return incident_status_patch(fresh, merged_onto(fresh, base, final))

        return kube.update_status(API_VERSION, KIND, meta["name"], meta["namespace"], change)


def stall(kube: Kube, body: Mapping[str, Any], message: str) -> None:
    """An incident whose spec the operator cannot read: Stalled, one Event per message."""
    meta = body["metadata"]
    old = IncidentStatus.model_validate(body.get("status") or {})
    outcome = Outcome(Phase.STALLED, "InvalidSpec", message)
    new = old.model_copy(update={
        "observed_generation": meta["generation"],
        "conditions": apply_outcome(old.conditions, outcome, _now(), meta["generation"])})
    write_status(kube, body, old, new)
    before = (body.get("status") or {}).get("conditions") or []
    warn_if_newly_stalled(kube, body, outcome, before, log)


def _decide(kube: Kube, body: Mapping[str, Any],
            lookup: Lookup) -> tuple[Mapping[str, Any], Decision] | str | None:
    """The decision and the copy it was made from: the operator's copy when nothing is to be
    sent, a fresh read otherwise. Why the spec is unreadable, or None when it is gone."""
    fresh = False
    while True:
        parsed = parse(body)
        if isinstance(parsed, str):
            return parsed
        ref, policy = parsed.ref, parsed.spec.escalation_policy_ref
        decision = decide(parsed, lookup(ref.namespace, policy.name if policy else None), _now())
        if not decision.deliveries or fresh:
            return body, decision
        found = _get(kube, ref)
        if found is None:
            return None
        body, fresh = found, True


def _postmortem(kube: Kube, body: Mapping[str, Any], decision: Decision,
                memory: Memory) -> tuple[str | None, datetime | None]:
    """Write the postmortem when due, and its ownership as asked: what to say in the timeline,
    and when to try again if the API failed (what was sent reaches status regardless)."""
    ref = decision.incident.ref
    try:
        if decision.postmortem_due:
            stored = _stored_timeline(kube, ref, memory) or []
            return write_postmortem(kube, body, decision, stored, memory), None
        if decision.status.phase == RESOLVED:
            keep = configmaps.keeps_postmortem(body["metadata"].get("annotations"))
            keep_postmortem_as_asked(kube, ref, keep, memory)
    except TRANSIENT_API_ERRORS as error:
        log.warning("postmortem of incident %s/%s not written, retried in %ss: %s",
                    ref.namespace, ref.name, POSTMORTEM_RETRY_SECONDS,
                    transient_error_message(error))
        return None, decision.now + timedelta(seconds=POSTMORTEM_RETRY_SECONDS)
    return None, None


def _published(decision: Decision, final: IncidentStatus, sent: Sent) -> None:
    """Metrics of a reconcile whose status was written."""
    incident = decision.incident
    severity = incident.spec.severity
    metrics.track_incident(incident.ref.namespace, incident.ref.name,
                           None if final.phase == RESOLVED else severity)
    if decision.mtta_recorded is not None:
        metrics.INCIDENT_MTTA.labels(severity).observe(decision.mtta_recorded)
    if decision.mttr_recorded is not None:
        metrics.INCIDENT_MTTR.labels(severity).observe(decision.mttr_recorded)
    for page in completed(decision, [delivery for delivery, _ in sent.deliveries]):
        metrics.INCIDENT_ESCALATIONS.labels(str(page.level)).inc()
        if page in sent.page_ends:
            late = (sent.page_ends[page] - page.due_at).total_seconds()
            metrics.INCIDENT_ESCALATION_LATENESS.observe(max(0.0, late))


def reconcile(kube: Kube, body: Mapping[str, Any], lookup: Lookup,
              memory: Memory) -> Reconciled:
    """Decide and carry out one reconcile of the incident `body` (the operator's copy)."""
    with measured(KIND) as result:
        decided = _decide(kube, body, lookup)
        if decided is None:
            return Reconciled(None, None)
        if isinstance(decided, str):
            stall(kube, body, decided)
            result.value = "stalled"
            return Reconciled(body, None)
        body, decision = decided
        incident = decision.incident
        sent = send(kube, decision)
        note, retry = _postmortem(kube, body, decision, memory)
        final, events = finish(decision, sent.deliveries, note)
        if retry is not None:
            final = final.model_copy(update={"postmortem_ref": incident.status.postmortem_ref})
        written = write_status(kube, body, incident.status, final)
        if written is None:
            return Reconciled(None, None)
        if final.timeline != incident.status.timeline or incident.ref.key not in memory.timelines:
            sync_timeline(kube, incident.ref, final, memory)
        for event in (*decision.events, *events):
            kube.event(dict(body), event.type, event.reason, event.message)
        _published(decision, final, sent)
        stalled = any(c.type == "Stalled" and c.status == "True" for c in final.conditions)
        result.value = "stalled" if stalled else "ready"
        due = next_due(final)
        return Reconciled(written, min(due, retry) if due and retry else due or retry)
