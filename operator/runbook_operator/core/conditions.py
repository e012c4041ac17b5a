"""kstatus conditions (Ready, Reconciling, Stalled) as a pure function of a reconcile outcome.

Flux, Argo CD and `kubectl wait --for=condition=Ready` judge health from these three types, so
every kind reports them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from runbook_operator.api.common import Condition, ConditionStatus


class Phase(Enum):
    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"


@dataclass(frozen=True)
class Outcome:
    """What a reconcile concluded: a phase with a CamelCase reason and a human message."""

    phase: Phase
    reason: str
    message: str


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    """Return `conditions` with one condition replaced, keeping its transition time when the
    status did not change (so `lastTransitionTime` means what it says)."""
    previous = next((c for c in conditions if c.type == type_), None)
    if (previous is not None and previous.status == status and previous.reason == reason
            and previous.message == message and previous.observed_generation == generation):
        return list(conditions)  # unchanged; building the model again cost most of the call
    transition = (
        previous.last_transition_time
        if previous is not None and previous.status == status
        else now
    )
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=generation,
    )
    others = [c for c in conditions if c.type != type_]
    position = next((i for i, c in enumerate(conditions) if c.type == type_), len(others))
    return others[:position] + [updated] + others[position:]


#: The reason Reconciling and Stalled give while they are False.
_INACTIVE_REASONS = {Phase.RECONCILING: "Idle", Phase.STALLED: "Progressing"}


def apply_outcome(
    conditions: list[Condition], outcome: Outcome, now: datetime, generation: int | None
) -> list[Condition]:
    """Set Ready, Reconciling and Stalled consistently for one outcome: Ready always carries
    the outcome's reason and message, the other two only while they are True."""
    ready: ConditionStatus = "True" if outcome.phase is Phase.READY else "False"
    result = set_condition(
        conditions, "Ready", ready, outcome.reason, outcome.message, now, generation
    )
    for phase, inactive_reason in _INACTIVE_REASONS.items():
        active = outcome.phase is phase
        result = set_condition(
            result,
            phase.value,
            "True" if active else "False",
            outcome.reason if active else inactive_reason,
            outcome.message if active else "",
            now,
            generation,
        )
    return result


def condition_status(conditions: list[Condition], type_: str) -> ConditionStatus | None:
    found = next((c for c in conditions if c.type == type_), None)
    return found.status if found else None
