"""core.alertrule.rule: a spec compiled once into the core's types."""

from __future__ import annotations

import gc
from datetime import timedelta

from runbook_operator.api.alertrule import AlertRuleSpec
from runbook_operator.core.alertrule.rule import Anomaly, Links, compile_rule, generator_url
from runbook_operator.core.alertrule.state import RuleTiming
from runbook_operator.core.escalation import Level
from runbook_operator.core.notify_plan import ChannelRule

MIN = timedelta(minutes=1)
THRESHOLD = {"query": "errors", "condition": {"operator": "ge", "threshold": 0.5}}


def test_a_threshold_rule_is_compiled_with_its_durations_parsed() -> None:
    rule = compile_rule(AlertRuleSpec.model_validate({
        **THRESHOLD, "for": "2m", "keepFiringFor": "1m30s", "interval": "15s",
        "noDataState": "KeepLast", "severity": "critical",
        "actions": {"restartDeployment": {"name": "web"}, "cooldown": "5m"},
    }))
    assert rule.interval == timedelta(seconds=15)
    assert rule.timing == RuleTiming(for_=2 * MIN, keep_firing_for=timedelta(seconds=90),
                                     no_data_state="KeepLast", error_state="Error",
                                     interval=timedelta(seconds=15))
    assert rule.threshold is not None and rule.anomaly is None
    assert rule.threshold.holds(0.5) and not rule.threshold.holds(0.4)
    assert not rule.threshold.holds(float("nan"))  # NaN >= 0.5 is false in PromQL too
    assert rule.action_cooldown == 5 * MIN and rule.severity == "critical"
    assert compile_rule(AlertRuleSpec.model_validate(THRESHOLD)).action_cooldown is None


def test_a_rule_keeps_what_evaluating_needs_and_not_the_validated_spec() -> None:
    """The operator keeps a compiled rule per AlertRule; the whole validated spec beside it
    was a third of the operator's live data at 5,000 rules (bench/README.md)."""
    spec = AlertRuleSpec.model_validate({
        **THRESHOLD, "labels": {"team": "web"}, "annotations": {"summary": "{{ $value }}"},
        "escalationPolicyRef": {"name": "web-oncall"},
        "prometheus": {"url": "http://prometheus:9090"},
        "actions": {"restartDeployment": {"name": "web"}},
    })
    rule = compile_rule(spec)
    assert (rule.query, rule.escalation_policy) == ("errors", "web-oncall")
    assert rule.prometheus == spec.prometheus and rule.actions == spec.actions
    assert (rule.labels, rule.annotations) == ({"team": "web"}, {"summary": "{{ $value }}"})
    assert not any(isinstance(part, AlertRuleSpec) for part in gc.get_referents(rule))
    assert not hasattr(rule, "__dict__")


def test_channels_and_levels_keep_the_first_timing_of_a_channel_named_twice() -> None:
    rule = compile_rule(AlertRuleSpec.model_validate({
        **THRESHOLD,
        "channels": [{"name": "slack", "repeatInterval": "1h"}],
        "escalateAfter": [
            {"after": "10m", "channels": [{"name": "slack", "repeatInterval": "5m"},
                                         {"name": "pager", "sendResolved": False}]},
            {"after": "30m", "channels": [{"name": "pager", "repeatInterval": "1m"}],
             "severity": "critical"},
        ],
    }))
    assert rule.channels == ("slack",)
    assert rule.channel_rules == {
        "slack": ChannelRule("slack", repeat_interval=60 * MIN),
        "pager": ChannelRule("pager", repeat_interval=4 * 60 * MIN, send_resolved=False),
    }
    assert rule.escalation.levels == (
        Level(10 * MIN, ("slack", "pager")), Level(30 * MIN, ("pager",), "critical"))
    assert rule.escalation.repeats == 0


def test_an_anomaly_rule_uses_its_own_for_and_parsed_windows() -> None:
    rule = compile_rule(AlertRuleSpec.model_validate({
        "for": "9m",
        "anomaly": {"queries": [{"name": "latency", "query": "p99"}], "trainingWindow": "1d",
                    "step": "5m", "minSamples": 100, "retrainInterval": "2h", "for": "3m"},
    }))
    assert rule.threshold is None and rule.timing.for_ == 3 * MIN
    assert rule.anomaly == Anomaly(
        queries=(("latency", "p99"),), training_window=timedelta(days=1), step=5 * MIN,
        min_samples=100, retrain_interval=120 * MIN, contamination=0.01, score_threshold=None)


def test_the_generator_url_links_the_query_as_prometheus_links_an_alerts_expression() -> None:
    assert generator_url("http://prom.example:9090", ['sum(rate(x{a="b c"}[5m])) > 1']) == (
        "http://prom.example:9090/graph?g0.expr=sum%28rate%28x%7Ba%3D%22b+c%22%7D%5B5m%5D%29"
        "%29+%3E+1&g0.tab=1")
    assert generator_url("http://p", ["a", "b"]) == (
        "http://p/graph?g0.expr=a&g0.tab=1&g1.expr=b&g1.tab=1")
    assert generator_url("", ["a"]) == ""


def test_links_come_from_the_rules_prometheus_or_the_operators_default() -> None:
    links = Links(external_url="https://runbook.example/",
                  prometheus_external_url="https://prom/")
    default = compile_rule(AlertRuleSpec.model_validate(THRESHOLD), links)
    assert default.generator_url == "https://prom/graph?g0.expr=errors&g0.tab=1"
    assert default.external_url == "https://runbook.example"  # trailing slash dropped, as AM does
    own = compile_rule(AlertRuleSpec.model_validate(
        {**THRESHOLD, "prometheus": {"url": "http://other:9090",
                                     "externalURL": "https://other.example/prom/"}}), links)
    assert own.generator_url == "https://other.example/prom/graph?g0.expr=errors&g0.tab=1"
    # Another Prometheus without an external URL: the default's would point elsewhere.
    other = compile_rule(AlertRuleSpec.model_validate(
        {**THRESHOLD, "prometheus": {"url": "http://other:9090"}}), links)
    assert other.generator_url == ""
    anomaly = compile_rule(AlertRuleSpec.model_validate({"anomaly": {
        "queries": [{"name": "a", "query": "p99"}, {"name": "b", "query": "rps"}],
        "trainingWindow": "1d", "minSamples": 100}}), links)
    assert anomaly.generator_url == (
        "https://prom/graph?g0.expr=p99&g0.tab=1&g1.expr=rps&g1.tab=1")
    assert compile_rule(AlertRuleSpec.model_validate(THRESHOLD)).generator_url == ""
