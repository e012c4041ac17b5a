"""A CanaryRollout's spec as one list of steps: the shorthand, explicit steps and blue-green
all become `SetWeight`, `Pause` and `Analyse`, so the state machine knows one form.

The shorthand is Flagger's: the first weight (`initialWeight`, default `stepWeight`), then
`stepWeight` more at a time, the last step capped at `maxWeight` (default 50) — or the
`stepWeights` listed; every weight is held and analysed (one passing run) before the next.
Blue-green holds the new version without traffic while the analysis passes for the whole
health-check period (a passing run every interval), then switches: instantly (promotion
sends it all the traffic) or by `stepWeight` with an analysis after each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from runbook_operator.api.canaryrollout import CanaryRolloutSpec, CanaryStrategy
from runbook_operator.api.common import parse_duration

DEFAULT_MAX_WEIGHT = 50


@dataclass(frozen=True)
class SetWeight:
    """Send `weight` percent of traffic to the canary; done when the router confirms it."""

    weight: int


@dataclass(frozen=True)
class Pause:
    """Hold for `duration`, or until promoted by hand when None."""

    duration: timedelta | None


@dataclass(frozen=True)
class Analyse:
    """Measure every interval until `passes` runs in a row pass."""

    passes: int


Step = SetWeight | Pause | Analyse


def shorthand_weights(canary: CanaryStrategy) -> list[int]:
    """The weights of the shorthand, in order."""
    if canary.step_weights is not None:
        return list(canary.step_weights)
    assert canary.step_weight is not None
    step = canary.step_weight
    ceiling = canary.max_weight or DEFAULT_MAX_WEIGHT
    weight = min(canary.initial_weight or step, ceiling)
    weights = [weight]
    while weight < ceiling:
        weight = min(weight + step, ceiling)
        weights.append(weight)
    return weights


def _analysed(weights: list[int]) -> list[Step]:
    return [step for weight in weights for step in (SetWeight(weight), Analyse(1))]


def compile_steps(spec: CanaryRolloutSpec) -> list[Step]:
    """Every step before promotion, in order."""
    if spec.strategy == "blueGreen":
        blue_green = spec.blue_green
        period = parse_duration(blue_green.health_check_period if blue_green else "1m")
        interval = parse_duration(spec.analysis.interval)
        steps: list[Step] = [Analyse(max(1, math.ceil(period / interval)))]
        if blue_green is not None and blue_green.switch == "gradual":
            steps += _analysed(list(range(blue_green.step_weight, 100, blue_green.step_weight)))
        return steps
    canary = spec.canary
    assert canary is not None
    if canary.steps is None:
        return _analysed(shorthand_weights(canary))
    compiled: list[Step] = []
    for step in canary.steps:
        if step.set_weight is not None:
            compiled.append(SetWeight(step.set_weight))
        elif step.pause is not None:
            duration = step.pause.duration
            compiled.append(Pause(parse_duration(duration) if duration else None))
        else:
            assert step.analysis is not None
            compiled.append(Analyse(step.analysis.passes))
    return compiled


def weight_at(steps: list[Step], index: int) -> int:
    """The canary weight in effect at step `index`: the last weight set before or at it
    (0 before the first)."""
    return next((s.weight for s in reversed(steps[: index + 1]) if isinstance(s, SetWeight)), 0)
