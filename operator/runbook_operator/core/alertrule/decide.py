"""One evaluation's decisions before anything is sent: the instances' next states, the
notifications due (escalation included), and whether an automated action is due."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from runbook_operator.api.alertrule import AlertRule, AlertRuleStatus, AnomalyStatus
from runbook_operator.core.alertrule.actions import action_due, last_action_at
from runbook_operator.core.alertrule.rule import Rule
from runbook_operator.core.alertrule.state import Instance, QueryError, Sample, evaluate_rule
from runbook_operator.core.escalation import escalation
from runbook_operator.core.notify_plan import Batch, Due, Problem, Subject, batches, plan

KIND = AlertRule.info.kind
Key = tuple[str, str]
"""An AlertRule's namespace and name."""


@dataclass
class Evaluation:
    """One rule's inputs for one evaluation: what was observed and what makes an instance
    active."""

    key: Key
    rule: Rule
    samples: list[Sample] | QueryError
    holds: Callable[[float], bool]
    error_kind: str | None = None
    anomaly: AnomalyStatus | None = None


@dataclass(frozen=True)
class Decision:
    """What one evaluation decided before anything is sent: the instances' next states, the
    notifications due (and by channel, with each channel's other current problems), and the
    firing instance an automated action is due for."""

    instances: list[Instance]
    due: list[Due]
    act_for: Instance | None
    batches: list[Batch] = field(default_factory=list)

    @property
    def has_effects(self) -> bool:
        return bool(self.due) or self.act_for is not None


def subject_of(instance: Instance, rule: Rule, now: datetime) -> Subject:
    """An instance as notifications see it: a firing instance escalates by the time since it
    started firing (levels add channels and raise the severity); an error is notified to the
    rule's channels at its severity; anything else is not a problem."""
    if instance.state in ("Firing", "Recovering") and instance.firing_since is not None:
        reached = escalation(rule.escalation, instance.firing_since, now, rule.severity)
        added = tuple(c for c in reached.channels if c not in rule.channels)
        return Subject(instance.fingerprint, Problem(
            "firing", instance.firing_since, reached.severity, rule.channels + added,
            reached.step))
    if instance.state == "Error" and instance.active_since is not None:
        return Subject(instance.fingerprint, Problem(
            "error", instance.active_since, rule.severity, rule.channels))
    return Subject(instance.fingerprint)


def decide(old: AlertRuleStatus, evaluation: Evaluation, now: datetime) -> Decision:
    rule = evaluation.rule
    namespace, name = evaluation.key
    instances = evaluate_rule(
        old.instances, evaluation.samples, rule.timing, now, holds=evaluation.holds,
        identity=(KIND, namespace, name),
    )
    subjects = [subject_of(i, rule, now) for i in instances]
    due = plan(subjects, rule.channel_rules, old.notifications, now)
    firing = next((i for i in instances if i.state == "Firing"), None)
    cooldown = rule.action_cooldown
    act_for = firing if (cooldown is not None and firing is not None and action_due(
        last_action_at(old.actions), cooldown, now)) else None
    return Decision(instances, due, act_for, batches(due, subjects))
