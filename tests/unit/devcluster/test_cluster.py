from __future__ import annotations

import ipaddress

from runbook_operator.devcluster.cluster import (
    SERVICE_CLUSTER_IP_RANGE,
    build_scripts,
    kwok_stages,
)
from runbook_operator.devcluster.runtime.images import kwok_exclusion


def test_kwok_leaves_every_pod_of_a_project_image_to_the_runtime() -> None:
    pod_stages = [s for s in kwok_stages() if s["spec"]["resourceRef"]["kind"] == "Pod"]
    assert {s["metadata"]["name"] for s in pod_stages} == {"pod-ready", "pod-complete",
                                                           "pod-delete"}
    for stage in pod_stages:
        assert kwok_exclusion() in stage["spec"]["selector"]["matchExpressions"]
    nodes = [s for s in kwok_stages() if s["spec"]["resourceRef"]["kind"] == "Node"]
    assert all(kwok_exclusion() not in s["spec"]["selector"]["matchExpressions"] for s in nodes)


def test_every_build_a_cluster_uses_runs_before_entering_the_namespace() -> None:
    assert [p.name for p in build_scripts()] == ["build-control-plane.sh", "build-traefik.sh",
                                                 "build-prometheus.sh", "build-minio.sh",
                                                 "build-istio-crds.sh"]
    assert all(p.is_file() for p in build_scripts())


def test_the_service_range_holds_the_services_of_the_benchmarks() -> None:
    """bench/canary.py's 200 CanaryRollouts have two Services each; a /24 ran out at 127."""
    room = ipaddress.ip_network(SERVICE_CLUSTER_IP_RANGE).num_addresses - 2
    assert room >= 2 * 200 + 100
