"""An AlertRule's spec in the core's own terms, compiled once per spec change.

Durations are parsed and channels, levels and handling resolved here, when the operator first
sees a generation, instead of on every evaluation; the evaluation loop then works on the
compiled `Rule` it caches with the object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from runbook_operator.api.alertrule import AlertRuleSpec, ChannelRef, Operator
from runbook_operator.api.common import parse_duration
from runbook_operator.api.notificationchannel import Severity
from runbook_operator.core.alertrule.state import RuleTiming, compare
from runbook_operator.core.escalation import Level, Policy
from runbook_operator.core.notify_plan import ChannelRule


@dataclass(frozen=True)
class Threshold:
    """`value OP threshold` (NaN never satisfies it)."""

    operator: Operator
    threshold: float

    def holds(self, value: float) -> bool:
        return compare(self.operator, value, self.threshold)


@dataclass(frozen=True)
class Anomaly:
    """The anomaly detector's settings, durations parsed."""

    queries: tuple[tuple[str, str], ...]
    """(feature name, PromQL) pairs."""
    training_window: timedelta
    step: timedelta
    min_samples: int
    retrain_interval: timedelta
    contamination: float
    score_threshold: float | None


@dataclass(frozen=True)
class Rule:
    """What evaluating, deciding and notifying need from one generation of a spec."""

    spec: AlertRuleSpec
    """The validated spec, for the adapters that take its parts as they are (Prometheus
    credentials, actions, annotations)."""
    interval: timedelta
    timing: RuleTiming
    severity: Severity
    threshold: Threshold | None
    anomaly: Anomaly | None
    channels: tuple[str, ...]
    """spec.channels, by name: who hears about every problem."""
    channel_rules: Mapping[str, ChannelRule]
    """Every channel the rule may notify (spec.channels, then those levels add), by name."""
    escalation: Policy
    action_cooldown: timedelta | None
    """None when the rule has no actions."""


def _channel_rule(ref: ChannelRef) -> ChannelRule:
    return ChannelRule(name=ref.name, repeat_interval=parse_duration(ref.repeat_interval),
                       send_resolved=ref.send_resolved)


def _anomaly(spec: AlertRuleSpec) -> Anomaly | None:
    anomaly = spec.anomaly
    if anomaly is None:
        return None
    return Anomaly(
        queries=tuple((q.name, q.query) for q in anomaly.queries),
        training_window=parse_duration(anomaly.training_window),
        step=parse_duration(anomaly.step),
        min_samples=anomaly.min_samples,
        retrain_interval=parse_duration(anomaly.retrain_interval),
        contamination=anomaly.contamination,
        score_threshold=anomaly.score_threshold,
    )


def compile_rule(spec: AlertRuleSpec) -> Rule:
    """The rule for a validated spec. A channel named twice (in spec.channels and a level, or
    in two levels) keeps its first timing."""
    rules: dict[str, ChannelRule] = {}
    for ref in [*spec.channels, *(c for lv in spec.escalate_after for c in lv.channels or [])]:
        rules.setdefault(ref.name, _channel_rule(ref))
    levels = tuple(
        Level(after=parse_duration(level.after),
              channels=tuple(c.name for c in level.channels or []), severity=level.severity)
        for level in spec.escalate_after
    )
    pending = spec.anomaly.for_ if spec.anomaly is not None else spec.for_
    condition = spec.condition
    return Rule(
        spec=spec,
        interval=parse_duration(spec.interval),
        timing=RuleTiming(
            for_=parse_duration(pending),
            keep_firing_for=parse_duration(spec.keep_firing_for),
            no_data_state=spec.no_data_state,
            error_state=spec.error_state,
        ),
        severity=spec.severity,
        threshold=None if condition is None else Threshold(condition.operator,
                                                           condition.threshold),
        anomaly=_anomaly(spec),
        channels=tuple(c.name for c in spec.channels),
        channel_rules=rules,
        escalation=Policy(levels=levels),
        action_cooldown=None if spec.actions is None else parse_duration(spec.actions.cooldown),
    )
