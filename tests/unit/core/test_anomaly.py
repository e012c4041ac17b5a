"""core.anomaly: alignment, warm-up, retraining, IsolationForest scoring, lazy import."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runbook_operator.core import anomaly
from runbook_operator.core.alertrule.state import Observation, RuleTiming, next_instance

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = 288  # five-minute steps


def steady(seed: int, n: int) -> np.ndarray:
    """Response time, error rate and CPU with a daily cycle and noise: nothing wrong."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    base = np.c_[200 + 20 * np.sin(2 * np.pi * t / DAY), 0.01 + 0 * t,
                 50 + 5 * np.cos(2 * np.pi * t / DAY)]
    return base + rng.normal(0, [4, 0.001, 1], size=base.shape)


def test_align_joins_on_timestamps_and_drops_nan_rows() -> None:
    rows = anomaly.align({
        "latency": [(1.0, "0.2"), (2.0, "0.3"), (3.0, "NaN"), (4.0, "0.5")],
        "errors": [(2.0, 0.01), (3.0, 0.02), (4.0, "+Inf"), (1.0, 0.0), (5.0, 1)],
    })
    assert rows.tolist() == [[0.2, 0.0], [0.3, 0.01]]


def test_align_matches_to_the_millisecond_and_handles_empty_input() -> None:
    rows = anomaly.align({"a": [(1.0000001, 1)], "b": [(1.0, 2)]})
    assert rows.tolist() == [[1.0, 2.0]]
    assert anomaly.align({}).shape == (0, 0)
    assert anomaly.align({"a": [], "b": [(1.0, 1)]}).shape == (0, 2)


@given(st.dictionaries(st.sampled_from("abc"),
                       st.lists(st.tuples(st.integers(0, 20).map(float),
                                          st.floats(allow_nan=True, allow_infinity=True)),
                                max_size=15), min_size=1))
def test_align_rows_are_finite_and_in_time_order(series) -> None:
    rows = anomaly.align(series)
    assert rows.shape[1] == len(series) and np.isfinite(rows).all()
    assert rows.shape[0] <= min(len({ts for ts, _ in s}) for s in series.values())


def test_warm_up_and_retraining() -> None:
    assert not anomaly.warm(np.zeros((287, 2)), 288)
    assert anomaly.warm(np.zeros((288, 2)), 288)
    assert anomaly.warm(300, 288) and not anomaly.warm(0, 1)
    hour = timedelta(hours=1)
    assert anomaly.should_retrain(None, hour, T0)
    assert not anomaly.should_retrain(T0, hour, T0 + timedelta(minutes=59))
    assert anomaly.should_retrain(T0, hour, T0 + hour)


@pytest.mark.parametrize("start, end, step, limit, expected", [
    (0, 10, 1, 11_000, [(0, 10)]),
    (0, 10, 1, 5, [(0, 4), (5, 9), (10, 10)]),
    (0, 9, 1, 5, [(0, 4), (5, 9)]),
    (5, 4, 1, 5, []),
])
def test_query_range_chunks(start, end, step, limit, expected) -> None:
    assert anomaly.chunks(start, end, step, limit) == expected


@given(start=st.integers(0, 10**6), points=st.integers(1, 50_000), step=st.integers(1, 600))
def test_chunks_cover_every_point_once_within_the_limit(start, points, step) -> None:
    end = start + (points - 1) * step
    parts = anomaly.chunks(start, end, step)
    assert parts[0][0] == start and parts[-1][1] == end
    for (_, b), (c, _) in itertools.pairwise(parts):
        assert c == b + step
    assert all((b - a) // step + 1 <= anomaly.MAX_POINTS_PER_QUERY for a, b in parts)


def test_train_rejects_unusable_input() -> None:
    with pytest.raises(ValueError):
        anomaly.train(np.array([[1.0, math.nan], [2.0, 3.0]]), 0.01, 0)
    with pytest.raises(ValueError):
        anomaly.train(np.array([[1.0]]), 0.01, 0)


@pytest.fixture(scope="module")
def model() -> anomaly.Model:
    return anomaly.train(steady(0, 2 * DAY), 0.01, seed=7)


def test_training_is_reproducible(model) -> None:
    again = anomaly.train(steady(0, 2 * DAY), 0.01, seed=7)
    point = steady(1, 1)[0]
    assert anomaly.score(model, point) == anomaly.score(again, point)
    assert model.samples == 2 * DAY and 0.5 < model.threshold < 1


def test_missing_feature_scores_nan_and_never_fires(model) -> None:
    value = anomaly.score(model, [200, math.nan, 50])
    assert math.isnan(value) and not anomaly.anomalous(model, value)
    with pytest.raises(ValueError):
        anomaly.score(model, [1.0, 2.0])


@pytest.mark.parametrize("feature, jump", [(0, 200.0), (0, -150.0), (1, 0.2), (2, 40.0)])
def test_injected_spike_on_any_feature_is_anomalous(model, feature, jump) -> None:
    point = steady(3, DAY)[100].copy()
    point[feature] += jump
    assert anomaly.anomalous(model, anomaly.score(model, point))


def test_score_threshold_overrides_contamination() -> None:
    strict = anomaly.train(steady(0, DAY), 0.01, seed=1, score_threshold=0.99)
    assert strict.threshold == 0.99


def run_rule(model, rows, for_steps: int) -> list[str]:
    """Score each row and drive the alert state machine with `for` = for_steps evaluations."""
    rule = RuleTiming(for_=timedelta(minutes=5 * for_steps))
    prev, seen = None, []
    for n, row in enumerate(rows):
        value = anomaly.score(model, row)
        obs = Observation(value=value, active=anomaly.anomalous(model, value))
        prev = next_instance(prev, obs, rule, T0 + n * timedelta(minutes=5))
        seen.append(prev.state)
    return seen


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_a_steady_series_never_fires_after_warm_up(seed) -> None:
    history = steady(seed, 2 * DAY + DAY)
    trained = anomaly.train(history[: 2 * DAY], 0.01, seed=seed)
    assert "Firing" not in run_rule(trained, history[2 * DAY:], for_steps=3)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**16), level=st.floats(1, 1e6), jump=st.floats(0.05, 10))
def test_a_flat_series_never_scores_anomalous_and_a_step_does(seed, level, jump) -> None:
    flat = np.full((DAY, 2), [level, level / 2])
    trained = anomaly.train(flat, 0.01, seed=seed)
    assert not anomaly.anomalous(trained, anomaly.score(trained, [level, level / 2]))
    assert anomaly.anomalous(trained, anomaly.score(trained, [level * (1 + jump), level / 2]))


def test_injected_spike_fires_after_for(model) -> None:
    rows = steady(5, 20)
    rows[10:16, 0] += 300
    states = run_rule(model, rows, for_steps=2)
    assert "Firing" not in states[:10]
    assert states[10] == "Pending" and states[12:16] == ["Firing"] * 4
    assert "Firing" not in states[16:]


def test_nothing_before_min_samples() -> None:
    """The controller trains only when warm; before that the rule has no model and no score."""
    history = steady(9, 100)
    assert not anomaly.warm(history, 288)
    assert anomaly.warm(np.vstack([history, steady(10, 188)]), 288)


def test_the_operator_without_anomaly_rules_imports_no_numpy() -> None:
    """numpy is 15 MiB of the operator's RSS: it comes with the first anomaly rule only."""
    script = (
        "import sys\n"
        "import runbook_operator.cli.serve, runbook_operator.controllers.alertrule\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('numpy', 'sklearn')]\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


def test_sklearn_is_imported_only_when_training() -> None:
    script = (
        "import sys\n"
        "from runbook_operator.core import anomaly\n"
        "from runbook_operator.core.alertrule import decide\n"
        "from runbook_operator.api import alertrule\n"
        "assert not any(m == 'sklearn' or m.startswith('sklearn.') for m in sys.modules)\n"
        "import numpy as np\n"
        "anomaly.align({'a': [(1.0, 1)]}); anomaly.warm(1, 1)\n"
        "assert 'sklearn' not in sys.modules\n"
        "anomaly.train(np.arange(40.0).reshape(20, 2), 0.01, 0)\n"
        "assert 'sklearn' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
