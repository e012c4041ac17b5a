"""Where an incident stands on its EscalationPolicy's ladder, and which steps are due now: a pure
function of the observed spec and status, the compiled policy and `now`.

Every deadline derives from times kept in status (`escalation.startedAt`, the steps already
paged, `acknowledgedAt`), so a restarted operator pages each step exactly when it falls due:
steps that fell due while it was down are paged at once, none twice. An acknowledgement stops
the climb; with `ackTimeout`, one that is not followed by resolution in time re-triggers the
incident and the climb starts again from L1 (as PagerDuty does). A reopened incident, a
withdrawn acknowledgement and a severity whose route starts climbing start a climb too. A
severity routed to channels only (P2/P3 to the team) does not climb.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from runbook_operator.api.incident import EscalationState, IncidentSpec, TimelineEntry
from runbook_operator.core.escalation import steps_reached
from runbook_operator.core.incident.lifecycle import RESOLVED, Observed, effective_acknowledgement
from runbook_operator.core.incident.policy import CompiledPolicy, OnCall, Route


@dataclass(frozen=True)
class Page:
    """One step to page now."""

    step: int
    """1-based, counting every pass of this climb."""
    level: int
    """1-based level of the ladder."""
    loop: int
    """The pass (0: the first)."""
    levels: int
    """How many levels the ladder has."""
    channels: tuple[str, ...]
    """The level's channels, then the on-call member's (if it has one)."""
    rotation: str | None
    on_call: OnCall | None
    due_at: datetime
    climb_started_at: datetime


@dataclass(frozen=True)
class Climb:
    """The escalation state after this decision (assuming every page is sent), the steps to
    page, and what to say in the timeline."""

    escalation: EscalationState
    pages: tuple[Page, ...]
    entries: tuple[TimelineEntry, ...]
    retriggered: bool
    acknowledgement_expired: bool
    """The acknowledgement's ackTimeout passed: it no longer counts."""
    route: Route


def _restart(state: EscalationState, at: datetime) -> EscalationState:
    return state.model_copy(update={
        "started_at": at, "step": 0, "level": 0, "on_call": None, "next_deadline": None,
        "retriggers": state.retriggers + 1, "climbing": True})


def _route_message(severity: str, route: Route) -> str:
    told = ", ".join(route.channels)
    if route.escalate:
        return f"{severity}: climbs the ladder from L1" + (f"; {told} told too" if told else "")
    return f"{severity}: routed to {told} only, no escalation"


def _who(on_call: OnCall | None, rotation: str | None) -> str:
    if rotation is None:
        return ""
    if on_call is None:
        return f"; nobody on call in rotation {rotation} yet"
    channel = f" via {on_call.member.channel}" if on_call.member.channel else " (no channel)"
    return f"; on call in {rotation}: {on_call.member.name}{channel}"


def page_message(page: Page, policy: CompiledPolicy) -> str:
    """The timeline's account of one step: what was paged, whom, under which policy."""
    repeat = f", pass {page.loop + 1}" if page.loop else ""
    channels = ", ".join(page.channels) or "no channel"
    return (f"L{page.level} (step {page.step}{repeat}): paged {channels}"
            f"{_who(page.on_call, page.rotation)}; EscalationPolicy {policy.name} generation "
            f"{policy.generation}")


def pages_due(policy: CompiledPolicy, state: EscalationState, now: datetime) -> list[Page]:
    """The steps of the climb in `state` reached by `now` and not paged yet."""
    ladder = policy.ladder
    target = steps_reached(ladder, state.started_at, now)
    pages = []
    for step in range(state.step + 1, target + 1):
        loop, index = ladder.position(step)
        rotation = policy.rotations_by_level[index]
        on_call = policy.on_call(rotation, now) if rotation else None
        channels = ladder.levels[index].channels
        if on_call is not None and on_call.member.channel is not None:
            channels = tuple(dict.fromkeys([*channels, on_call.member.channel]))
        due_at = ladder.deadline(state.started_at, step)
        assert due_at is not None
        pages.append(Page(step=step, level=index + 1, loop=loop, levels=len(ladder.levels),
                          channels=channels, rotation=rotation, on_call=on_call, due_at=due_at,
                          climb_started_at=state.started_at))
    return pages


def climb(spec: IncidentSpec, observed: Observed, policy: CompiledPolicy,
          now: datetime) -> Climb:
    """The escalation after `observed` (see the module docstring)."""
    status = observed.status
    route = policy.route(spec.severity)
    entries: list[TimelineEntry] = []
    retriggered = expired = False
    state = status.escalation
    if state is None:
        assert status.opened_at is not None
        state = EscalationState(started_at=status.opened_at, climbing=route.escalate,
                                policy_generation=policy.generation)
        if not route.escalate or route.channels:
            entries.append(TimelineEntry(time=now, event="Routed",
                                         message=_route_message(spec.severity, route)))
    elif state.policy_generation != policy.generation:
        entries.append(TimelineEntry(
            time=now, event="PolicyChanged",
            message=f"EscalationPolicy {policy.name} generation {state.policy_generation} → "
            f"{policy.generation}: the rest of the climb follows it"))
        state = state.model_copy(update={"policy_generation": policy.generation})

    resolved = status.phase == RESOLVED
    ack = effective_acknowledgement(spec, status)
    if route.escalate != state.climbing and not resolved:
        entries.append(TimelineEntry(time=now, event="Routed",
                                     message=_route_message(spec.severity, route)))
        if route.escalate and ack is None:
            state = _restart(state, now)
        state = state.model_copy(update={"climbing": route.escalate, "next_deadline": None})
    elif state.climbing and ack is None and not resolved and (
            observed.reopened or observed.withdrawn_by is not None):
        reason = ("reopened" if observed.reopened else
                  f"acknowledgement by {observed.withdrawn_by} withdrawn")
        entries.append(TimelineEntry(
            time=now, event="Retriggered",
            message=f"{reason}: escalation starts again from L1"))
        state = _restart(state, now)
        retriggered = True

    if ack is not None and state.climbing and not resolved and policy.ack_timeout is not None:
        expires = ack.at + policy.ack_timeout
        if now >= expires:
            entries.append(TimelineEntry(
                time=expires, event="Retriggered",
                message=f"not resolved within ackTimeout of the acknowledgement by {ack.by}: "
                "escalation starts again from L1"))
            state = _restart(state, expires).model_copy(
                update={"expired_acknowledgement": ack})
            ack = None
            retriggered = expired = True

    pages: list[Page] = []
    if resolved or not state.climbing:
        state = state.model_copy(update={"next_deadline": None})
    elif ack is not None:
        expires = ack.at + policy.ack_timeout if policy.ack_timeout is not None else None
        state = state.model_copy(update={"next_deadline": expires})
    else:
        pages = pages_due(policy, state, now)
        if pages:
            newest = pages[-1]
            state = state.model_copy(update={
                "step": newest.step, "level": newest.level,
                "on_call": newest.on_call.member.name if newest.on_call else None})
        state = state.model_copy(update={
            "next_deadline": policy.ladder.deadline(state.started_at, state.step + 1)})
    return Climb(escalation=state, pages=tuple(pages), entries=tuple(entries),
                 retriggered=retriggered, acknowledgement_expired=expired, route=route)
