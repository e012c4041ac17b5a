"""Anomaly detection with an IsolationForest over one or more aligned series.

scikit-learn is imported inside `train` only: importing it costs about 135 MB of RSS, which an
operator without anomaly rules must not pay. Scoring a trained model needs no import.

Scores are the anomaly score of the IsolationForest paper, in (0, 1]: around 0.5 or below for
ordinary points, towards 1 for points that are easy to isolate. The default threshold is the
one `contamination` implies on the training data. A forest cannot rank points beyond the
range it was trained on (they land in the same leaves as the most extreme training points, so
a spike scores no higher than an ordinary peak), so a point outside the training envelope
scores at least `1 - 0.5 * exp(-d)`, d being how far outside it is in robust standard
deviations: 0.5 at the edge, above 0.8 one deviation beyond it. Features are centred and
scaled robustly (median, IQR) with a floor on the scale, and features that barely varied in
training get seeded jitter of that floor's size: a forest cannot split a constant column, and
without the jitter a flat series could never flag a spike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from sklearn.ensemble import IsolationForest  # type: ignore[import-untyped]

#: Prometheus rejects query_range requests with more points per series than this.
MAX_POINTS_PER_QUERY = 11_000
#: Relative and absolute floor of a feature's scale (see the module docstring).
RELATIVE_FLOOR = 1e-3
ABSOLUTE_FLOOR = 1e-9
TREES = 100


@dataclass(frozen=True)
class Model:
    """A trained detector with its feature scaling and decision threshold."""

    forest: IsolationForest
    center: NDArray[np.float64]
    scale: NDArray[np.float64]
    low: NDArray[np.float64]
    high: NDArray[np.float64]
    """The training envelope in scaled units."""
    threshold: float
    """Scores above this are anomalous (from contamination, unless overridden)."""
    samples: int


def align(series: Mapping[str, Sequence[tuple[float, Any]]]) -> NDArray[np.float64]:
    """Join series on their timestamps (inner join, in time order, columns in the mapping's
    order) and drop rows with a NaN or infinite value. Values may be Prometheus' strings
    ("NaN", "+Inf", "0.5"). Timestamps are matched to the millisecond."""
    names = list(series)
    if not names:
        return np.empty((0, 0))
    columns = []
    for name in names:
        column: dict[int, float] = {}
        for ts, value in series[name]:
            column[round(float(ts) * 1000)] = float(value)
        columns.append(column)
    common = sorted(set(columns[0]).intersection(*columns[1:]))
    rows = np.array([[c[t] for c in columns] for t in common], dtype=float).reshape(
        len(common), len(names))
    return rows[np.isfinite(rows).all(axis=1)]


def warm(samples: NDArray[np.float64] | int, min_samples: int) -> bool:
    """Whether there is enough history to train; a rule never fires before this."""
    count = samples if isinstance(samples, int) else int(np.asarray(samples).shape[0])
    return count >= min_samples


def should_retrain(trained_at: datetime | None, retrain_interval: timedelta,
                   now: datetime) -> bool:
    """Retrain on an interval, not every evaluation (training is the expensive part)."""
    return trained_at is None or now - trained_at >= retrain_interval


def train(samples: NDArray[np.float64], contamination: float, seed: int,
          score_threshold: float | None = None) -> Model:
    """Fit an IsolationForest on rows of `samples` (n × k, finite). `seed` makes training
    reproducible (derive it from the rule, so a retrain on the same data gives the same
    model)."""
    from sklearn.ensemble import IsolationForest  # type: ignore[import-untyped]

    data = np.asarray(samples, dtype=float)
    if data.ndim != 2 or data.shape[0] < 2 or not np.isfinite(data).all():
        raise ValueError("train needs at least two finite rows of an n × k array")
    center = np.median(data, axis=0)
    q75, q25 = np.percentile(data, [75, 25], axis=0)
    spread = (q75 - q25) / 1.349
    floor = np.maximum(RELATIVE_FLOOR * np.abs(center), ABSOLUTE_FLOOR)
    scale = np.maximum(spread, floor)
    rng = np.random.default_rng(seed)
    z = (data - center) / scale
    flat = spread < floor
    z[:, flat] += rng.normal(0.0, 1.0, size=(data.shape[0], int(flat.sum())))
    forest = IsolationForest(n_estimators=TREES, contamination=contamination,
                             random_state=seed).fit(z)
    threshold = score_threshold if score_threshold is not None else float(-forest.offset_)
    return Model(forest, center, scale, z.min(axis=0), z.max(axis=0), threshold,
                 int(data.shape[0]))


def score(model: Model, x: Sequence[float] | NDArray[np.float64]) -> float:
    """The anomaly score of one row; NaN when any feature is missing (NaN never fires)."""
    row = np.asarray(x, dtype=float).reshape(1, -1)
    if row.shape[1] != model.center.shape[0]:
        raise ValueError(f"expected {model.center.shape[0]} features, got {row.shape[1]}")
    if not np.isfinite(row).all():
        return math.nan
    z = (row - model.center) / model.scale
    isolation = float(-model.forest.score_samples(z)[0])
    outside = float(np.max(np.maximum(z[0] - model.high, model.low - z[0])))
    envelope = 1 - 0.5 * math.exp(-outside) if outside > 0 else 0.0
    return max(isolation, envelope)


def anomalous(model: Model, value: float) -> bool:
    """Whether a score crosses the model's threshold (NaN never does)."""
    return not math.isnan(value) and value > model.threshold


def chunks(start: float, end: float, step: float,
           max_points: int = MAX_POINTS_PER_QUERY) -> list[tuple[float, float]]:
    """Split a query_range [start, end] at `step` into requests of at most `max_points`
    points each (both ends inclusive, no point fetched twice)."""
    if step <= 0:
        raise ValueError("step must be positive")
    out = []
    span = step * (max_points - 1)
    while start <= end:
        stop = min(end, start + span)
        out.append((start, stop))
        start = stop + step
    return out
