from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runbook_operator.core.canary.objects import (
    REVISION_ANNOTATION,
    Autoscaler,
    TargetUnusable,
    desired_autoscaler,
    desired_primary,
    desired_services,
    primary_floor,
    revision,
    stopping_pods,
    workload,
)
from runbook_operator.integrations.routers import Backends, Owner
from tests.support.canary_world import spec

OWNER = Owner("checkout", "shop", "uid-1")
BACKENDS = Backends("shop", "checkout", 80, "http")
SELECTOR = {"app.kubernetes.io/name": "checkout"}


def target(**spec_fields: object) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "checkout", "namespace": "shop", "generation": 3,
                         "labels": {"team": "shop"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": dict(SELECTOR)},
                     "template": {"metadata": {"labels": {**SELECTOR, "version": "v2"}},
                                  "spec": {"containers": [{"name": "c", "image": "i:2"}]}},
                     **spec_fields},
            "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2,
                       "readyReplicas": 2, "availableReplicas": 2}}


def test_the_primary_runs_the_targets_template_under_its_own_labels_without_replicas() -> None:
    body = desired_primary(spec(), target(minReadySeconds=5), OWNER, "shop")
    assert body["metadata"]["name"] == "checkout-primary"
    assert "replicas" not in body["spec"]
    assert body["spec"]["minReadySeconds"] == 5
    assert body["spec"]["selector"] == {"matchLabels": {
        "app.kubernetes.io/name": "checkout-primary"}}
    labels = body["spec"]["template"]["metadata"]["labels"]
    assert labels == {"app.kubernetes.io/name": "checkout-primary", "version": "v2"}
    assert body["metadata"]["annotations"][REVISION_ANNOTATION] == revision(
        target()["spec"]["template"])
    assert body["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert body["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "runbook-operator"


def test_the_services_select_primary_and_canary_pods_apart() -> None:
    primary, canary = desired_services(spec(service={"port": 80, "targetPort": "http"}),
                                       target(), BACKENDS, OWNER)
    assert primary["metadata"]["name"] == "checkout-primary"
    assert primary["spec"]["selector"] == {"app.kubernetes.io/name": "checkout-primary"}
    assert canary["metadata"]["name"] == "checkout-canary"
    assert canary["spec"]["selector"] == SELECTOR
    assert canary["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http",
                                        "protocol": "TCP"}]


def test_a_target_the_primary_cannot_copy_is_refused_with_the_reason() -> None:
    expressions = target()
    expressions["spec"]["selector"] = {"matchExpressions": [
        {"key": "a", "operator": "Exists"}]}
    with pytest.raises(TargetUnusable, match="matchLabels"):
        desired_primary(spec(), expressions, OWNER, "shop")
    long_label = target()
    long_label["spec"]["selector"]["matchLabels"] = {"app": "x" * 60}
    with pytest.raises(TargetUnusable, match="too long"):
        desired_primary(spec(), long_label, OWNER, "shop")


def test_a_deployment_is_rolled_out_only_when_its_controller_caught_up() -> None:
    assert workload(target()) is not None
    done = workload(target())
    assert done is not None and done.rolled_out and done.ready == 2
    behind = target()
    behind["status"]["observedGeneration"] = 2
    lagging = workload(behind)
    assert lagging is not None and not lagging.rolled_out and lagging.ready == 0
    rolling = target()
    rolling["status"]["updatedReplicas"] = 1
    half = workload(rolling)
    assert half is not None and not half.rolled_out and half.ready == 1
    assert workload(None) is None
    draining = workload(target(), stopping=1)
    assert draining is not None and not draining.rolled_out and draining.stopping == 1


def test_a_pod_is_stopping_until_the_end_of_its_grace_period() -> None:
    def pod(deleted_until: str | None) -> dict:
        return {"metadata": {"name": "p", **({"deletionTimestamp": deleted_until}
                                             if deleted_until else {})}}

    now = datetime(2026, 12, 2, 10, 0, 0, tzinfo=UTC)
    pods = [pod(None), pod("2026-12-02T10:00:03Z"), pod("2026-12-02T09:59:59Z")]
    assert stopping_pods(pods, now) == 1  # running; draining 3 s more; killed, object left
    assert stopping_pods(pods, now + timedelta(seconds=3)) == 0
    assert stopping_pods([], now) == 0


def test_the_primary_autoscaler_is_the_targets_aimed_at_the_primary_its_minimum_raised() -> None:
    hpa = {"metadata": {"name": "checkout"}, "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout"},
        "minReplicas": 1, "maxReplicas": 4}}
    body = desired_autoscaler(spec(), hpa, OWNER, "shop", None)
    assert body["metadata"]["name"] == "checkout-primary"
    assert body["spec"]["scaleTargetRef"]["name"] == "checkout-primary"
    assert body["spec"]["minReplicas"] == 1
    assert desired_autoscaler(spec(), hpa, OWNER, "shop", 3)["spec"]["minReplicas"] == 3
    assert desired_autoscaler(spec(), hpa, OWNER, "shop", 9)["spec"]["minReplicas"] == 4


@given(primary=st.integers(0, 50), canary=st.integers(0, 50),
       bounds=st.none() | st.tuples(st.integers(1, 20), st.integers(1, 40)))
def test_the_primary_floor_carries_what_both_served_within_the_bounds(
        primary: int, canary: int, bounds: tuple[int, int] | None) -> None:
    scaler = None if bounds is None else Autoscaler(min(bounds), max(bounds))
    floor = primary_floor(primary, canary, scaler)
    assert floor >= 1
    if scaler is None:
        assert floor >= max(primary, canary)
    else:
        assert scaler.min_replicas <= floor <= max(scaler.max_replicas, 1)
        assert floor >= min(primary + canary, scaler.max_replicas)
