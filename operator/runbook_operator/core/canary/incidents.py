"""The Incident a rolled-back CanaryRollout opens (with `spec.incident`), as a report of
`core.incident.sources`: one source fingerprint per revision, so a revision's rollbacks
update one open Incident and another revision's open another; the episode is the rollback's
start, so a revision retried and rolled back again after its Incident was resolved opens a
new one. The Incident carries the failing measurements (each failed metric is an alert)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runbook_operator.api.canaryrollout import (
    CanaryRollout,
    CanaryRolloutSpec,
    CanaryRolloutStatus,
)
from runbook_operator.api.common import API_VERSION
from runbook_operator.api.incident import IncidentAlert, IncidentSource, RelatedObject
from runbook_operator.core.delivery import fingerprint, rfc3339
from runbook_operator.core.incident.sources import Opening, Report

KIND = CanaryRollout.info.kind
ROLLED_BACK = "CanaryRolledBack"
#: Failing measurements listed in the description (the newest).
LISTED = 10


def rollback_report(meta: Mapping[str, Any], spec: CanaryRolloutSpec,
                    status: CanaryRolloutStatus) -> Report | None:
    """The firing report of a completed rollback, None when there is none or the spec asks
    for no incidents."""
    rollback, revision = status.rollback, status.revision
    if (spec.incident is None or status.phase != "Failed" or rollback is None
            or rollback.completed_at is None or revision is None):
        return None
    namespace, name = meta["namespace"], meta["name"]
    failed = [m for m in status.measurements if m.revision == revision and m.verdict == "Fail"]
    base = {"canaryrollout": name, "revision": revision}
    alerts = [IncidentAlert(
        fingerprint=fingerprint(KIND, namespace, name, revision, m.metric), status="firing",
        labels={**base, "alertname": ROLLED_BACK, "metric": m.metric, "value": m.value or ""},
        starts_at=m.time) for m in {m.metric: m for m in reversed(failed)}.values()]
    if not alerts:
        alerts = [IncidentAlert(
            fingerprint=fingerprint(KIND, namespace, name, revision, rollback.reason),
            status="firing", labels={**base, "alertname": ROLLED_BACK,
                                     "reason": rollback.reason},
            starts_at=rollback.started_at)]
    lines = [f"{rollback.reason}: {rollback.message}"] + [
        f"- {m.metric} = {m.value} at {rfc3339(m.time)} (step {m.step}): {m.message}"
        for m in failed[:LISTED]]
    title = f"Canary {name} rolled back revision {revision}: {rollback.reason}"
    return Report(
        source=IncidentSource(kind=KIND, name=name,
                              fingerprint=fingerprint(KIND, namespace, name, revision)),
        what=f"CanaryRollout {name}", firing=True,
        episode=f"{meta['uid']}/{revision}/{rfc3339(rollback.started_at)}",
        alerts=tuple(alerts), opening=Opening.of(spec.incident, title, "\n".join(lines)),
        related=(RelatedObject(api_version=API_VERSION, kind=KIND, name=name),
                 RelatedObject(api_version="apps/v1", kind="Deployment",
                               name=spec.target_ref.name)))
