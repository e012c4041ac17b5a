"""The postmortem written when an incident is resolved: Markdown from the runbooks' template —
summary, impact, the whole timeline, MTTA and MTTR, and placeholders for the root cause, action
items and lessons that people write afterwards. Pure: the incident and its timeline in, text
out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from string import Template

from runbook_operator.api.incident import IncidentSpec, IncidentStatus, TimelineEntry
from runbook_operator.core.delivery import rfc3339
from runbook_operator.core.incident.messages import IncidentRef

TEMPLATE = Template("""\
# Postmortem: $title

| | |
|---|---|
$facts

## Summary

$summary

## Impact

$impact

## Timeline

All times UTC.

| Time | Event | By | What happened |
|---|---|---|---|
$timeline

## Response

- Time to acknowledge (MTTA): $mtta
- Time to resolve (MTTR): $mttr
- Escalation: $escalation

## Root cause

_To be written: the chain of causes, what triggered it, and why it was not caught earlier._

## Action items

| Action | Owner | Priority | Ticket |
|---|---|---|---|
| _To be written_ | | | |

## Lessons learned

### What went well

_To be written._

### What went wrong

_To be written._

### Where we got lucky

_To be written._
""")


def duration(seconds: float | None) -> str:
    """`1h 2m 3s`; `-` when not known."""
    if seconds is None:
        return "-"
    left = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    if left or not parts:
        parts.append(f"{left}s")
    return " ".join(parts)


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.replace("|", "\\|").split())


def _time(moment: datetime | None) -> str:
    return rfc3339(moment) if moment else "-"


def _facts(ref: IncidentRef, spec: IncidentSpec, status: IncidentStatus) -> str:
    facts = [("Incident", f"`{ref.namespace}/{ref.name}`"), ("Severity", spec.severity),
             ("Opened", _time(status.opened_at))]
    if status.acknowledged_by:
        facts.append(("Acknowledged", f"{_time(status.acknowledged_at)} by "
                                      f"{cell(status.acknowledged_by)}"))
    facts.append(("Resolved", _time(status.resolved_at)))
    if spec.commander:
        facts.append(("Commander", cell(spec.commander)))
    if spec.source is not None:
        facts.append(("Source", cell(f"{spec.source.kind} {spec.source.name}".strip())))
    return "\n".join(f"| {name} | {value} |" for name, value in facts)


def _impact(spec: IncidentSpec) -> str:
    impact = spec.impact
    lines = []
    if impact is not None and impact.services:
        lines.append(f"- Services: {', '.join(impact.services)}")
    if impact is not None and impact.users_affected is not None:
        lines.append(f"- Users affected: {impact.users_affected}")
    if impact is not None and impact.summary:
        lines.append(f"- {impact.summary}")
    return "\n".join(lines) or "_To be written: who and what was affected, and for how long._"


def _escalation(status: IncidentStatus, policy: str | None) -> str:
    state = status.escalation
    if policy is None or state is None:
        return "no EscalationPolicy: nobody was paged"
    if not state.climbing and not state.step:
        return f"EscalationPolicy {policy}: routed to channels only"
    reached = f"reached L{state.level} (step {state.step})" if state.step else "no level reached"
    retriggers = f", {state.retriggers} re-trigger(s)" if state.retriggers else ""
    return f"EscalationPolicy {policy}: {reached}{retriggers}"


def render_postmortem(ref: IncidentRef, spec: IncidentSpec, status: IncidentStatus,
                      timeline: Sequence[TimelineEntry], policy: str | None) -> str:
    """The postmortem of a resolved incident, with its whole `timeline`."""
    rows = "\n".join(
        f"| {rfc3339(entry.time)} | {entry.event} | {cell(entry.by or '')} | "
        f"{cell(entry.message)} |" for entry in sorted(timeline, key=lambda e: e.time))
    return TEMPLATE.substitute(
        title=cell(spec.title),
        facts=_facts(ref, spec, status),
        summary=spec.description.strip() or "_To be written: what happened, in two or three "
        "sentences._",
        impact=_impact(spec),
        timeline=rows,
        mtta=duration(status.mtta_seconds) if status.mtta_seconds is not None
        else "not acknowledged",
        mttr=duration(status.mttr_seconds),
        escalation=_escalation(status, policy),
    )
