"""An AlertRule's spec in the core's own terms, compiled once per spec change.

Durations are parsed and channels, levels and handling resolved here, when the operator first
sees a generation, instead of on every evaluation; the evaluation loop then works on the
compiled `Rule` it caches with the object. The validated spec is not kept: a `Rule` holds only
what evaluating needs, a third of the spec's memory at 5,000 rules (bench/README.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote_plus

from runbook_operator.api.alertrule import (
    Actions,
    AlertRuleSpec,
    ChannelRef,
    Operator,
    PrometheusSource,
)
from runbook_operator.api.common import parse_duration
from runbook_operator.api.notificationchannel import Severity
from runbook_operator.core.alertrule.state import RuleTiming, compare
from runbook_operator.core.escalation import Level, Policy
from runbook_operator.core.notify_plan import ChannelRule


@dataclass(frozen=True)
class Links:
    """Where people can follow an alert back to, from the operator's flags."""

    external_url: str = ""
    """The operator's --external-url: each message's externalURL."""
    prometheus_external_url: str = ""
    """The operator's --prometheus-external-url: the default Prometheus as people reach it."""


def external(url: str | None) -> str:
    """A URL as Prometheus and Alertmanager use their --web.external-url: trailing slashes
    dropped."""
    return (url or "").rstrip("/")


def generator_url(prometheus: str, queries: Sequence[str]) -> str:
    """Prometheus' link to the queries' table view, as its alerts' generatorURL is made
    (`<external URL>/graph?g0.expr=<query>&g0.tab=1`, one `g<i>` per query); empty without
    an external URL."""
    if not prometheus:
        return ""
    params = "&".join(f"g{i}.expr={quote_plus(query, safe='')}&g{i}.tab=1"
                      for i, query in enumerate(queries))
    return f"{prometheus}/graph?{params}"


@dataclass(frozen=True, slots=True)
class Threshold:
    """`value OP threshold` as PromQL compares (NaN satisfies only `ne`)."""

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


@dataclass(frozen=True, slots=True)
class Rule:
    """What evaluating, deciding and notifying need from one generation of a spec."""

    query: str | None
    """spec.query (None: an anomaly rule, whose queries are in `anomaly`)."""
    prometheus: PrometheusSource | None
    """spec.prometheus: the server and credentials (None: the operator's default)."""
    escalation_policy: str | None
    """spec.escalationPolicyRef's name: the ladder followed instead of `escalation`."""
    actions: Actions | None
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
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
    generator_url: str = ""
    """Where the rule's query is shown in Prometheus (empty: no external URL known)."""
    external_url: str = ""
    """The operator's external URL, for its messages."""


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


def _generator_url(spec: AlertRuleSpec, links: Links) -> str:
    """The query's link: at spec.prometheus.externalURL, or at the operator's default
    Prometheus' when the rule queries that one."""
    source = spec.prometheus
    if source is not None and source.external_url:
        base = source.external_url
    elif source is None or source.url is None:
        base = links.prometheus_external_url
    else:
        base = ""
    queries = ([spec.query] if spec.query is not None
               else [q.query for q in spec.anomaly.queries] if spec.anomaly is not None else [])
    return generator_url(external(base), queries)


def compile_rule(spec: AlertRuleSpec, links: Links = Links()) -> Rule:
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
    interval = parse_duration(spec.interval)
    return Rule(
        query=spec.query,
        prometheus=spec.prometheus,
        escalation_policy=(None if spec.escalation_policy_ref is None
                           else spec.escalation_policy_ref.name),
        actions=spec.actions,
        labels=spec.labels,
        annotations=spec.annotations,
        interval=interval,
        timing=RuleTiming(
            for_=parse_duration(pending),
            keep_firing_for=parse_duration(spec.keep_firing_for),
            no_data_state=spec.no_data_state,
            error_state=spec.error_state,
            interval=interval,
        ),
        severity=spec.severity,
        threshold=None if condition is None else Threshold(condition.operator,
                                                           condition.threshold),
        anomaly=_anomaly(spec),
        channels=tuple(c.name for c in spec.channels),
        channel_rules=rules,
        escalation=Policy(levels=levels),
        action_cooldown=None if spec.actions is None else parse_duration(spec.actions.cooldown),
        generator_url=_generator_url(spec, links),
        external_url=external(links.external_url),
    )
