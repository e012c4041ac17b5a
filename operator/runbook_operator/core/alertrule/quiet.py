"""The shortcut for a quiet rule: most rules stay Normal, and deciding one from scratch (status
parsed, state machine, conditions, the lasting-change comparison) cost 90 µs a rule, most of the
operator's CPU at 5,000 rules (bench/README.md).

An evaluation that changed nothing lasting, left every instance Normal and had one instance per
series is remembered (`remember`). A later evaluation of the same status (resourceVersion) and
compiled rule whose query returns the same series, none of them satisfying the condition, before
the heartbeat is due, would decide the same again: Normal instances step to Normal whatever the
time, the conditions' messages only count the series, no notification is planned for a subject
without a problem, and no series is gone, so none is dropped after its retention. `recall`
answers it with the value status would show, without deciding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from runbook_operator.api.alertrule import AlertRuleStatus
from runbook_operator.core.alertrule.decide import Decision, Evaluation
from runbook_operator.core.alertrule.rule import Rule
from runbook_operator.core.alertrule.state import format_value

LabelsKey = tuple[tuple[str, str], ...]


def labels_key(labels: Mapping[str, str]) -> LabelsKey:
    """A series' identity as an instance's: its labels without `__name__`, in order."""
    return tuple(sorted((k, v) for k, v in labels.items() if k != "__name__"))


@dataclass(frozen=True)
class Quiet:
    """A quiet evaluation of one status and compiled rule (see the module docstring)."""

    resource_version: str
    rule: Rule
    series: frozenset[LabelsKey]
    shown: LabelsKey
    """The series of the instance status shows (the worst: all are Normal, so the first by
    fingerprint)."""
    heartbeat_at: datetime
    """When a status write is due anyway."""


def remember(resource_version: str, old: AlertRuleStatus, evaluation: Evaluation,
             decision: Decision, heartbeat: timedelta) -> Quiet | None:
    """What a later evaluation may reuse of one that wrote nothing, sent nothing and did
    nothing from the status `old` (None when it is not quiet)."""
    samples = evaluation.samples
    instances = decision.instances
    if (evaluation.anomaly is not None or not isinstance(samples, list) or not samples
            or old.last_evaluation is None or decision.has_effects
            or any(i.state != "Normal" for i in instances)):
        return None
    series = frozenset(labels_key(labels) for labels, _ in samples)
    if len(series) != len(samples) or len(instances) != len(series):
        return None
    shown = min(instances, key=lambda i: i.fingerprint)
    return Quiet(resource_version, evaluation.rule, series, labels_key(shown.labels),
                 old.last_evaluation + heartbeat)


@dataclass(frozen=True)
class Unchanged:
    """The evaluation decides what the remembered one did; status would show `last_value`."""

    last_value: str | None


def recall(quiet: Quiet | None, resource_version: str, evaluation: Evaluation,
           now: datetime) -> Unchanged | None:
    """Whether `evaluation` of the status at `resource_version` needs no decision (None: it
    must be decided)."""
    samples = evaluation.samples
    if (quiet is None or quiet.resource_version != resource_version
            or quiet.rule is not evaluation.rule or now >= quiet.heartbeat_at
            or evaluation.anomaly is not None or not isinstance(samples, list)
            or len(samples) != len(quiet.series)):
        return None
    values = _values(samples, evaluation)
    if values is None or values.keys() != quiet.series:
        return None
    return Unchanged(format_value(values[quiet.shown]))


def _values(samples: Sequence[tuple[Mapping[str, str], float]],
            evaluation: Evaluation) -> dict[LabelsKey, float] | None:
    """Each series' value, or None when the condition holds for one."""
    values = {}
    for labels, value in samples:
        number = float(value)
        if evaluation.holds(number):
            return None
        values[labels_key(labels)] = number
    return values
