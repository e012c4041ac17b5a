"""The alert state machine, one instance per series, as pure functions of status and `now`.

Semantics follow Prometheus alerting rules and Grafana alerting:

- One instance per series, keyed by a fingerprint of the rule and the series' labels.
- `for`: an instance is Pending until the condition has held continuously for `for`, then Firing.
- `keepFiringFor`: when the condition clears, a Firing instance is Recovering (still firing for
  notifications) until it has stayed clear for `keepFiringFor`; a flap back returns it to
  Firing with its original `firingSince`, so nothing is re-sent.
- Both durations are counted in whole evaluation intervals (`RuleTiming.interval`), as
  Prometheus counts them between the fixed timestamps of its evaluation grid: an evaluation a
  little late or early (event-loop lag) is neither an interval late nor early in firing.
- Comparisons follow PromQL: NaN satisfies `ne` and nothing else (`NaN != 10` is true).
- `noDataState` (the query returns no series) and `errorState` (the query fails): Normal,
  Alerting (as if the condition held), KeepLast (state frozen) or Error (a problem state,
  notified at once). With Normal handling, no data settles in the informative state NoData.
- A series that disappears while others remain resolves, as in both anchors.
- A problem's start (`startedAt`) and the value it last fired with (`activeValue`) are kept
  after it resolves: the resolved notification says when it started and repeats the last
  firing text, as Prometheus does.

Every time the decisions need is in the instance (which lives in status), so feeding a
serialized instance back in after a restart gives the same answers: `for` is not reset.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from runbook_operator.api.alertrule import (
    MAX_INSTANCES,
    AlertInstance,
    Handling,
    InstanceState,
    Operator,
)
from runbook_operator.core.delivery import fingerprint

Instance = AlertInstance
Labels = Mapping[str, str]
Sample = tuple[Labels, float]

#: Resolved instances whose series is gone are kept this long, so the resolved notification
#: is still planned after a slow tick (Prometheus keeps resolved alerts 15 minutes).
RESOLVED_RETENTION = timedelta(minutes=15)
NO_DATA_MESSAGE = "no data"
#: Worst first: the order of status.instances and the rule's overall state.
RANK: dict[InstanceState, int] = {
    "Firing": 5, "Recovering": 4, "Error": 3, "Pending": 2, "NoData": 1, "Normal": 0,
}

_COMPARE: dict[Operator, Callable[[float, float], bool]] = {
    "gt": lambda v, t: v > t,
    "ge": lambda v, t: v >= t,
    "lt": lambda v, t: v < t,
    "le": lambda v, t: v <= t,
    "eq": lambda v, t: v == t,
    "ne": lambda v, t: v != t,
}


def compare(operator: Operator, value: float, threshold: float) -> bool:
    """`value OP threshold` as PromQL compares (IEEE 754): NaN on either side satisfies `ne`
    and nothing else, so `NaN != 10` fires as the same Prometheus rule would."""
    return _COMPARE[operator](value, threshold)


def format_value(value: float | None) -> str | None:
    """A value as Prometheus prints it: `NaN`, `+Inf`, `-Inf`, `5`, `0.25` (JSON-safe)."""
    if value is None:
        return None
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


@dataclass(frozen=True)
class Observation:
    """What one evaluation saw for one series: a value (with whether the condition holds for
    it), no value at all (None), or an error."""

    value: float | None = None
    error: str | None = None
    active: bool = False

    def __post_init__(self) -> None:
        if self.active and (self.value is None or self.error):
            raise ValueError("only a value can satisfy the condition")


@dataclass(frozen=True, slots=True)
class RuleTiming:
    """The parts of a rule the state machine needs."""

    for_: timedelta = timedelta(0)
    keep_firing_for: timedelta = timedelta(0)
    no_data_state: Handling = "Normal"
    error_state: Handling = "Error"
    interval: timedelta = timedelta(0)
    """The evaluation interval `for` and `keepFiringFor` are counted in (0: exact time)."""


def lasted(since: datetime, now: datetime, duration: timedelta, interval: timedelta) -> bool:
    """Whether `duration` has passed between the evaluations at `since` and `now`, the time
    between them rounded to whole evaluation intervals. Prometheus stamps evaluations on a
    fixed grid, so a `for` equal to the interval fires at the next evaluation; evaluations
    that run a little late (lag) or early must not make it wait one interval more."""
    elapsed = now - since
    if interval > timedelta(0):
        elapsed = interval * math.floor(elapsed / interval + 0.5)
    return elapsed >= duration


Drive = Literal["hold", "clear", "clear_no_data", "error", "keep"]


def _drive(prev: Instance | None, obs: Observation, rule: RuleTiming) -> Drive:
    """Reduce an observation and the rule's handling to what it does to the state machine."""
    if obs.error is None and obs.value is not None:
        return "hold" if obs.active else "clear"
    handling = rule.error_state if obs.error is not None else rule.no_data_state
    quiet: Drive = "clear" if obs.error is not None else "clear_no_data"
    if handling == "Alerting":
        return "hold"
    if handling == "Error":
        return "error"
    if handling == "KeepLast" and prev is not None:
        return "keep"
    return quiet


def next_instance(
    prev: Instance | None,
    observation: Observation,
    rule: RuleTiming,
    now: datetime,
    *,
    fingerprint_: str = "",
    labels: Labels | None = None,
) -> Instance:
    """One step of the state machine for one series (see the module docstring)."""
    return _step(prev, _drive(prev, observation, rule), observation, rule, now,
                 fingerprint_, labels)


def _step(
    prev: Instance | None,
    drive: Drive,
    obs: Observation,
    rule: RuleTiming,
    now: datetime,
    fp: str,
    labels: Labels | None,
) -> Instance:
    if prev is None:
        fp = fp or fingerprint(labels=labels or {})
    base = prev or Instance(fingerprint=fp, labels=dict(labels or {}), state="Normal")
    if drive == "keep":
        return base.model_copy(update={"last_evaluation": now, "last_error": obs.error})
    error = obs.error if obs.error is not None else (
        NO_DATA_MESSAGE if obs.value is None and drive == "error" else None)
    seen: dict[str, object] = {"last_value": format_value(obs.value), "last_error": error,
                               "last_evaluation": now}
    state = base.state
    quiet = {"active_since": None, "pending_since": None, "firing_since": None,
             "recovering_since": None}

    def resolved(target: InstanceState) -> Instance:
        was_problem = state in ("Firing", "Recovering", "Error")
        return base.model_copy(update={
            **seen, **quiet, "state": target,
            "resolved_at": now if was_problem else base.resolved_at,
        })

    if drive == "error":
        if state == "Error":
            return base.model_copy(update=seen)
        return base.model_copy(update={**seen, **quiet, "state": "Error", "active_since": now,
                                       "started_at": now, "active_value": None})
    if drive == "hold":
        firing_value = {"active_value": seen["last_value"]}
        if state in ("Normal", "NoData", "Error"):
            if rule.for_ > timedelta(0):
                return base.model_copy(update={**seen, **quiet, "state": "Pending",
                                               "active_since": now, "pending_since": now})
            return base.model_copy(update={
                **seen, **quiet, **firing_value, "state": "Firing", "active_since": now,
                "pending_since": now, "firing_since": now, "started_at": now,
            })
        if state == "Pending":
            assert base.pending_since is not None
            if lasted(base.pending_since, now, rule.for_, rule.interval):
                return base.model_copy(update={**seen, **firing_value, "state": "Firing",
                                               "firing_since": now, "started_at": now})
            return base.model_copy(update=seen)
        return base.model_copy(update={**seen, **firing_value, "state": "Firing",
                                       "recovering_since": None})
    target: InstanceState = "NoData" if drive == "clear_no_data" else "Normal"
    if state == "Firing":
        if rule.keep_firing_for > timedelta(0):
            return base.model_copy(update={**seen, "state": "Recovering",
                                           "recovering_since": now})
        return resolved(target)
    if state == "Recovering":
        assert base.recovering_since is not None
        if lasted(base.recovering_since, now, rule.keep_firing_for, rule.interval):
            return resolved(target)
        return base.model_copy(update=seen)
    return resolved(target)


@dataclass(frozen=True)
class QueryError:
    """The query failed (Prometheus' error message, a timeout, an unreadable answer)."""

    message: str


def evaluate_rule(
    prev_instances: Sequence[Instance],
    samples: Sequence[Sample] | QueryError,
    rule: RuleTiming,
    now: datetime,
    *,
    holds: Callable[[float], bool],
    identity: Sequence[str] = (),
    limit: int = MAX_INSTANCES,
) -> list[Instance]:
    """All instances after one evaluation, worst first, at most `limit`.

    `holds(value)` is the rule's condition; `identity` (kind, namespace, name) goes into each
    fingerprint so dedup keys differ between rules. An empty result is "no data" for every
    known instance; a failed query is an error for every known instance. With no instance yet,
    both are recorded on one rule-level instance without labels, so status shows them. A
    series that disappears while others remain resolves; a resolved instance whose series is
    gone is dropped after RESOLVED_RETENTION.
    """
    previous = {i.fingerprint: i for i in prev_instances}
    series: list[tuple[dict[str, str], float]] = []
    if not isinstance(samples, QueryError):
        series, duplicate = _series(samples)
        if duplicate is not None:
            samples = QueryError(
                f"vector contains metrics with the same labelset {duplicate} after dropping "
                "__name__")
    if isinstance(samples, QueryError) or not series:
        obs = Observation(error=samples.message if isinstance(samples, QueryError) else None)
        targets: list[Instance | None] = [*previous.values()] or [None]
        rule_fp = fingerprint(*identity, labels={})
        result = [next_instance(p, obs, rule, now, fingerprint_=rule_fp) for p in targets]
        return _ranked(result, limit)
    result = []
    for labels, value in series:
        fp = fingerprint(*identity, labels=labels)
        obs = Observation(value=value, active=holds(value))
        result.append(next_instance(previous.pop(fp, None), obs, rule, now,
                                    fingerprint_=fp, labels=labels))
    for gone in previous.values():
        after = _step(gone, "clear", Observation(), rule, now, gone.fingerprint, gone.labels)
        recently = after.resolved_at is not None and now - after.resolved_at < RESOLVED_RETENTION
        if after.state not in ("Normal", "NoData") or recently:
            result.append(after)
    return _ranked(result, limit)


def _series(samples: Sequence[Sample]) -> tuple[list[tuple[dict[str, str], float]], str | None]:
    """Series with `__name__` dropped (as Prometheus does for alerts), and the first labelset
    that then occurs twice, if any."""
    seen: set[tuple[tuple[str, str], ...]] = set()
    out: list[tuple[dict[str, str], float]] = []
    for labels, value in samples:
        clean = {k: v for k, v in labels.items() if k != "__name__"}
        key = tuple(sorted(clean.items()))
        if key in seen:
            return out, str(clean)
        seen.add(key)
        out.append((clean, float(value)))
    return out, None


def _ranked(instances: list[Instance], limit: int) -> list[Instance]:
    return sorted(instances, key=lambda i: (-RANK[i.state], i.fingerprint))[:limit]


@dataclass(frozen=True)
class Summary:
    """The rule's overall state for status and printer columns."""

    state: InstanceState
    active_since: datetime | None
    last_value: str | None
    firing: int


def summarize(instances: Sequence[Instance]) -> Summary:
    """The worst instance's state, start and value, and how many instances fire."""
    firing = sum(1 for i in instances if i.state in ("Firing", "Recovering"))
    if not instances:
        return Summary("Normal", None, None, 0)
    worst = min(instances, key=lambda i: (-RANK[i.state], i.fingerprint))
    return Summary(worst.state, worst.active_since, worst.last_value, firing)
