from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runbook_operator.api.canaryrollout import CanaryStrategy
from runbook_operator.core.canary.steps import (
    Analyse,
    Pause,
    SetWeight,
    compile_steps,
    shorthand_weights,
    weight_at,
)
from tests.support.canary_world import spec


def test_the_runbooks_shorthand_is_5_30_55_80_each_analysed() -> None:
    steps = compile_steps(spec())
    assert steps == [SetWeight(5), Analyse(1), SetWeight(30), Analyse(1), SetWeight(55),
                     Analyse(1), SetWeight(80), Analyse(1)]


@pytest.mark.parametrize(("fields", "weights"), [
    ({"stepWeight": 10}, [10, 20, 30, 40, 50]),  # Flagger's default maxWeight 50
    ({"stepWeight": 30, "maxWeight": 70}, [30, 60, 70]),  # the last step capped
    ({"initialWeight": 90, "stepWeight": 5, "maxWeight": 50}, [50]),
    ({"stepWeights": [1, 10, 60]}, [1, 10, 60]),
])
def test_shorthand_weights(fields: dict, weights: list[int]) -> None:
    assert shorthand_weights(CanaryStrategy.model_validate(fields)) == weights


@settings(max_examples=200, deadline=None)
@given(initial=st.none() | st.integers(1, 100), step=st.integers(1, 100),
       ceiling=st.none() | st.integers(1, 100))
def test_shorthand_weights_rise_to_the_maximum_and_stop(initial: int | None, step: int,
                                                        ceiling: int | None) -> None:
    weights = shorthand_weights(CanaryStrategy(initial_weight=initial, step_weight=step,
                                               max_weight=ceiling))
    assert weights == sorted(set(weights))
    assert weights[-1] == (ceiling or 50)
    assert all(b - a <= step for a, b in zip(weights, weights[1:]))


def test_explicit_steps_keep_their_order() -> None:
    steps = compile_steps(spec(canary={"steps": [
        {"setWeight": 10}, {"pause": {"duration": "30s"}}, {"analysis": {"passes": 3}},
        {"pause": {}}, {"setWeight": 40}]}))
    assert steps == [SetWeight(10), Pause(timedelta(seconds=30)), Analyse(3), Pause(None),
                     SetWeight(40)]
    assert [weight_at(steps, i) for i in range(6)] == [10, 10, 10, 10, 40, 40]


def test_blue_green_analyses_for_the_health_check_period_then_switches() -> None:
    instant = compile_steps(spec(canary=None, strategy="blueGreen",
                                 blueGreen={"healthCheckPeriod": "150s"},
                                 analysis={"interval": "1m"}))
    assert instant == [Analyse(3)]  # three passing runs cover 150 s
    gradual = compile_steps(spec(canary=None, strategy="blueGreen",
                                 blueGreen={"switch": "gradual", "stepWeight": 40}))
    assert gradual == [Analyse(1), SetWeight(40), Analyse(1), SetWeight(80), Analyse(1)]
    assert weight_at(gradual, 0) == 0
