from __future__ import annotations

from ipaddress import ip_network

from runbook_operator.devcluster.cluster import (
    KWOK_POD_CIDR,
    POD_CIDR,
    RUNTIME_POD_CIDR,
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


def test_kwok_and_the_runtime_hand_out_disjoint_parts_of_the_pod_network() -> None:
    kwok, runtime, pods = (ip_network(c) for c in (KWOK_POD_CIDR, RUNTIME_POD_CIDR, POD_CIDR))
    assert kwok.subnet_of(pods) and runtime.subnet_of(pods)
    assert not kwok.overlaps(runtime)
