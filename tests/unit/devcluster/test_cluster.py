from __future__ import annotations

from runbook_operator.devcluster.cluster import build_scripts, kwok_stages
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
