from __future__ import annotations

from pathlib import Path

from runbook_operator.api.alertrule import AlertRuleSpec
from runbook_operator.devcluster.demo import LocalEndpoints, example_documents, localize
from runbook_operator.devcluster.demo_live import ANOMALY_RULE, rule_queries

REPO = Path(__file__).resolve().parents[3]
LOCAL = LocalEndpoints(postgres_host="127.0.0.1", postgres_port=5999, postgres_user="postgres",
                       postgres_password="pw", s3_endpoint="http://127.0.0.1:9999",
                       s3_access_key="ak", s3_secret_key="sk",
                       receiver_url="http://127.0.0.1:8888")


def _by_name(docs: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs}


def test_the_demo_points_the_examples_at_its_local_services_only() -> None:
    original = example_documents(REPO)
    docs = _by_name(localize(original, LOCAL))
    for name in ("app-db-nightly", "app-db-hourly"):
        source = docs[name]["spec"]["source"]["postgres"]
        assert (source["host"], source["port"], source["user"]) == ("127.0.0.1", 5999,
                                                                    "postgres")
    assert docs["app-db-nightly"]["spec"]["destination"]["s3"]["endpoint"] == LOCAL.s3_endpoint
    assert docs["app-db-credentials"]["stringData"]["password"] == "pw"
    assert docs["backup-bucket-credentials"]["stringData"] == {
        "AWS_ACCESS_KEY_ID": "ak", "AWS_SECRET_ACCESS_KEY": "sk"}
    endpoints = docs["notification-endpoints"]["stringData"]
    assert endpoints["slack-webhook-url"].startswith(LOCAL.receiver_url)
    assert endpoints["incident-webhook-url"].startswith(LOCAL.receiver_url)
    assert docs["oncall-pagerduty"]["spec"]["pagerduty"]["endpoint"].startswith(
        LOCAL.receiver_url)


def test_localize_changes_nothing_else_and_leaves_the_examples_alone() -> None:
    original = example_documents(REPO)
    docs = _by_name(localize(original, LOCAL))
    before = _by_name(original)
    assert before["app-db-nightly"]["spec"]["source"]["postgres"]["host"] == "app-db.default.svc"
    for name in ("app-db-nightly", "app-db-hourly"):
        assert docs[name]["spec"]["retention"] == before[name]["spec"]["retention"]
        assert docs[name]["spec"]["schedule"] == before[name]["spec"]["schedule"]
    assert docs["config-export"] == before["config-export"]
    assert set(docs) == set(before)
    rules = [n for n, d in before.items() if d["kind"] == "AlertRule" and n != ANOMALY_RULE]
    assert rules and all(docs[n] == before[n] for n in rules)


def test_the_anomaly_rule_trains_on_the_demos_minutes_with_the_same_queries() -> None:
    example = _by_name(example_documents(REPO))[ANOMALY_RULE]["spec"]
    demo = _by_name(localize(example_documents(REPO), LOCAL))[ANOMALY_RULE]["spec"]
    assert demo["anomaly"]["queries"] == example["anomaly"]["queries"]
    assert (demo["anomaly"]["trainingWindow"], demo["anomaly"]["step"],
            demo["anomaly"]["minSamples"]) == ("2m", "1s", 30)
    assert example["anomaly"]["minSamples"] == 288
    AlertRuleSpec.model_validate(demo)  # the API would accept it


def test_every_example_rules_query_is_checked_for_real_numbers_before_the_rules_apply() -> None:
    docs = example_documents(REPO)
    labels = [label for label, _ in rule_queries(docs)]
    rules = [d["metadata"]["name"] for d in docs if d["kind"] == "AlertRule"]
    assert all(any(label.split(":")[0] == rule for label in labels) for rule in rules)
    anomaly = [label for label in labels if label.startswith(f"{ANOMALY_RULE}:")]
    assert len(anomaly) == 5
