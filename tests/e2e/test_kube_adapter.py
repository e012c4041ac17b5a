"""integrations.kubernetes.Kube against the real API server, with the operator's identity."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client

from runbook_operator.api.common import API_VERSION
from runbook_operator.integrations.kubernetes import connect
from tests.support.builders import alert_rule
from tests.support.kube import ALERT_RULES


def test_the_operator_counts_a_kinds_objects_from_the_api_servers_remaining_count(
    api: client.ApiClient, namespace: str, operator_kubeconfig: Path,
) -> None:
    """What the AlertRule evaluator counts at its start: one object per namespace is read."""
    for i in range(3):
        ALERT_RULES.create(api, namespace, alert_rule(f"rule-{i}", "http://127.0.0.1:9",
                                                      channels=[]))
    kube = connect(kubeconfig=str(operator_kubeconfig))
    assert kube.count(API_VERSION, "AlertRule", [namespace]) == 3
    assert kube.count(API_VERSION, "AlertRule", [namespace, "default"]) == 3
    assert kube.count(API_VERSION, "AlertRule", [None]) >= 3
