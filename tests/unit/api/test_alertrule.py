"""api.alertrule: defaults, the pydantic mirrors of the CEL rules, and the generated CRD."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml
from pydantic import ValidationError
from runbook_operator.api import crdgen
from runbook_operator.api.alertrule import (
    LADDER_RULE,
    MODE_RULES,
    AlertInstance,
    AlertRule,
    AlertRuleSpec,
    AlertRuleStatus,
)

THRESHOLD = {"query": "sum(rate(http_requests_total{code=~'5..'}[5m])) by (service)",
             "condition": {"operator": "gt", "threshold": 0.05}}
ANOMALY = {"anomaly": {"queries": [{"name": "latency", "query": "histogram_quantile(0.95, x)"},
                                   {"name": "errors", "query": "rate(errors[5m])"}]}}


def spec(**overrides) -> AlertRuleSpec:
    body = {**THRESHOLD, **overrides}
    return AlertRuleSpec.model_validate({k: v for k, v in body.items() if v is not None})


def test_threshold_rule_defaults() -> None:
    s = spec()
    assert (s.for_, s.keep_firing_for, s.interval, s.severity) == ("0s", "0s", "1m", "medium")
    assert (s.no_data_state, s.error_state) == ("Normal", "Error")
    assert s.channels == [] and s.escalate_after == [] and s.anomaly is None


def test_full_rule_round_trips_on_the_wire() -> None:
    s = spec(**{
        "for": "5m", "keepFiringFor": "2m", "interval": "30s", "severity": "critical",
        "labels": {"team": "shop"}, "annotations": {"summary": "5xx at {{ $value }}"},
        "noDataState": "KeepLast", "errorState": "Alerting",
        "channels": [{"name": "slack-ops"}, {"name": "pagerduty", "repeatInterval": "1h",
                                              "sendResolved": False}],
        "escalateAfter": [{"after": "15m", "channels": [{"name": "oncall"}]},
                          {"after": "1h", "severity": "critical"}],
        "actions": {"scaleDeployment": {"name": "web", "by": 2, "min": 2, "max": 10},
                    "cooldown": "15m"},
        "prometheus": {"url": "http://prometheus.monitoring:9090",
                       "authSecretRef": {"name": "prom", "key": "token"}},
    })
    wire = s.to_wire()
    assert wire["for"] == "5m" and wire["channels"][0]["repeatInterval"] == "4h"
    assert wire["channels"][1]["sendResolved"] is False
    assert AlertRuleSpec.model_validate(wire) == s


def test_anomaly_rule_defaults() -> None:
    s = AlertRuleSpec.model_validate(ANOMALY)
    a = s.anomaly
    assert a is not None
    assert (a.training_window, a.step, a.min_samples, a.retrain_interval) == (
        "7d", "5m", 288, "1h")
    assert (a.contamination, a.score_threshold, a.for_) == (0.01, None, "0s")


@pytest.mark.parametrize("body, fragment", [
    ({"query": "up"}, "either query and condition, or anomaly"),
    ({"condition": {"operator": "gt", "threshold": 1}}, "either query and condition"),
    ({}, "either query and condition"),
    ({**THRESHOLD, **ANOMALY}, "either query and condition"),
    ({"query": "up", **ANOMALY}, "either query and condition"),
    ({**THRESHOLD, "condition": {"operator": "gte", "threshold": 1}}, "operator"),
    ({**THRESHOLD, "for": "5 minutes"}, "for"),
    ({**THRESHOLD, "keepFiringFor": "-1m"}, "keepFiringFor"),
    ({**THRESHOLD, "interval": "1s"}, "at least 5s"),
    ({**THRESHOLD, "interval": "4999ms"}, "at least 5s"),
    ({**THRESHOLD, "interval": "1d"}, "interval"),
    ({**THRESHOLD, "severity": "major"}, "severity"),
    ({**THRESHOLD, "noDataState": "NoData"}, "noDataState"),
    ({**THRESHOLD, "errorState": "OK"}, "errorState"),
    ({**THRESHOLD, "labels": {"bad-name": "x"}}, "label names"),
    ({**THRESHOLD, "channels": [{"name": "a"}, {"name": "a"}]}, "unique"),
    ({**THRESHOLD, "channels": [{"name": "Bad_Name"}]}, "name"),
    ({**THRESHOLD, "channels": [{"name": "a", "repeatInterval": "often"}]}, "repeatInterval"),
    ({**THRESHOLD, "escalateAfter": [{"after": "15m"}]}, "adds channels or sets a severity"),
    ({**THRESHOLD, "escalateAfter": [{"after": "1h", "severity": "high"},
                                     {"after": "15m", "severity": "critical"}]}, "increasing"),
    ({**THRESHOLD, "escalateAfter": [{"after": "1h", "severity": "high"}],
      "escalationPolicyRef": {"name": "team"}}, "not both"),
    ({**THRESHOLD, "escalationPolicyRef": {"name": "Team_Ladder"}}, "escalationPolicyRef"),
    ({**THRESHOLD, "incident": {"severity": "critical"}}, "incident.severity"),
    ({**THRESHOLD, "actions": {"cooldown": "5m"}}, "at least one of"),
    ({**THRESHOLD, "actions": {"scaleDeployment": {"name": "w", "by": 1, "min": 5, "max": 2}}},
     "min must not exceed max"),
    ({**THRESHOLD, "actions": {"scaleDeployment": {"name": "w", "by": 0, "max": 2}}},
     "by must not be 0"),
    ({**THRESHOLD, "prometheus": {"url": "prometheus:9090"}}, "url"),
    ({"anomaly": {"queries": []}}, "queries"),
    ({"anomaly": {"queries": [{"name": f"q{n}", "query": "up"} for n in range(9)]}}, "queries"),
    ({"anomaly": {**ANOMALY["anomaly"], "contamination": 0}}, "greater than 0"),
    ({"anomaly": {**ANOMALY["anomaly"], "contamination": 0.6}}, "contamination"),
    ({"anomaly": {**ANOMALY["anomaly"], "scoreThreshold": 1.5}}, "scoreThreshold"),
    ({"anomaly": {**ANOMALY["anomaly"], "trainingWindow": "1h"}}, "fewer than minSamples"),
])
def test_invalid_specs_are_rejected(body, fragment) -> None:
    with pytest.raises(ValidationError, match=fragment):
        AlertRuleSpec.model_validate(body)


def test_status_round_trips_and_is_capped() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    inst = AlertInstance(fingerprint="f", labels={"pod": "a"}, state="Firing", firing_since=now,
                         last_value="NaN")
    status = AlertRuleStatus(state="Firing", instances=[inst], last_value="NaN")
    assert AlertRuleStatus.model_validate(status.to_wire()) == status
    with pytest.raises(ValidationError):
        AlertRuleStatus(instances=[inst] * 51)


def _crd() -> dict:
    return crdgen.crd(AlertRule)


def _walk(node: dict, path: str = ""):
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from _walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


def test_crd_is_structural_and_documented() -> None:
    crd = _crd()
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    text = yaml.safe_dump(schema)
    assert "$ref" not in text and "anyOf" not in text and "title:" not in text
    for path, node in _walk(schema):
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} untyped"
        is_property = path and not path.endswith(("[]", "{}"))
        if is_property and path not in (".apiVersion", ".kind", ".metadata"):
            assert node.get("description"), f"{path} has no description"


def test_crd_names_columns_and_rules() -> None:
    crd = _crd()
    assert crd["metadata"]["name"] == "alertrules.runbook.dev"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"], names["categories"]) == (
        "AlertRule", "alertrules", ["ar"], ["runbook"])
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["State", "Value", "Since", "Ready", "Age"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["x-kubernetes-validations"] == [*MODE_RULES, LADDER_RULE]
    assert {(r["fieldPath"], r["reason"]) for r in MODE_RULES} == {
        (f".{field}", reason) for field in ("query", "condition")
        for reason in ("FieldValueRequired", "FieldValueForbidden")}
    props = spec["properties"]
    assert props["for"]["default"] == "0s" and props["interval"]["default"] == "1m"
    assert props["channels"]["x-kubernetes-list-type"] == "map"
    assert props["channels"]["x-kubernetes-list-map-keys"] == ["name"]
    assert props["channels"]["items"]["properties"]["repeatInterval"]["default"] == "4h"
    assert props["noDataState"]["enum"] == ["Normal", "Alerting", "KeepLast", "Error"]
    assert props["condition"]["properties"]["operator"]["enum"] == [
        "gt", "ge", "lt", "le", "eq", "ne"]
    assert "duration(self)" in props["interval"]["x-kubernetes-validations"][0]["rule"]
    assert props["anomaly"]["properties"]["contamination"]["maximum"] == 0.5
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert status["conditions"]["x-kubernetes-list-type"] == "map"
    assert status["instances"]["maxItems"] == 50
    assert set(status["instances"]["items"]["properties"]["state"]["enum"]) == {
        "Normal", "Pending", "Firing", "Recovering", "NoData", "Error"}
