"""The shortcut for a quiet rule: most rules stay Normal or keep firing, and deciding one from
scratch (status parsed, state machine, escalation, notification plan, conditions, the
lasting-change comparison) cost 90-140 µs a rule, most of the operator's CPU at 5,000 rules
(bench/README.md).

An evaluation that changed nothing lasting, sent and ran nothing, left every instance Normal
or Firing and had one instance per series is remembered (`remember`), with the first time
deciding it again could differ as time alone passes: the heartbeat, the next escalation step
of a firing instance, the next repeat of a notification already sent, the end of the actions'
cooldown. A later evaluation of the same status (resourceVersion) and compiled rule whose
query returns the same series, the condition holding for exactly the firing ones, before that
time, would decide the same again: Normal instances stay Normal and Firing ones stay Firing
whatever the time, the conditions' messages only count series, nothing is due, and no series
is gone, so none is dropped after its retention. `recall` answers it with what status would
show, without deciding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from runbook_operator.api.alertrule import AlertRuleStatus
from runbook_operator.core.alertrule.actions import last_action_at
from runbook_operator.core.alertrule.decide import Decision, Evaluation, subject_of
from runbook_operator.core.alertrule.rule import Rule
from runbook_operator.core.alertrule.state import Instance, format_value
from runbook_operator.core.alertrule.status import Heartbeat
from runbook_operator.core.escalation import escalation
from runbook_operator.core.notify_plan import next_repeat

LabelsKey = tuple[tuple[str, str], ...]


def labels_key(labels: Mapping[str, str]) -> LabelsKey:
    """A series' identity as an instance's: its labels without `__name__`, in order."""
    return tuple(sorted((k, v) for k, v in labels.items() if k != "__name__"))


@dataclass(frozen=True, slots=True)
class Quiet:
    """A quiet evaluation of one status and compiled rule (see the module docstring)."""

    resource_version: str
    rule: Rule
    series: frozenset[LabelsKey]
    firing: frozenset[LabelsKey]
    """The series whose instances fire: the condition holds for them and no others."""
    shown: LabelsKey
    """The series of the instance status shows: the worst, first in the decision's
    instances."""
    until: datetime
    """When deciding could differ as time alone passes (see the module docstring)."""


def remember(resource_version: str, old: AlertRuleStatus, evaluation: Evaluation,
             decision: Decision, heartbeat: Heartbeat, now: datetime) -> Quiet | None:
    """What a later evaluation may reuse of one at `now` that wrote nothing, sent nothing and
    did nothing from the status `old` (None when it is not quiet)."""
    samples = evaluation.samples
    instances = decision.instances
    if (evaluation.anomaly is not None or not isinstance(samples, list) or not samples
            or old.last_evaluation is None or decision.has_effects
            or any(i.state not in ("Normal", "Firing") for i in instances)):
        return None
    keys = {key: key for key in (labels_key(labels) for labels, _ in samples)}
    if len(keys) != len(samples) or len(instances) != len(keys):
        return None
    firing = [i for i in instances if i.state == "Firing"]
    until = _until(old, evaluation.rule, firing, now, heartbeat.after(old.last_evaluation))
    if until is None:
        return None

    def kept(labels: Mapping[str, str]) -> LabelsKey:
        """The series' key, one copy per memo (there is a memo per rule, 5,000 at once)."""
        key = labels_key(labels)
        return keys.get(key, key)

    series = frozenset(keys)
    firing_keys = frozenset(kept(i.labels) for i in firing)
    return Quiet(resource_version, evaluation.rule, series,
                 series if firing_keys == series else firing_keys, kept(instances[0].labels),
                 until)


def _until(old: AlertRuleStatus, rule: Rule, firing: list[Instance], now: datetime,
           heartbeat_at: datetime) -> datetime | None:
    """The first time after `now` a decision about these firing instances could differ with
    nothing else changing: their next escalation step, the next repeat of a notification sent
    about them, the end of the actions' cooldown, the heartbeat (None: it could at once)."""
    if not firing:
        return heartbeat_at
    times = [heartbeat_at]
    for instance in firing:
        if instance.firing_since is None:
            return None
        step = escalation(rule.escalation, instance.firing_since, now, rule.severity)
        if step.next_deadline is not None:
            times.append(step.next_deadline)
    repeat = next_repeat([subject_of(i, rule, now) for i in firing], rule.channel_rules,
                         old.notifications)
    if repeat is not None:
        times.append(repeat)
    if rule.action_cooldown is not None:
        last = last_action_at(old.actions)
        if last is None:
            return None
        times.append(last + rule.action_cooldown)
    until = min(times)
    return until if until > now else None


@dataclass(frozen=True)
class Unchanged:
    """The evaluation decides what the remembered one did; status would show `state` and
    `last_value`."""

    state: str
    last_value: str | None


def recall(quiet: Quiet | None, resource_version: str, evaluation: Evaluation,
           now: datetime) -> Unchanged | None:
    """Whether `evaluation` of the status at `resource_version` needs no decision (None: it
    must be decided)."""
    samples = evaluation.samples
    if (quiet is None or quiet.resource_version != resource_version
            or quiet.rule is not evaluation.rule or now >= quiet.until
            or evaluation.anomaly is not None or not isinstance(samples, list)
            or len(samples) != len(quiet.series)):
        return None
    values = _values(samples, evaluation, quiet.firing)
    if values is None or values.keys() != quiet.series:
        return None
    return Unchanged("Firing" if quiet.firing else "Normal",
                     format_value(values[quiet.shown]))


def _values(samples: Sequence[tuple[Mapping[str, str], float]], evaluation: Evaluation,
            firing: frozenset[LabelsKey]) -> dict[LabelsKey, float] | None:
    """Each series' value, or None when the condition holds for a series that does not fire
    or not for one that does."""
    values = {}
    for labels, value in samples:
        number = float(value)
        key = labels_key(labels)
        if evaluation.holds(number) != (key in firing):
            return None
        values[key] = number
    return values
