"""controllers.canary.reads: one tick reads each object once until it writes it."""

from __future__ import annotations

from typing import Any

from runbook_operator.controllers.canary.reads import TickReads
from tests.support.fakes import FakeCluster


def deployment(name: str, replicas: int) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "shop"}, "spec": {"replicas": replicas}}


def test_a_repeated_read_is_answered_from_the_first() -> None:
    cluster = FakeCluster(deployment("checkout", 1))
    reads = TickReads(cluster)  # type: ignore[arg-type]
    first = reads.get("apps/v1", "Deployment", "checkout", "shop")
    assert first is not None
    first["spec"]["replicas"] = 9  # what a caller does with its copy stays its own
    again = reads.get("apps/v1", "Deployment", "checkout", "shop")
    assert again is not None and again["spec"]["replicas"] == 1
    assert reads.get("apps/v1", "Deployment", "gone", "shop") is None
    assert reads.get("apps/v1", "Deployment", "gone", "shop") is None
    assert cluster.requests == ["get Deployment/checkout", "get Deployment/gone"]


def test_every_write_forgets_the_object_it_wrote() -> None:
    """After its own write the tick reads the object from the API server again (a router's
    read-back after scaling sees the scale), other objects stay remembered."""
    cluster = FakeCluster(deployment("checkout", 1), deployment("checkout-primary", 1))
    reads = TickReads(cluster)  # type: ignore[arg-type]

    def replicas(name: str) -> int:
        found = reads.get("apps/v1", "Deployment", name, "shop")
        assert found is not None
        return found["spec"]["replicas"]

    assert (replicas("checkout"), replicas("checkout-primary")) == (1, 1)
    reads.merge_patch("apps/v1", "Deployment", "checkout", "shop", {"spec": {"replicas": 0}})
    assert (replicas("checkout"), replicas("checkout-primary")) == (0, 1)
    reads.apply(deployment("checkout-primary", 3))
    assert replicas("checkout-primary") == 3
    assert cluster.requests == [
        "get Deployment/checkout", "get Deployment/checkout-primary",
        "merge Deployment/checkout", "get Deployment/checkout",
        "apply Deployment/checkout-primary", "get Deployment/checkout-primary"]


def test_a_status_write_forgets_the_object_and_the_rest_is_the_clients() -> None:
    rollout = {"apiVersion": "runbook.dev/v1alpha1", "kind": "CanaryRollout",
               "metadata": {"name": "checkout", "namespace": "shop"}, "spec": {}}
    cluster = FakeCluster(rollout)
    reads = TickReads(cluster)  # type: ignore[arg-type]
    read = reads.get("runbook.dev/v1alpha1", "CanaryRollout", "checkout", "shop")
    assert read is not None
    reads.patch_status("runbook.dev/v1alpha1", "CanaryRollout", "checkout", "shop",
                       {"phase": "Initialized"}, read["metadata"]["resourceVersion"])
    fresh = reads.get("runbook.dev/v1alpha1", "CanaryRollout", "checkout", "shop")
    assert fresh is not None and fresh["status"] == {"phase": "Initialized"}
    reads.event(read, "Normal", "Initialized", "the primary runs")
    assert cluster.requests == ["get CanaryRollout/checkout", "patch CanaryRollout/checkout",
                                "get CanaryRollout/checkout", "event Initialized"]
