"""One reconcile of an Incident, decided: from its spec and status, its EscalationPolicy (or why
there is none) and `now`, the status to write, the notifications to send, the postmortem to
write and the Events to record. `finish` folds what was actually sent back in, so that a step
counts as paged only once every channel of it was tried, and `merged_onto` replays a decision
onto a status someone else wrote meanwhile (a source adding alerts) without losing either.

An incident without a usable policy pages nobody, and says so: Stalled with the reason, one
timeline entry and one Warning Event per distinct reason (never silently).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from runbook_operator.api.common import Condition, NotificationRecord
from runbook_operator.api.incident import (
    NOTIFICATION_LOG_LIMIT,
    IncidentSpec,
    IncidentStatus,
    TimelineEntry,
)
from runbook_operator.core.conditions import Outcome, Phase, apply_outcome, set_condition
from runbook_operator.core.delivery import rfc3339
from runbook_operator.core.incident.configmaps import postmortem_name, timeline_name
from runbook_operator.core.incident.escalate import Climb, Page, climb, page_message
from runbook_operator.core.incident.lifecycle import RESOLVED, effective_acknowledgement, observe
from runbook_operator.core.incident.messages import IncidentRef
from runbook_operator.core.incident.notifications import Delivery, plan
from runbook_operator.core.incident.policy import CompiledPolicy, Route
from runbook_operator.core.incident.postmortem import duration
from runbook_operator.core.incident.records import with_timeline
from runbook_operator.core.notify_plan import record


@dataclass(frozen=True)
class Incident:
    """An Incident as the core sees it."""

    ref: IncidentRef
    generation: int
    created: datetime
    spec: IncidentSpec
    status: IncidentStatus


@dataclass(frozen=True)
class PolicyProblem:
    """Why the incident has no policy to follow."""

    reason: str
    message: str


@dataclass(frozen=True)
class KubeEvent:
    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    incident: Incident
    now: datetime
    status: IncidentStatus
    """The status to write, but for what the deliveries add (see `finish`)."""
    deliveries: tuple[Delivery, ...]
    pages: tuple[Page, ...]
    """The steps due now (some channels may have been paged before a restart)."""
    policy: CompiledPolicy | None
    events: tuple[KubeEvent, ...]
    postmortem_due: bool
    mtta_recorded: float | None
    """MTTA, when this decision records the first acknowledgement."""
    mttr_recorded: float | None
    """MTTR, when this decision records the resolution."""

    @property
    def has_pages(self) -> bool:
        return any(delivery.page is not None for delivery in self.deliveries)


def _outcome(spec: IncidentSpec, status: IncidentStatus, problem: PolicyProblem | None,
             climbed: Climb | None) -> Outcome:
    if status.phase == RESOLVED:
        return Outcome(Phase.READY, "Resolved", f"resolved at {rfc3339(status.resolved_at)}; "
                       f"MTTR {duration(status.mttr_seconds)}")
    if problem is not None or climbed is None:
        assert problem is not None
        return Outcome(Phase.STALLED, problem.reason, problem.message)
    state = climbed.escalation
    if status.acknowledged_by is not None:
        expires = (f"; re-triggers at {rfc3339(state.next_deadline)} unless resolved"
                   if state.next_deadline else "")
        return Outcome(Phase.READY, "Acknowledged",
                       f"acknowledged by {status.acknowledged_by}{expires}")
    if not state.climbing:
        told = ", ".join(climbed.route.channels)
        return Outcome(Phase.READY, "Routed", f"{spec.severity}: told {told}; no escalation")
    reached = f"L{state.level} paged" if state.step else "no level reached yet"
    following = (f"; next level at {rfc3339(state.next_deadline)}" if state.next_deadline
                 else "; every level paged")
    return Outcome(Phase.READY, "Escalating", reached + following)


def _conditions(status: IncidentStatus, outcome: Outcome, generation: int,
                now: datetime) -> list[Condition]:
    conditions = apply_outcome(status.conditions, outcome, now, generation)
    if status.acknowledged_by is not None:
        acknowledged = ("True", "Acknowledged", f"acknowledged by {status.acknowledged_by}")
    elif status.escalation is not None and status.escalation.expired_acknowledgement:
        acknowledged = ("False", "AcknowledgementExpired", "the acknowledgement by "
                        f"{status.escalation.expired_acknowledgement.by} expired (ackTimeout) "
                        "before resolution")
    else:
        acknowledged = ("False", "NotAcknowledged", "nobody has acknowledged it")
    conditions = set_condition(conditions, "Acknowledged", *acknowledged, now, generation)
    resolved = status.phase == RESOLVED
    return set_condition(
        conditions, "Resolved", "True" if resolved else "False",
        "Resolved" if resolved else "Unresolved",
        f"resolved at {rfc3339(status.resolved_at)}" if resolved else "not resolved",
        now, generation)


def _said_before(status: IncidentStatus, problem: PolicyProblem) -> bool:
    stalled = next((c for c in status.conditions if c.type == "Stalled"), None)
    return stalled is not None and stalled.status == "True" and stalled.reason == problem.reason


def _without_policy(status: IncidentStatus, before: IncidentStatus, problem: PolicyProblem,
                    now: datetime) -> tuple[IncidentStatus, list[TimelineEntry], list[KubeEvent]]:
    """No climbing without a policy (a climb under way resumes when it is back); said once."""
    state = status.escalation
    if state is not None and state.next_deadline is not None:
        status = status.model_copy(update={
            "escalation": state.model_copy(update={"next_deadline": None})})
    if status.phase == RESOLVED or _said_before(before, problem):
        return status, [], []
    return (status, [TimelineEntry(time=now, event="Routed",
                                   message=f"nobody is paged: {problem.message}")],
            [KubeEvent("Warning", problem.reason, problem.message)])


def decide(incident: Incident, policy: CompiledPolicy | PolicyProblem,
           now: datetime) -> Decision:
    """The decision of one reconcile (see the module docstring)."""
    spec, before = incident.spec, incident.status
    observed = observe(spec, before, incident.created, now)
    status = observed.status
    entries = list(observed.entries)
    events: list[KubeEvent] = []
    resolved = status.phase == RESOLVED
    climbed: Climb | None = None
    if isinstance(policy, CompiledPolicy):
        climbed = climb(spec, observed, policy, now)
        entries += climbed.entries
        status = status.model_copy(update={"escalation": climbed.escalation})
        if climbed.acknowledgement_expired:
            status = status.model_copy(update={"acknowledged_at": None,
                                               "acknowledged_by": None})
        events += [KubeEvent("Warning", "Retriggered", entry.message)
                   for entry in climbed.entries if entry.event == "Retriggered"]
        route = climbed.route
    else:
        status, said, warned = _without_policy(status, before, policy, now)
        entries += said
        events += warned
        route = Route(channels=(), escalate=False)
    acknowledged = effective_acknowledgement(spec, status) is not None
    deliveries = plan(incident.ref.dedup_key, status.notifications,
                      climbed.pages if climbed else (), route, acknowledged, resolved)
    if observed.acknowledged_now:
        events.append(KubeEvent("Normal", "Acknowledged",
                                f"acknowledged by {status.acknowledged_by}"))
    if observed.resolved_now:
        events.append(KubeEvent("Normal", "Resolved",
                                f"resolved; MTTR {duration(status.mttr_seconds)}"))
    status = with_timeline(status, entries).model_copy(update={
        "timeline_ref": timeline_name(incident.ref.name),
        "postmortem_ref": postmortem_name(incident.ref.name) if resolved
        else before.postmortem_ref,
    })
    problem = policy if isinstance(policy, PolicyProblem) else None
    outcome = _outcome(spec, status, problem, climbed)
    status = status.model_copy(update={
        "conditions": _conditions(status, outcome, incident.generation, now),
        "observed_generation": incident.generation,
    })
    return Decision(
        incident=incident, now=now, status=status, deliveries=tuple(deliveries),
        pages=climbed.pages if climbed else (),
        policy=policy if isinstance(policy, CompiledPolicy) else None,
        events=tuple(events),
        postmortem_due=resolved and (observed.resolved_now or before.postmortem_ref is None),
        mtta_recorded=status.mtta_seconds if before.mtta_seconds is None else None,
        mttr_recorded=status.mttr_seconds if observed.resolved_now else None,
    )


def _late(page: Page, now: datetime) -> str:
    late = (now - page.due_at).total_seconds()
    return f"; due {rfc3339(page.due_at)}, {duration(late)} late" if late >= 60 else ""


def still_pages(decision: Decision, generation: int, status: IncidentStatus) -> bool:
    """Whether the incident, as read again while paging, is still the one the decision paged
    for: its spec unchanged (no acknowledgement, resolution or edit since) and its source not
    reported recovered."""
    incident = decision.incident
    return (generation == incident.generation
            and status.source_recovered_at == incident.status.source_recovered_at)


def completed(decision: Decision, sent: Sequence[Delivery]) -> tuple[Page, ...]:
    """The pages of the decision all of whose deliveries were tried."""
    tried = set(sent)
    unsent = [d.step for d in decision.deliveries if d.page is not None and d not in tried]
    return tuple(p for p in decision.pages if not unsent or p.step < min(unsent))


def finish(decision: Decision, sent: Sequence[tuple[Delivery, NotificationRecord]],
           postmortem_note: str | None = None) -> tuple[IncidentStatus, list[KubeEvent]]:
    """The status to write once `sent` (each delivery tried, in order, with its final
    record) went out, and the Events to record about it. Sending may stop early (someone
    acknowledged meanwhile): a step counts as paged only if every channel of it was tried."""
    status, now, key = decision.status, decision.now, decision.incident.ref.dedup_key
    policy = decision.policy
    paged = completed(decision, [delivery for delivery, _ in sent])
    entries: list[TimelineEntry] = []
    events: list[KubeEvent] = []
    if policy is not None and paged != decision.pages:
        state = status.escalation
        assert state is not None
        step = paged[-1].step if paged else decision.pages[0].step - 1
        level = policy.ladder.position(step)[1] + 1 if step else 0
        on_call = paged[-1].on_call if paged else None
        status = status.model_copy(update={"escalation": state.model_copy(update={
            "step": step, "level": level,
            "on_call": on_call.member.name if on_call else None,
            "next_deadline": policy.ladder.deadline(state.started_at, step + 1)})})
    for page in paged:
        assert policy is not None
        message = page_message(page, policy) + _late(page, now)
        entries.append(TimelineEntry(time=now, event="Escalated", message=message[:1024]))
        events.append(KubeEvent("Normal", "Escalated", message))
    records = []
    for delivery, outcome in sent:
        records.append(NotificationRecord(
            time=now, channel=delivery.channel, fingerprint=key, event=delivery.event,
            severity=outcome.severity, level=delivery.step, result=outcome.result,
            status_code=outcome.status_code, message=outcome.message))
        said = f"{delivery.event} → {delivery.channel}: {outcome.result}"
        if outcome.result != "delivered" and outcome.message:
            said += f" ({outcome.message})"
        entries.append(TimelineEntry(time=now, event="Notified", message=said[:1024]))
        if outcome.result == "failed":
            events.append(KubeEvent("Warning", "NotificationFailed", said))
    if postmortem_note is not None:
        entries.append(TimelineEntry(time=now, event="PostmortemWritten",
                                     message=postmortem_note))
    status = with_timeline(status, entries).model_copy(update={
        "notifications": record(status.notifications, records, {key},
                                NOTIFICATION_LOG_LIMIT)})
    return status, events


_MERGED_APART = {"timeline", "timeline_total", "notifications"}


def merged_onto(fresh: IncidentStatus, base: IncidentStatus,
                final: IncidentStatus) -> IncidentStatus:
    """`final` (decided from `base`) replayed onto `fresh`, a status someone else wrote since
    `base`: the fields the decision changed are ours, the others theirs; timeline entries and
    notification records of both are kept."""
    update = {name: getattr(final, name) for name in IncidentStatus.model_fields
              if name not in _MERGED_APART and getattr(final, name) != getattr(base, name)}
    merged = fresh.model_copy(update=update)
    added = [entry for entry in final.timeline if entry not in base.timeline]
    new_records = [r for r in final.notifications if r not in base.notifications]
    subjects = {r.fingerprint for r in [*fresh.notifications, *new_records]}
    merged = with_timeline(merged, added)
    return merged.model_copy(update={"notifications": record(
        merged.notifications, new_records, subjects, NOTIFICATION_LOG_LIMIT)})


def next_due(status: IncidentStatus) -> datetime | None:
    """When the incident must be reconciled again, if nothing changes before."""
    return status.escalation.next_deadline if status.escalation else None
