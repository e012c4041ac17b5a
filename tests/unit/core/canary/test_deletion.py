from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from runbook_operator.core.canary.deletion import GATEWAY_GRACE, LONG_AGO, revert, routed_back
from runbook_operator.core.canary.objects import Workload, desired_services, kept_primary_service
from runbook_operator.integrations.routers import Backends, Owner
from tests.support.canary_world import START, spec

OWNER = Owner("checkout", "shop", "uid-1")
BACKENDS = Backends("shop", "checkout", 80, "http")
SELECTOR = {"app.kubernetes.io/name": "checkout"}
TARGET = {"metadata": {"name": "checkout"},
          "spec": {"selector": {"matchLabels": SELECTOR},
                   "template": {"metadata": {"labels": SELECTOR}}}}
REPLICA_RATIO = {"replicaRatio": {}}


def running(replicas: int, ready: int | None = None) -> Workload:
    ready = replicas if ready is None else ready
    return Workload("r1", replicas, ready, ready == replicas)


def test_a_target_at_zero_is_scaled_to_the_primarys_replicas_first() -> None:
    step = revert(running(0), running(3), None, START)
    assert step.scale_target == 3 and not step.route_back and not step.release


def test_traffic_goes_back_only_once_the_target_is_ready() -> None:
    waiting = revert(running(3, ready=1), running(3), None, START)
    assert (waiting.scale_target, waiting.route_back, waiting.release) == (None, False, False)
    assert "1/3 ready" in waiting.message
    routing = revert(running(3), running(3), None, START)
    assert routing.route_back and not routing.release


def test_the_finalizer_is_released_once_the_gateway_had_time_to_follow() -> None:
    early = revert(running(3), running(3), START, START + GATEWAY_GRACE / 2)
    assert early.route_back and not early.release and "giving the gateway" in early.message
    step = revert(running(3), running(3), START, START + GATEWAY_GRACE)
    assert step.route_back and step.release


def test_without_a_target_or_a_primary_there_is_nothing_to_revert() -> None:
    assert revert(None, running(3), None, START).release
    assert revert(running(2), None, None, START).release


@given(st.integers(0, 20), st.integers(0, 20), st.integers(0, 20),
       st.none() | st.integers(0, 60).map(lambda s: START - timedelta(seconds=s)))
def test_the_target_never_ends_with_fewer_replicas_than_the_primary_had(
        target: int, primary: int, ready: int, since: object) -> None:
    step = revert(running(target, min(ready, target)), running(primary), since, START)  # type: ignore[arg-type]
    wanted = max(target, primary, 1)
    if step.release or step.route_back:
        assert target >= wanted and min(ready, target) >= wanted
    if step.release:
        assert since is not None and START - since >= GATEWAY_GRACE  # type: ignore[operator]
    if step.scale_target is not None:
        assert step.scale_target == wanted > target


def test_the_kept_primary_service_selects_the_targets_pods_and_has_no_owner() -> None:
    kept = kept_primary_service(spec(), TARGET, BACKENDS, OWNER, START)
    generated = desired_services(spec(), TARGET, BACKENDS, OWNER)[0]
    assert kept["metadata"]["annotations"] == {"runbook.dev/kept-since": START.isoformat()}
    assert kept["metadata"]["name"] == generated["metadata"]["name"] == "checkout-primary"
    assert kept["spec"]["selector"] == SELECTOR != generated["spec"]["selector"]
    assert kept["spec"]["ports"] == generated["spec"]["ports"]
    assert "ownerReferences" not in kept["metadata"]


def test_traffic_is_back_when_the_primary_service_is_kept_on_the_targets_pods() -> None:
    generated = desired_services(spec(), TARGET, BACKENDS, OWNER)[0]
    kept = kept_primary_service(spec(), TARGET, BACKENDS, OWNER, START)
    assert routed_back(spec(), TARGET, None, None, OWNER.uid) is None
    assert routed_back(spec(), TARGET, None, generated, OWNER.uid) is None
    still_owned = {**kept, "metadata": {**kept["metadata"],
                                        "ownerReferences": [OWNER.reference()]}}
    assert routed_back(spec(), TARGET, None, still_owned, OWNER.uid) is None
    assert routed_back(spec(), TARGET, None, kept, OWNER.uid) == START


def test_with_the_replica_ratio_router_traffic_is_back_when_the_primary_is_at_zero() -> None:
    chosen = spec(router=REPLICA_RATIO)
    assert routed_back(chosen, TARGET, {"spec": {"replicas": 2}}, None, OWNER.uid) is None
    assert routed_back(chosen, TARGET, {"spec": {"replicas": 0}}, None, OWNER.uid) == LONG_AGO
    assert routed_back(chosen, TARGET, None, None, OWNER.uid) == LONG_AGO
