"""Webhook gates: which of a CanaryRollout's webhooks are asked this tick, what they are
sent, and what their answers mean for the state machine.

- preRollout: before the first weight shift of a revision, until one answers 2xx;
- rollout: with every analysis run; a closed one holds the run (not a failed check);
- confirmPromotion: before promotion, until it answers 2xx (WaitingPromotion meanwhile);
- rollback: with every analysis run; a 2xx answer rolls back;
- postRollout: once, after a revision is promoted or rolled back (its answer holds nothing).

`blockOnIncidents` holds the first step the same way while an open Incident of those
severities is in the namespace.

A gate that answered within `RETRY` is not asked again (its answer stands), so a closed gate
is asked every few seconds, not every tick. Answers are kept in status.gates, one per
webhook, so they survive a restart and `kubectl describe` shows why a rollout holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from runbook_operator.api.canaryrollout import (
    GATE_LOG_LIMIT,
    CanaryRolloutSpec,
    CanaryRolloutStatus,
    GateStatus,
    Webhook,
    WebhookType,
)
from runbook_operator.core.canary.steps import Step
from runbook_operator.core.incident.sources import is_open

#: How long a gate's answer stands before it is asked again.
RETRY = timedelta(seconds=5)


@dataclass(frozen=True)
class Asked:
    """Which kinds of webhook this tick asks."""

    types: frozenset[WebhookType]


def asked(steps: Sequence[Step], status: CanaryRolloutStatus, analysing: bool) -> Asked:
    """The webhook types that apply now; `analysing`: an analysis run is due this tick."""
    types: set[WebhookType] = set()
    phase = status.phase
    if phase in ("Progressing", "WaitingPromotion") and status.paused_at is None:
        if status.step_index == 0:
            types.add("preRollout")
        if analysing:
            types.update(("rollout", "rollback"))
        if status.step_index >= len(steps):
            types.add("confirmPromotion")
    done = phase == "Succeeded" or (phase == "Failed" and status.rollback is not None
                                    and status.rollback.completed_at is not None)
    if done:
        types.add("postRollout")
    return Asked(frozenset(types))


def _last(status: CanaryRolloutStatus, name: str) -> GateStatus | None:
    return next((g for g in status.gates if g.name == name), None)


def _since(status: CanaryRolloutStatus) -> datetime | None:
    """Answers older than this belong to an earlier revision or an earlier phase."""
    if status.phase in ("Succeeded", "Failed"):
        return status.last_transition_time
    return status.rollout_started_at


def to_call(spec: CanaryRolloutSpec, status: CanaryRolloutStatus, which: Asked,
            now: datetime) -> list[Webhook]:
    """The webhooks to call now: those that apply, less those whose answer still stands —
    an answer younger than RETRY, an open preRollout or confirmPromotion gate of this
    revision, a postRollout hook already told."""
    since = _since(status)
    calls = []
    for hook in spec.analysis.webhooks:
        if hook.type not in which.types:
            continue
        last = _last(status, hook.name)
        current = last is not None and (since is None or last.time >= since)
        if current and last is not None and (
                last.time + RETRY > now or hook.type == "postRollout"
                or (last.open and hook.type in ("preRollout", "confirmPromotion"))):
            continue
        calls.append(hook)
    return calls


def payload(spec: CanaryRolloutSpec, name: str, namespace: str, status: CanaryRolloutStatus,
            hook: Webhook) -> dict[str, Any]:
    """What a webhook is sent (Flagger's fields, and the rollout's position)."""
    return {"name": name, "namespace": namespace, "type": hook.type,
            "target": spec.target_ref.name, "revision": status.revision or "",
            "phase": status.phase or "", "weight": status.weight, "step": status.step,
            "metadata": dict(hook.metadata)}


@dataclass(frozen=True)
class Verdicts:
    """What the gates' answers mean for the state machine (see `machine.World`)."""

    holds: tuple[str, ...] = ()
    promotion_holds: tuple[str, ...] = ()
    rollback_asked: str | None = None


def verdicts(spec: CanaryRolloutSpec, status: CanaryRolloutStatus, which: Asked
             ) -> Verdicts:
    """The standing answers of the gates that apply now."""
    since = _since(status)
    holds, promotion, rollback = [], [], None
    for hook in spec.analysis.webhooks:
        last = _last(status, hook.name)
        if hook.type not in which.types or last is None or (since and last.time < since):
            if hook.type in which.types and hook.type in ("preRollout", "rollout"):
                holds.append(f"gate {hook.name!r} has not answered yet")
            elif hook.type in which.types and hook.type == "confirmPromotion":
                promotion.append(f"gate {hook.name!r} has not answered yet")
            continue
        if hook.type in ("preRollout", "rollout") and not last.open:
            holds.append(f"gate {hook.name!r}: {last.message}")
        elif hook.type == "confirmPromotion" and not last.open:
            promotion.append(f"gate {hook.name!r}: {last.message}")
        elif hook.type == "rollback" and last.open and rollback is None:
            rollback = f"webhook {hook.name!r} asked to roll back: {last.message}"
    return Verdicts(tuple(holds), tuple(promotion), rollback)


def blocks_now(spec: CanaryRolloutSpec, status: CanaryRolloutStatus) -> bool:
    """Whether open Incidents can hold the rollout now (so whether to look for them)."""
    return bool(spec.block_on_incidents) and status.phase == "Progressing" \
        and status.step_index == 0


def incident_holds(spec: CanaryRolloutSpec, status: CanaryRolloutStatus,
                   incidents: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """Why a rollout must not start (`blockOnIncidents`): the open Incidents of those
    severities in its namespace, while it is at its first step."""
    if not blocks_now(spec, status):
        return ()
    found = []
    for incident in incidents:
        severity = (incident.get("status") or {}).get("severity") or \
            (incident.get("spec") or {}).get("severity")
        if is_open(incident) and severity in spec.block_on_incidents:
            found.append(f"{severity} Incident {incident['metadata']['name']!r} is open")
    return tuple(sorted(found))


def recorded(status: CanaryRolloutStatus, answers: Sequence[GateStatus]
             ) -> CanaryRolloutStatus:
    """`status` with the newest answer of each gate, newest first, capped."""
    names = {a.name for a in answers}
    gates = list(answers) + [g for g in status.gates if g.name not in names]
    return status.model_copy(update={"gates": gates[:GATE_LOG_LIMIT]})
