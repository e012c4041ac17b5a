"""The alert state machine and notification planning, as pure functions of status and `now`.

Semantics follow Prometheus alerting rules and Grafana alerting:

- One instance per series, keyed by a fingerprint of the rule and the series' labels.
- `for`: an instance is Pending until the condition has held continuously for `for`, then Firing.
- `keepFiringFor`: when the condition clears, a Firing instance is Recovering (still firing for
  notifications) until it has stayed clear for `keepFiringFor`; a flap back returns it to
  Firing with its original `firingSince`, so nothing is re-sent.
- `noDataState` (the query returns no series) and `errorState` (the query fails): Normal,
  Alerting (as if the condition held), KeepLast (state frozen) or Error (a problem state,
  notified at once). With Normal handling, no data settles in the informative state NoData.
- A series that disappears while others remain resolves, as in both anchors.

Every time the decisions need is in the instance (which lives in status), so feeding a
serialized instance back in after a restart gives the same answers: `for` is not reset and
nothing is sent twice, because the notification records are in status too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from runbook_operator.api.alertrule import (
    MAX_INSTANCES,
    NOTIFICATION_LOG_LIMIT,
    AlertInstance,
    AlertRuleStatus,
    Handling,
    InstanceState,
    NotificationRecord,
    NotifiedState,
    Operator,
)
from runbook_operator.api.notificationchannel import Severity
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
SEVERITY_ORDER: tuple[Severity, ...] = ("info", "low", "warning", "medium", "high", "critical")

_COMPARE: dict[Operator, Callable[[float, float], bool]] = {
    "gt": lambda v, t: v > t,
    "ge": lambda v, t: v >= t,
    "lt": lambda v, t: v < t,
    "le": lambda v, t: v <= t,
    "eq": lambda v, t: v == t,
    "ne": lambda v, t: v != t,
}


def compare(operator: Operator, value: float, threshold: float) -> bool:
    """`value OP threshold`; NaN on either side never satisfies it (not even `ne`), so a
    broken series cannot fire a threshold alert."""
    if math.isnan(value) or math.isnan(threshold):
        return False
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
        if self.active and (self.value is None or math.isnan(self.value) or self.error):
            raise ValueError("only a real value can satisfy the condition")


@dataclass(frozen=True)
class RuleTiming:
    """The parts of a rule the state machine needs."""

    for_: timedelta = timedelta(0)
    keep_firing_for: timedelta = timedelta(0)
    no_data_state: Handling = "Normal"
    error_state: Handling = "Error"


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
    seen = {"last_value": format_value(obs.value), "last_error": error, "last_evaluation": now}
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
        return base.model_copy(update={**seen, **quiet, "state": "Error", "active_since": now})
    if drive == "hold":
        if state in ("Normal", "NoData", "Error"):
            firing = rule.for_ <= timedelta(0)
            return base.model_copy(update={
                **seen, **quiet, "state": "Firing" if firing else "Pending",
                "active_since": now, "pending_since": now,
                "firing_since": now if firing else None,
            })
        if state == "Pending":
            assert base.pending_since is not None
            if now - base.pending_since >= rule.for_:
                return base.model_copy(update={**seen, "state": "Firing", "firing_since": now})
            return base.model_copy(update=seen)
        return base.model_copy(update={**seen, "state": "Firing", "recovering_since": None})
    target: InstanceState = "NoData" if drive == "clear_no_data" else "Normal"
    if state == "Firing":
        if rule.keep_firing_for > timedelta(0):
            return base.model_copy(update={**seen, "state": "Recovering",
                                           "recovering_since": now})
        return resolved(target)
    if state == "Recovering":
        assert base.recovering_since is not None
        if now - base.recovering_since >= rule.keep_firing_for:
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
        obs = Observation(value=value, active=not math.isnan(value) and holds(value))
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


# --- status writes ------------------------------------------------------------------------

#: Written only by the heartbeat: they change on every evaluation, and writing them each time
#: cost more than everything else the operator does per rule (bench/README.md). Metrics
#: publish them on every evaluation instead.
_VOLATILE_STATUS = {"last_evaluation", "last_value", "evaluation_duration_seconds"}
_VOLATILE_INSTANCE = {"last_evaluation", "last_value"}
_VOLATILE_ANOMALY = {"last_score"}


def _lasting(status: AlertRuleStatus) -> dict[str, object]:
    """The parts of status a reader or a restarted operator needs, without per-tick values."""
    lasting = status.model_dump(exclude=_VOLATILE_STATUS | {"instances", "anomaly"})
    lasting["instances"] = [i.model_dump(exclude=_VOLATILE_INSTANCE) for i in status.instances]
    lasting["anomaly"] = (None if status.anomaly is None
                          else status.anomaly.model_dump(exclude=_VOLATILE_ANOMALY))
    return lasting


def status_write_due(
    old: AlertRuleStatus, new: AlertRuleStatus, now: datetime, heartbeat: timedelta
) -> bool:
    """Whether an evaluation's status must be written: something lasting changed (state,
    times, instances, conditions, notifications, errors), or the heartbeat is due so that
    `lastEvaluation` and `lastValue` stay roughly current for `kubectl`."""
    if old.last_evaluation is None or now - old.last_evaluation >= heartbeat:
        return True
    return _lasting(old) != _lasting(new)


# --- notifications ------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelRule:
    """A channel reference with its per-channel timing (spec.channels[])."""

    name: str
    repeat_interval: timedelta = timedelta(hours=4)
    send_resolved: bool = True


@dataclass(frozen=True)
class Level:
    """One escalateAfter level."""

    after: timedelta
    channels: tuple[ChannelRule, ...] = ()
    severity: Severity | None = None


@dataclass(frozen=True)
class Escalation:
    """Where an instance stands: level 0 is the rule as written."""

    level: int
    severity: Severity
    channels: tuple[ChannelRule, ...]


@dataclass(frozen=True)
class Due:
    """One notification to send now."""

    fingerprint: str
    channel: str
    state: NotifiedState
    severity: Severity
    level: int
    reason: Literal["new", "repeat", "escalated", "resolved"]


def escalation(
    instance: Instance,
    levels: Sequence[Level],
    severity: Severity,
    channels: Sequence[ChannelRule],
    now: datetime,
) -> Escalation:
    """The level a firing instance has reached (by time since firingSince), the severity
    raised by it (never lowered), and the channels added by it."""
    reached = 0
    chosen = list(channels)
    if instance.state in ("Firing", "Recovering") and instance.firing_since is not None:
        firing_for = now - instance.firing_since
        for number, level in enumerate(sorted(levels, key=lambda lv: lv.after), start=1):
            if firing_for < level.after:
                break
            reached = number
            if level.severity is not None:
                severity = max(severity, level.severity, key=SEVERITY_ORDER.index)
            names = {c.name for c in chosen}
            chosen += [c for c in level.channels if c.name not in names]
    return Escalation(reached, severity, tuple(chosen))


def _problem(instance: Instance) -> tuple[NotifiedState, datetime] | None:
    """The problem an instance notifies about and when that episode began, if any."""
    if instance.state in ("Firing", "Recovering") and instance.firing_since is not None:
        return "firing", instance.firing_since
    if instance.state == "Error" and instance.active_since is not None:
        return "error", instance.active_since
    return None


def _newest(log: Sequence[NotificationRecord]) -> dict[tuple[str, str], NotificationRecord]:
    newest: dict[tuple[str, str], NotificationRecord] = {}
    for record in log:
        key = (record.fingerprint, record.channel)
        if key not in newest or record.sent_at >= newest[key].sent_at:
            newest[key] = record
    return newest


def notifications_due(
    instances: Sequence[Instance],
    channel_rules: Sequence[ChannelRule],
    log: Sequence[NotificationRecord],
    now: datetime,
    *,
    severity: Severity = "medium",
    levels: Sequence[Level] = (),
) -> list[Due]:
    """Every notification to send now, deduplicated against the records in status.

    Per instance and channel: a problem (firing, error) is sent once per episode, again after
    the channel's repeatInterval while it lasts, and again once per escalation level reached;
    when the instance is no longer a problem, a resolved notification follows a sent problem
    unless the channel has sendResolved: false. A failed delivery counts as sent (the channel
    already retried), so a receiver that refuses is not hammered every tick.
    """
    newest = _newest(log)
    known = {c.name: c for c in channel_rules}
    for level in levels:
        known.update({c.name: c for c in level.channels if c.name not in known})
    due: list[Due] = []
    for instance in instances:
        fp = instance.fingerprint
        problem = _problem(instance)
        if problem is None:
            for (record_fp, name), record in sorted(newest.items()):
                rule = known.get(name)
                if record_fp == fp and record.state != "resolved" and rule and rule.send_resolved:
                    due.append(Due(fp, name, "resolved", record.severity, 0, "resolved"))
            continue
        state, started = problem
        esc = escalation(instance, levels, severity, channel_rules, now)
        for channel in esc.channels:
            last = newest.get((fp, channel.name))
            reason: Literal["new", "repeat", "escalated"] | None = None
            if last is None or last.state != state or last.sent_at < started:
                reason = "new"
            elif last.level < esc.level:
                reason = "escalated"
            elif now - last.sent_at >= channel.repeat_interval:
                reason = "repeat"
            if reason is not None:
                due.append(Due(fp, channel.name, state, esc.severity, esc.level, reason))
    return due


def escalations_due(
    instances: Sequence[Instance],
    levels: Sequence[Level],
    log: Sequence[NotificationRecord],
    now: datetime,
    *,
    severity: Severity = "medium",
    channels: Sequence[ChannelRule] = (),
) -> list[tuple[str, Escalation]]:
    """Instances that reached an escalation level not yet notified in this firing episode,
    with that level (for an Event). Reported until the level's notifications are recorded, so
    each level is acted on once."""
    newest = _newest(log)
    out = []
    for instance in instances:
        problem = _problem(instance)
        if problem is None or problem[0] != "firing":
            continue
        esc = escalation(instance, levels, severity, channels, now)
        notified = [r.level for (fp, _), r in newest.items() if fp == instance.fingerprint
                    and r.state == "firing" and r.sent_at >= problem[1]]
        if esc.level > max(notified, default=0):
            out.append((instance.fingerprint, esc))
    return out


def sent_record(due: Due, result: str, now: datetime) -> NotificationRecord:
    """The record of delivering `due`. Stamp it with the evaluation's `now`, so that it is
    never later than the start of a following episode."""
    return NotificationRecord(fingerprint=due.fingerprint, channel=due.channel, state=due.state,
                              severity=due.severity, level=due.level, sent_at=now,
                              result=result)


def record_notifications(
    log: Sequence[NotificationRecord],
    sent: Sequence[NotificationRecord],
    instances: Sequence[Instance],
    limit: int = NOTIFICATION_LOG_LIMIT,
) -> list[NotificationRecord]:
    """The log after sending: the newest record per (instance, channel), for current instances
    only, newest first. Problem records go first when capping, because only they are needed
    to deduplicate and to plan the resolved notification."""
    current = {i.fingerprint for i in instances}
    newest = _newest([*log, *sent])
    kept = [r for (fp, _), r in newest.items() if fp in current]
    kept.sort(key=lambda r: (r.state == "resolved", -r.sent_at.timestamp(), r.channel))
    return sorted(kept[:limit], key=lambda r: (-r.sent_at.timestamp(), r.fingerprint, r.channel))


# --- templates and actions ----------------------------------------------------------------

_TEMPLATE = re.compile(
    r"\{\{-?\s*\$(value|labels\.([a-zA-Z_][a-zA-Z0-9_]*)|labels)\s*(\|\s*humanize\s*)?-?\}\}"
)


def humanize(value: float) -> str:
    """Prometheus' `humanize`: SI prefixes, four significant digits (1234567 → 1.235M)."""
    if math.isnan(value) or math.isinf(value) or value == 0:
        return format_value(value) or ""
    prefixes = [(1e24, "Y"), (1e21, "Z"), (1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"),
                (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"),
                (1e-12, "p"), (1e-15, "f"), (1e-18, "a"), (1e-21, "z"), (1e-24, "y")]
    for size, prefix in prefixes:
        if abs(value) >= size:
            return f"{value / size:.4g}{prefix}"
    return f"{value:.4g}"


def render_template(text: str, labels: Labels, value: float | None) -> str:
    """Expand `{{ $value }}`, `{{ $value | humanize }}`, `{{ $labels.x }}` and `{{ $labels }}`.

    Only these forms are understood, by substitution (nothing is evaluated); an unknown label
    renders empty and any other `{{ ... }}` is left as written, so a typo is visible."""

    def expand(match: re.Match[str]) -> str:
        what, label, humanized = match.group(1), match.group(2), match.group(3)
        if what == "value":
            if value is None:
                return ""
            return humanize(value) if humanized else format_value(value) or ""
        if label is not None:
            return labels.get(label, "")
        return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))

    return _TEMPLATE.sub(expand, text)


def action_due(last_action_at: datetime | None, cooldown: timedelta, now: datetime) -> bool:
    """Whether actions may run again: never run, or the cooldown has passed since the last
    run (successful or not, so a failing action is not retried every tick)."""
    return last_action_at is None or now - last_action_at >= cooldown


def scaled_replicas(current: int, by: int, minimum: int, maximum: int) -> int:
    """Replicas after scaling by `by`, clamped to [minimum, maximum]."""
    return max(minimum, min(maximum, current + by))
