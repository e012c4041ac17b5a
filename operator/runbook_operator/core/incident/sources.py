"""How incidents come into being: a source (a firing AlertRule instance, a failing
BackupPolicy, an Alertmanager group) reports what it sees about one fingerprint, and these pure
functions decide which Incident that opens or updates, and what its status becomes.

One open Incident per source fingerprint, found with one label-selector LIST
(`records.SOURCE_LABEL`). A new one gets a name derived from the source and the episode (the
problem's start), so two operator instances or a retry create it at most once
(create-if-absent). A new episode while an incident is open updates it; once it is resolved,
the next episode opens a new one. Incidents are never owned by their source: deleting a rule
keeps its incidents. The operator writes an Incident's spec only when it creates it; what it
learns later (alerts, related objects, recovery, resolution) goes to status.

Reports are functions of the source's stored state only (never of `now`), so a report repeated
by a resync or a redelivery changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runbook_operator.api.alertrule import AlertInstance, AlertRule, AlertRuleSpec, AlertRuleStatus
from runbook_operator.api.backuppolicy import BackupPolicy, BackupPolicySpec, BackupPolicyStatus
from runbook_operator.api.common import API_VERSION, MANAGED_BY_LABEL, MANAGED_BY_VALUE
from runbook_operator.api.escalationpolicy import IncidentSeverity
from runbook_operator.api.incident import (
    MAX_RELATED,
    Incident,
    IncidentAlert,
    IncidentSource,
    IncidentSpec,
    IncidentStatus,
    IncidentTrigger,
    PolicyRef,
    RelatedObject,
    TimelineEntry,
)
from runbook_operator.core.alertrule.templates import render_template
from runbook_operator.core.delivery import fingerprint, rfc3339, truncate
from runbook_operator.core.incident.records import (
    SOURCE_LABEL,
    merged_alerts,
    source_label,
    source_recovered,
    with_timeline,
)

KIND = Incident.info.kind
RESOLVED = "Resolved"
#: Characters of the source's name that start an incident's name, and of the hash that ends it.
NAME_STEM_LIMIT = 40
NAME_HASH_LENGTH = 10
#: Alerts named in a timeline entry; the rest are counted.
ALERTS_NAMED = 3
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 8192
MESSAGE_LIMIT = 1024
FIRING_STATES = ("Firing", "Recovering")
BACKUP_FAILED = "BackupFailed"
RPO_BREACHED = "RPOBreached"


@dataclass(frozen=True)
class Opening:
    """The spec of an incident a report opens; people own it from then on."""

    title: str
    severity: IncidentSeverity
    description: str = ""
    policy: str | None = None
    resolve_when_recovered: bool = False

    @classmethod
    def of(cls, trigger: IncidentTrigger, title: str, description: str = "") -> Opening:
        policy = trigger.escalation_policy_ref
        return cls(title=title, severity=trigger.severity, description=description,
                   policy=None if policy is None else policy.name,
                   resolve_when_recovered=trigger.resolve_when_recovered)


@dataclass(frozen=True)
class Report:
    """What a source says about one fingerprint now."""

    source: IncidentSource
    what: str
    """The source for people, in timeline entries (e.g. `AlertRule checkout-5xx`)."""
    firing: bool
    """Whether the problem is present."""
    episode: str
    """Identifies the current problem (its start), stable across retries and processes: it
    names the incident a firing report creates."""
    alerts: tuple[IncidentAlert, ...]
    opening: Opening
    related: tuple[RelatedObject, ...] = ()
    truncated: int = 0
    """Alerts the sender left out."""
    recovered_at: datetime | None = None
    """When the source recovered: the end of firing alerts it no longer reports."""
    stem: str = ""
    """Start of the incident's name (default: the source's name)."""

    @property
    def label(self) -> str:
        return source_label(self.source.kind, self.source.name, self.source.fingerprint)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def incident_name(report: Report) -> str:
    """`<source>-<hash of source and episode>`: the same for every retry and every operator
    instance that sees the same episode, new for the next episode."""
    stem = _slug(report.stem or report.source.name)[:NAME_STEM_LIMIT].strip("-") or "incident"
    source = report.source
    digest = fingerprint(source.kind, source.name, source.fingerprint, report.episode)
    return f"{stem}-{digest[:NAME_HASH_LENGTH]}"


def new_incident(report: Report) -> dict[str, Any]:
    """The Incident a firing report opens: spec from the source, labelled with the source's
    hash and no ownerReference."""
    opening = report.opening
    spec = IncidentSpec(
        title=truncate(opening.title, TITLE_LIMIT),
        description=truncate(opening.description, DESCRIPTION_LIMIT),
        severity=opening.severity,
        escalation_policy_ref=None if opening.policy is None else PolicyRef(name=opening.policy),
        source=report.source,
        resolve_when_source_recovers=opening.resolve_when_recovered,
    )
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": incident_name(report),
            "labels": {SOURCE_LABEL: report.label, MANAGED_BY_LABEL: MANAGED_BY_VALUE},
        },
        "spec": spec.to_wire(),
    }


def is_open(incident: Mapping[str, Any]) -> bool:
    """Not resolved, by people (spec.status) or by the operator (status.phase)."""
    spec = incident.get("spec") or {}
    status = incident.get("status") or {}
    return spec.get("status") != RESOLVED and status.get("phase") != RESOLVED


def open_incident(incidents: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The open incident among a source's incidents: the oldest, should there be several."""
    found = sorted((i for i in incidents if is_open(i)), key=lambda i: (
        i["metadata"].get("creationTimestamp") or "", i["metadata"]["name"]))
    return found[0] if found else None


def recorded(report: Report, incidents: Iterable[Mapping[str, Any]]) -> bool:
    """Whether an incident of the source has recorded this problem already: it bears the name
    this episode would get, or holds one of the report's firing alerts with the same start.
    An incident people resolved while its problem goes on stays resolved; the source firing
    anew (a new start) opens a new one."""
    name = incident_name(report)
    firing = {(a.fingerprint, a.starts_at) for a in report.alerts if a.status == "firing"}
    for incident in incidents:
        if incident["metadata"]["name"] == name:
            return True
        for alert in (incident.get("status") or {}).get("alerts") or []:
            seen = IncidentAlert.model_validate(alert)
            if (seen.fingerprint, seen.starts_at) in firing:
                return True
    return False


def by_label(incidents: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Incidents grouped by their SOURCE_LABEL (one LIST for several reports)."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for incident in incidents:
        label = (incident["metadata"].get("labels") or {}).get(SOURCE_LABEL)
        if label is not None:
            grouped.setdefault(label, []).append(incident)
    return grouped


def label_selector(reports: Sequence[Report]) -> str:
    """One label selector for the incidents of every report."""
    labels = sorted({report.label for report in reports})
    return f"{SOURCE_LABEL} in ({','.join(labels)})"


def _reported(alert: IncidentAlert, known: IncidentAlert | None,
              recovered_at: datetime | None) -> IncidentAlert:
    """`alert` as it updates `known`: a resolved report keeps what the firing one said (labels,
    start) and ends when it says, or when the source recovered."""
    if known is None or alert.status == "firing":
        return alert
    return known.model_copy(update={"status": "resolved",
                                    "ends_at": alert.ends_at or known.ends_at or recovered_at})


def _incoming(status: IncidentStatus, report: Report) -> list[IncidentAlert]:
    """The alerts the report changes: firing ones, resolved ones the incident knows, and,
    once the source recovered, the end of every alert still firing."""
    known = {alert.fingerprint: alert for alert in status.alerts}
    incoming = [_reported(alert, known.get(alert.fingerprint), report.recovered_at)
                for alert in report.alerts
                if alert.status == "firing" or alert.fingerprint in known]
    if not report.firing:
        reported = {alert.fingerprint for alert in incoming}
        incoming += [alert.model_copy(update={"status": "resolved",
                                              "ends_at": report.recovered_at})
                     for alert in status.alerts
                     if alert.status == "firing" and alert.fingerprint not in reported]
    return incoming


def _merged_related(current: Sequence[RelatedObject],
                    added: Iterable[RelatedObject]) -> list[RelatedObject]:
    """Each object once, in the order first seen; past the cap the first (the source) stays
    with the newest."""
    unique: dict[tuple[str, str, str], RelatedObject] = {}
    for item in [*current, *added]:
        unique.setdefault((item.api_version, item.kind, item.name), item)
    related = list(unique.values())
    return related if len(related) <= MAX_RELATED else [
        related[0], *related[len(related) - MAX_RELATED + 1:]]


def describe_alert(alert: IncidentAlert) -> str:
    """`alertname{label="value",...}`, as Prometheus shows a series."""
    labels = {k: v for k, v in sorted(alert.labels.items()) if k != "alertname"}
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return alert.labels.get("alertname", "") + (f"{{{inner}}}" if inner else "")


def alerts_message(alerts: Sequence[IncidentAlert], truncated: int, again: bool) -> str:
    """One line for a timeline entry: counts, then the first firing alerts."""
    firing = [alert for alert in alerts if alert.status == "firing"]
    counts = f"{len(firing)} firing, {len(alerts) - len(firing)} resolved"
    if truncated:
        counts += f", {truncated} more not listed"
    named = "; ".join(describe_alert(alert) for alert in firing[:ALERTS_NAMED])
    more = f"; and {len(firing) - ALERTS_NAMED} more" if len(firing) > ALERTS_NAMED else ""
    text = f"{'firing again' if again else 'alerts'}: {counts}" + (
        f": {named}{more}" if named else "")
    return truncate(text, MESSAGE_LIMIT)


def after_report(status: IncidentStatus, spec: IncidentSpec, report: Report,
                 now: datetime) -> IncidentStatus:
    """An open incident's status after its source reported: alerts merged by fingerprint
    (bounded, the excess counted), related objects added, a timeline entry when alerts change
    ("AlertsChanged"), and the source's recovery recorded once (`sourceRecoveredAt`, a
    "SourceRecovered" entry) or withdrawn when it fires again. Resolving on recovery is the
    Incident controller's decision (spec.resolveWhenSourceRecovers), never the source's. The
    same report again changes nothing."""
    alerts, truncated = merged_alerts(status.alerts, _incoming(status, report),
                                      report.truncated)
    entries: list[TimelineEntry] = []
    was_firing = any(alert.status == "firing" for alert in status.alerts)
    if alerts != status.alerts and report.firing:
        again = bool(status.alerts) and not was_firing
        entries.append(TimelineEntry(time=now, event="AlertsChanged",
                                     message=alerts_message(alerts, truncated, again)))
    new = with_timeline(status.model_copy(update={
        "alerts": alerts,
        "truncated_alerts": truncated,
        "related": _merged_related(status.related, report.related),
        "source_recovered_at": None if report.firing else status.source_recovered_at,
    }), entries)
    if not report.firing and was_firing and alerts != status.alerts:
        new = source_recovered(new, now, truncate(f"{report.what} recovered", MESSAGE_LIMIT))
    return new


# The sources.


def _related(kind: str, name: str, api_version: str = API_VERSION) -> RelatedObject:
    return RelatedObject(api_version=api_version, kind=kind, name=name)


def _instance_alert(rule: str, spec: AlertRuleSpec, instance: AlertInstance,
                    firing: bool) -> IncidentAlert:
    labels = {**spec.labels, **instance.labels, "alertname": rule}
    return IncidentAlert(
        fingerprint=instance.fingerprint, status="firing" if firing else "resolved",
        labels=labels, starts_at=instance.firing_since,
        ends_at=None if firing else instance.resolved_at)


def _instance_texts(rule: str, spec: AlertRuleSpec, instance: AlertInstance) -> tuple[str, str]:
    """Title and description: the rule's summary and description annotations rendered for the
    instance (as its notifications are), else what the rule checks."""
    try:
        value = None if instance.last_value is None else float(instance.last_value)
    except ValueError:
        value = None
    rendered = {key: render_template(text, instance.labels, value)
                for key, text in spec.annotations.items()}
    labels = ", ".join(f"{k}={v}" for k, v in sorted(instance.labels.items()))
    title = rendered.get("summary") or f"{rule} is firing" + (f" ({labels})" if labels else "")
    condition = spec.condition
    checks = (f"{spec.query} {condition.operator} {condition.threshold:g}"
              if spec.query and condition else "anomaly detection")
    return title, rendered.get("description") or f"AlertRule {rule}: {checks}"


def alert_rule_reports(body: Mapping[str, Any]) -> list[Report]:
    """One report per instance of an AlertRule with spec.incident that fires or has resolved
    (instances that never fired say nothing; an instance in Error says nothing until its
    query answers again). The episode is the instance's firing start."""
    spec = AlertRuleSpec.model_validate(body.get("spec") or {})
    trigger = spec.incident
    if trigger is None:
        return []
    status = AlertRuleStatus.model_validate(body.get("status") or {})
    meta = body["metadata"]
    rule = meta["name"]
    reports = []
    for instance in status.instances:
        firing = instance.state in FIRING_STATES and instance.firing_since is not None
        if instance.state == "Error" or (not firing and instance.resolved_at is None):
            continue
        title, description = _instance_texts(rule, spec, instance)
        episode = f"{meta['uid']}/{rfc3339(instance.firing_since)}" if firing else ""
        reports.append(Report(
            source=IncidentSource(kind=AlertRule.info.kind, name=rule,
                                  fingerprint=instance.fingerprint),
            what=f"AlertRule {rule}", firing=firing, episode=episode,
            alerts=(_instance_alert(rule, spec, instance, firing),),
            opening=Opening.of(trigger, title, description),
            related=(_related(AlertRule.info.kind, rule),),
            recovered_at=instance.resolved_at,
        ))
    return reports


def backup_policy_report(body: Mapping[str, Any]) -> Report | None:
    """The report of a BackupPolicy with spec.incident: firing while its newest backup run
    failed or its RPO is breached. One fingerprint per policy, so further failures update the
    open incident (each failed Job is related); the episode is the failed run (else the
    breach), so a failure after the incident was resolved opens a new one."""
    spec = BackupPolicySpec.model_validate(body.get("spec") or {})
    trigger = spec.incident
    if trigger is None:
        return None
    status = BackupPolicyStatus.model_validate(body.get("status") or {})
    meta = body["metadata"]
    name = meta["name"]
    kind = BackupPolicy.info.kind
    job = status.last_job
    failed = job is not None and job.outcome == "Failed"
    rpo = next((c for c in status.conditions if c.type == "RPOMet"), None)
    breached = rpo is not None and rpo.status == "False"
    base = {"backuppolicy": name}
    alerts = [
        IncidentAlert(
            fingerprint=fingerprint(kind, meta["namespace"], name, BACKUP_FAILED),
            status="firing" if failed else "resolved",
            labels={**base, "alertname": BACKUP_FAILED,
                    **({"job": job.name, "reason": job.reason} if failed and job else {})},
            starts_at=job.finished_at if failed and job else None,
            ends_at=None if failed else status.last_successful_time),
        IncidentAlert(
            fingerprint=fingerprint(kind, meta["namespace"], name, RPO_BREACHED),
            status="firing" if breached else "resolved",
            labels={**base, "alertname": RPO_BREACHED},
            starts_at=rpo.last_transition_time if breached and rpo else None,
            ends_at=rpo.last_transition_time if rpo and not breached else None),
    ]
    if failed and job is not None:
        title = f"Backup {name} failed: {job.reason or 'Failed'}"
        description = f"Job {job.name}: {job.message}".strip(": ")
    else:
        title = f"Backup {name} breached its RPO" + (f" of {spec.rpo}" if spec.rpo else "")
        description = rpo.message if rpo is not None else ""
    if failed and job is not None:
        episode = f"{meta['uid']}/{job.name}"
    else:
        episode = f"{meta['uid']}/rpo/{rfc3339(rpo.last_transition_time) if rpo else ''}"
    related = [_related(kind, name)]
    if failed and job is not None:
        related.append(_related("Job", job.name, "batch/v1"))
    return Report(
        source=IncidentSource(kind=kind, name=name,
                              fingerprint=fingerprint(kind, meta["namespace"], name)),
        what=f"BackupPolicy {name}", firing=failed or breached,
        episode=episode, alerts=tuple(alerts), opening=Opening.of(trigger, title, description),
        related=tuple(related), recovered_at=status.last_successful_time,
    )
