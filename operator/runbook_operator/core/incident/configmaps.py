"""The ConfigMaps an incident writes: `<incident>-timeline` (the whole timeline, one JSON entry
per line; status keeps only the newest) and `<incident>-postmortem` (the Markdown written on
resolution). Pure: bodies in, bodies out.

The timeline ConfigMap is owned by its Incident and goes with it. The postmortem is owned too,
unless the Incident carries the annotation `runbook.dev/keep-postmortem: "true"`: then it has
no owner and outlives the Incident. People edit the postmortem (root cause, action items): a
postmortem whose text is no longer what the operator rendered is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from runbook_operator.api.common import API_VERSION, MANAGED_BY_LABEL, MANAGED_BY_VALUE
from runbook_operator.api.incident import POSTMORTEM_SUFFIX, TIMELINE_SUFFIX, TimelineEntry
from runbook_operator.core.incident.messages import KIND, IncidentRef

TIMELINE_KEY = "timeline.jsonl"
POSTMORTEM_KEY = "postmortem.md"
#: On the incident's ConfigMaps: the incident's name.
INCIDENT_LABEL = "runbook.dev/incident"
#: On an Incident: keep its postmortem when the Incident is deleted.
KEEP_POSTMORTEM_ANNOTATION = "runbook.dev/keep-postmortem"
#: On a postmortem: the sha256 of the text the operator rendered (an edit changes the text).
RENDERED_ANNOTATION = "runbook.dev/rendered-sha256"
#: A ConfigMap holds at most 1 MiB; the oldest entries beyond this are left out.
TIMELINE_BYTES = 900 * 1024


def timeline_name(incident: str) -> str:
    return incident + TIMELINE_SUFFIX


def postmortem_name(incident: str) -> str:
    return incident + POSTMORTEM_SUFFIX


def keeps_postmortem(annotations: Mapping[str, str] | None) -> bool:
    return (annotations or {}).get(KEEP_POSTMORTEM_ANNOTATION, "").lower() == "true"


def _entry_key(entry: TimelineEntry) -> str:
    return json.dumps(entry.to_wire(), sort_keys=True, ensure_ascii=False)


def merged_timeline(*sources: Iterable[TimelineEntry]) -> list[TimelineEntry]:
    """All entries of `sources`, each once, in time order (the ConfigMap's and status', which
    overlap); entries of the same time keep the order they were recorded in."""
    unique: dict[str, TimelineEntry] = {}
    for source in sources:
        for entry in source:
            unique.setdefault(_entry_key(entry), entry)
    return sorted(unique.values(), key=lambda entry: entry.time)


def parse_timeline(configmap: Mapping[str, Any] | None) -> list[TimelineEntry]:
    """The entries in a timeline ConfigMap; unreadable lines are skipped."""
    text = ((configmap or {}).get("data") or {}).get(TIMELINE_KEY, "")
    entries = []
    for line in text.splitlines():
        try:
            entries.append(TimelineEntry.model_validate_json(line))
        except ValidationError:
            continue
    return entries


def timeline_text(entries: Sequence[TimelineEntry], limit: int = TIMELINE_BYTES) -> str:
    """JSON lines, the newest entries that fit in `limit` bytes."""
    lines: list[str] = []
    size = 0
    for entry in reversed(entries):
        line = json.dumps(entry.to_wire(), ensure_ascii=False, separators=(",", ":"))
        size += len(line.encode()) + 1
        if size > limit:
            break
        lines.append(line)
    return "".join(f"{line}\n" for line in reversed(lines))


def _owner(ref: IncidentRef) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "name": ref.name, "uid": ref.uid,
            "controller": True, "blockOwnerDeletion": False}


def _metadata(ref: IncidentRef, name: str, owned: bool) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name, "namespace": ref.namespace,
        "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, INCIDENT_LABEL: ref.name}}
    if owned:
        metadata["ownerReferences"] = [_owner(ref)]
    return metadata


def timeline_configmap(ref: IncidentRef, entries: Sequence[TimelineEntry]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _metadata(ref, timeline_name(ref.name), owned=True),
            "data": {TIMELINE_KEY: timeline_text(entries)}}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def postmortem_configmap(ref: IncidentRef, text: str, keep: bool) -> dict[str, Any]:
    metadata = _metadata(ref, postmortem_name(ref.name), owned=not keep)
    metadata["annotations"] = {RENDERED_ANNOTATION: sha256(text)}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata,
            "data": {POSTMORTEM_KEY: text}}


def edited(configmap: Mapping[str, Any]) -> bool:
    """Whether people changed the postmortem since the operator rendered it."""
    text = (configmap.get("data") or {}).get(POSTMORTEM_KEY, "")
    rendered = (configmap["metadata"].get("annotations") or {}).get(RENDERED_ANNOTATION)
    return rendered != sha256(text)


def ownership_patch(configmap: Mapping[str, Any], ref: IncidentRef,
                    keep: bool) -> dict[str, Any] | None:
    """The merge patch that makes the postmortem owned by its incident or not, as asked;
    None when it already is."""
    owners = configmap["metadata"].get("ownerReferences") or []
    owned = any(owner.get("uid") == ref.uid for owner in owners)
    if owned != keep:
        return None
    others = [owner for owner in owners if owner.get("uid") != ref.uid]
    wanted = others if keep else [*others, _owner(ref)]
    return {"metadata": {"ownerReferences": wanted or None}}
