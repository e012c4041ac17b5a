from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runbook_operator.integrations.routers import Backends, Owner, RouterError, router_for
from runbook_operator.integrations.routers.replica_ratio import (
    ReplicaRatioRouter,
    observe,
    selects,
    service_problem,
    split,
    total_replicas,
)
from tests.support.canary_world import spec
from tests.support.fakes import FakeCluster

TOTALS = st.integers(2, 1000)
WEIGHTS = st.integers(0, 100)


@pytest.mark.parametrize(("total", "weight", "expected"), [
    (10, 0, (10, 0)), (10, 5, (9, 1)), (10, 30, (7, 3)), (10, 55, (4, 6)), (10, 80, (2, 8)),
    (10, 100, (0, 10)), (4, 5, (3, 1)), (4, 99, (1, 3)), (2, 1, (1, 1)), (2, 99, (1, 1)),
    (1, 0, (1, 0)), (1, 100, (0, 1)), (0, 0, (0, 0)),
])
def test_the_rounding_rule(total: int, weight: int, expected: tuple[int, int]) -> None:
    assert split(total, weight) == expected


@given(TOTALS, WEIGHTS)
def test_the_counts_add_up_and_stay_within_100_over_total_points(total: int,
                                                                  weight: int) -> None:
    primary, canary = split(total, weight)
    assert primary + canary == total
    assert abs(100 * canary / total - weight) < 100 / total


@given(TOTALS, st.integers(1, 99))
def test_a_split_keeps_a_pod_of_each_version_and_rounds_the_canary_up(total: int,
                                                                      weight: int) -> None:
    primary, canary = split(total, weight)
    assert primary >= 1 and canary >= 1
    assert canary == min(math.ceil(total * weight / 100), total - 1)


@given(TOTALS, WEIGHTS, WEIGHTS)
def test_more_weight_never_means_fewer_canary_pods(total: int, a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert split(total, low)[1] <= split(total, high)[1]


@pytest.mark.parametrize(("total", "weight"), [(1, 5), (0, 50), (10, 101), (10, -1), (-1, 0)])
def test_impossible_splits_are_refused(total: int, weight: int) -> None:
    with pytest.raises(ValueError):
        split(total, weight)


def _deployment(name: str, replicas: int, ready: int | None = None,
                labels: dict[str, str] | None = None, generation: int = 2,
                observed: int = 2) -> dict[str, Any]:
    ready = replicas if ready is None else ready
    return {"metadata": {"name": name, "generation": generation},
            "spec": {"replicas": replicas,
                     "template": {"metadata": {"labels": labels or {}}}},
            "status": {"observedGeneration": observed, "replicas": replicas,
                       "updatedReplicas": replicas, "readyReplicas": ready}}


def test_the_total_is_the_configured_one_or_both_deployments_together() -> None:
    primary, canary = _deployment("checkout-primary", 3), _deployment("checkout", 1)
    assert total_replicas(None, primary, canary) == 4
    assert total_replicas(10, primary, canary) == 10
    del canary["spec"]["replicas"]  # the Deployment default
    assert total_replicas(None, primary, canary) == 4


def test_at_the_first_write_the_total_is_what_the_target_ran() -> None:
    """The primary is new (the Deployment default, 1) and the target runs the user's 3: the
    total is 3, not 4; once the target is at zero (a first write that was not recorded),
    both together again."""
    new_primary, target = _deployment("checkout-primary", 1), _deployment("checkout", 3)
    assert total_replicas(None, new_primary, target, first_write=True) == 3
    assert total_replicas(4, new_primary, target, first_write=True) == 4
    scaled = _deployment("checkout-primary", 3)
    assert total_replicas(None, scaled, _deployment("checkout", 0), first_write=True) == 3


def test_the_service_must_select_both_templates() -> None:
    primary = _deployment("checkout-primary", 1, labels={"app": "checkout-primary",
                                                         "service": "checkout"})
    canary = _deployment("checkout", 1, labels={"app": "checkout", "service": "checkout"})
    shared = {"metadata": {"name": "checkout"}, "spec": {"selector": {"service": "checkout"}}}
    assert service_problem(shared, primary, canary) is None
    only_canary = {"metadata": {"name": "checkout"}, "spec": {"selector": {"app": "checkout"}}}
    problem = service_problem(only_canary, primary, canary)
    assert problem is not None and "checkout-primary" in problem
    assert not selects({}, {"app": "checkout"})


@given(TOTALS, WEIGHTS)
def test_counts_ready_as_written_are_yes_with_the_weight(total: int, weight: int) -> None:
    primary, canary = split(total, weight)
    found = observe(_deployment("p", primary), _deployment("c", canary), total, weight)
    assert (found.verified, found.weight) == ("Yes", weight)


def test_pods_not_ready_yet_or_an_old_generation_cannot_tell() -> None:
    assert observe(_deployment("p", 7, ready=6), _deployment("c", 3), 10,
                   30).verified == "Unknown"
    assert observe(_deployment("p", 7), _deployment("c", 3, ready=0), 10,
                   30).verified == "Unknown"
    assert observe(_deployment("p", 7, observed=1), _deployment("c", 3), 10,
                   30).verified == "Unknown"
    leaving = _deployment("p", 7)
    leaving["status"]["replicas"] = 9  # pods still scaling down
    assert observe(leaving, _deployment("c", 3), 10, 30).verified == "Unknown"


def test_other_counts_or_a_missing_deployment_are_no() -> None:
    found = observe(_deployment("p", 9), _deployment("c", 1), 10, 30)
    assert found.verified == "No" and "not the 3 and 7 of 30%" in found.message
    assert observe(None, _deployment("c", 1), 10, 30).verified == "No"
    assert observe(_deployment("p", 1), _deployment("c", 0), 1, 30).verified == "No"


def test_the_factory_builds_it_from_the_spec() -> None:
    backends = Backends("shop", "checkout", 80, "http")
    owner = Owner("checkout", "shop", "uid-1")
    chosen = spec(router={"replicaRatio": {"totalReplicas": 4}})
    router = router_for(chosen, backends, owner, None)  # type: ignore[arg-type]
    assert isinstance(router, ReplicaRatioRouter)
    assert (router.primary, router.canary, router.configured_total) == (
        "checkout-primary", "checkout", 4)


def _cluster(primary: int, canary: int, selector: dict[str, str] | None = None
             ) -> FakeCluster:
    shared = {"app.kubernetes.io/part-of": "checkout"}
    bodies = [{"apiVersion": "apps/v1", "kind": "Deployment", **_deployment(
        name, replicas, labels={"app": name, **shared})} for name, replicas in
        (("checkout-primary", primary), ("checkout", canary))]
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "checkout", "namespace": "shop"},
               "spec": {"selector": shared if selector is None else selector}}
    for body in bodies:
        body["metadata"]["namespace"] = "shop"
    return FakeCluster(*bodies, service)


def _shell(cluster: FakeCluster, total: int | None = None,
           first_write: bool = False) -> ReplicaRatioRouter:
    kube: Any = cluster
    return ReplicaRatioRouter(kube, Backends("shop", "checkout", 80, "http"),
                              "checkout-primary", "checkout", total, first_write)


def _replicas(cluster: FakeCluster) -> tuple[int, int]:
    return tuple(cluster.get("apps/v1", "Deployment", name, "shop")["spec"]["replicas"]
                 for name in ("checkout-primary", "checkout"))  # type: ignore[return-value]


def test_a_weight_scales_the_growing_deployment_first_and_keeps_the_total() -> None:
    cluster = _cluster(4, 0)
    router = _shell(cluster)
    router.set_weight(30)
    assert _replicas(cluster) == (2, 2)
    assert [r for r in cluster.requests if r.startswith("merge")] == [
        "merge Deployment/checkout", "merge Deployment/checkout-primary"]
    cluster.requests.clear()
    router.set_weight(0)
    assert _replicas(cluster) == (4, 0)
    assert [r for r in cluster.requests if r.startswith("merge")] == [
        "merge Deployment/checkout-primary", "merge Deployment/checkout"]


def test_a_rollouts_first_write_moves_the_targets_pods_to_the_primary_one_for_one() -> None:
    """A 1-replica app stays at 1 pod (it ran 2 when the new primary's default was counted),
    and the total holds at every later weight."""
    cluster = _cluster(1, 1)
    first = _shell(cluster, first_write=True)
    first.set_weight(0)
    assert _replicas(cluster) == (1, 0)
    assert first.verify(0).verified != "No"  # pods still starting: Unknown
    cluster = _cluster(1, 3)
    _shell(cluster, first_write=True).set_weight(0)
    assert _replicas(cluster) == (3, 0)
    later = _shell(cluster)
    later.set_weight(30)
    assert _replicas(cluster) == (2, 1)
    later.set_weight(0)
    assert _replicas(cluster) == (3, 0)


def test_finalize_leaves_the_targets_pods_alone_behind_the_service() -> None:
    cluster = _cluster(4, 0)
    router = _shell(cluster)
    router.set_weight(30)
    cluster.requests.clear()
    router.finalize()
    assert _replicas(cluster) == (0, 2)
    assert [r for r in cluster.requests if r.startswith("merge")] == [
        "merge Deployment/checkout-primary"]


def test_a_configured_total_wins_and_one_pod_cannot_be_split() -> None:
    cluster = _cluster(1, 0)
    _shell(cluster, total=10).set_weight(5)
    assert _replicas(cluster) == (9, 1)
    with pytest.raises(RouterError, match="at least 2 replicas"):
        _shell(_cluster(1, 0)).set_weight(5)


def test_reconcile_needs_both_deployments_and_a_service_selecting_both() -> None:
    _shell(_cluster(1, 0)).reconcile()
    with pytest.raises(RouterError, match="does not select the pods of checkout-primary"):
        _shell(_cluster(1, 0, selector={"app": "checkout"})).reconcile()
    missing = _cluster(1, 0)
    del missing.objects[("Service", "shop", "checkout")]
    with pytest.raises(RouterError, match="Service 'checkout' not found"):
        _shell(missing).reconcile()
    del missing.objects[("Deployment", "shop", "checkout")]
    with pytest.raises(RouterError, match="Deployment 'checkout' not found"):
        _shell(missing).reconcile()
