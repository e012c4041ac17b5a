from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runbook_operator.integrations.routers import Backends, Owner, RouterError, router_for
from runbook_operator.integrations.routers.nginx import (
    CANARY_ANNOTATION,
    LAST_APPLIED,
    WEIGHT_ANNOTATION,
    NginxRouter,
    canary_annotations,
    canary_spec,
    desired_canary_ingress,
    observe,
    primary_missing,
    written_weight,
)
from tests.support.canary_world import spec
from tests.support.fakes import FakeCluster

BACKENDS = Backends("shop", "checkout", 80, "http")
OWNER = Owner("checkout", "shop", "uid-1")


def _backend(name: str) -> dict[str, Any]:
    return {"service": {"name": name, "port": {"number": 80}}}


def _ingress(*services: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    paths = [{"path": f"/{i}", "pathType": "Prefix", "backend": _backend(name)}
             for i, name in enumerate(services or ("checkout-primary",))]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "namespace": "shop", "annotations": annotations or {}},
            "spec": {"ingressClassName": "nginx",
                     "tls": [{"hosts": ["shop.example"], "secretName": "shop-tls"}],
                     "rules": [{"host": "shop.example", "http": {"paths": paths}}]}}


def _canary(weight: int, ingress: dict[str, Any] | None = None) -> dict[str, Any]:
    return desired_canary_ingress(ingress or _ingress(), BACKENDS, OWNER, weight)


def test_the_canary_ingress_is_the_users_with_the_canary_backend_and_annotations() -> None:
    body = _canary(30, _ingress(annotations={"nginx.ingress.kubernetes.io/rewrite-target": "/"}))
    assert body["metadata"] == {
        "name": "web-canary", "namespace": "shop",
        "labels": {"app.kubernetes.io/managed-by": "runbook-operator",
                   "runbook.dev/canaryrollout": "checkout"},
        "annotations": {"nginx.ingress.kubernetes.io/rewrite-target": "/",
                        CANARY_ANNOTATION: "true", WEIGHT_ANNOTATION: "30"},
        "ownerReferences": [OWNER.reference()]}
    assert body["spec"]["rules"][0]["http"]["paths"][0]["backend"] == _backend("checkout-canary")
    assert body["spec"]["tls"] == _ingress()["spec"]["tls"]
    assert body["spec"]["ingressClassName"] == "nginx"


def test_only_the_primary_backends_are_renamed_and_the_users_ingress_is_untouched() -> None:
    user = _ingress("checkout-primary", "static")
    user["spec"]["defaultBackend"] = _backend("checkout-primary")
    before = copy.deepcopy(user)
    spec = canary_spec(user, BACKENDS)
    paths = spec["rules"][0]["http"]["paths"]
    assert [p["backend"]["service"]["name"] for p in paths] == ["checkout-canary", "static"]
    assert spec["defaultBackend"] == _backend("checkout-canary")
    assert user == before


def test_kubectls_record_and_earlier_canary_annotations_are_not_copied() -> None:
    annotations = canary_annotations(_ingress(annotations={
        LAST_APPLIED: "{}", "nginx.ingress.kubernetes.io/canary-by-header": "x-canary",
        "team": "shop"}), 5)
    assert annotations == {"team": "shop", CANARY_ANNOTATION: "true", WEIGHT_ANNOTATION: "5"}


@pytest.mark.parametrize("weight", [-1, 101])
def test_a_weight_outside_0_100_is_refused(weight: int) -> None:
    with pytest.raises(ValueError):
        _canary(weight)


def test_a_user_ingress_that_does_not_name_the_primary_is_explained() -> None:
    assert primary_missing(_ingress("checkout-primary", "static"), BACKENDS) is None
    problem = primary_missing(_ingress("checkout"), BACKENDS)
    assert problem is not None and "'checkout-primary'" in problem and "['checkout']" in problem


@given(st.integers(0, 100))
def test_every_weight_written_reads_back_as_itself(weight: int) -> None:
    assert written_weight(_canary(weight)) == weight
    found = observe(_ingress(), _canary(weight), BACKENDS, weight)
    assert (found.verified, found.weight) == ("Yes", weight)


@pytest.mark.parametrize(("annotations", "reason"), [
    ({WEIGHT_ANNOTATION: "5"}, "not 'true'"),
    ({CANARY_ANNOTATION: "false", WEIGHT_ANNOTATION: "5"}, "not 'true'"),
    ({CANARY_ANNOTATION: "true"}, "not a percentage"),
    ({CANARY_ANNOTATION: "true", WEIGHT_ANNOTATION: "five"}, "not a percentage"),
    ({CANARY_ANNOTATION: "true", WEIGHT_ANNOTATION: "101"}, "not a percentage"),
])
def test_annotations_that_carry_no_weight_are_no(annotations: dict[str, str],
                                                 reason: str) -> None:
    canary = _canary(5)
    canary["metadata"]["annotations"] = annotations
    found = observe(_ingress(), canary, BACKENDS, 5)
    assert found.verified == "No" and reason in found.message


def test_another_weight_a_missing_object_or_a_stale_copy_is_no() -> None:
    assert observe(_ingress(), _canary(5), BACKENDS, 30).weight == 5
    assert observe(_ingress(), _canary(5), BACKENDS, 30).verified == "No"
    assert observe(None, _canary(5), BACKENDS, 5).verified == "No"
    assert observe(_ingress(), None, BACKENDS, 5).verified == "No"
    changed = _ingress()
    changed["spec"]["rules"][0]["host"] = "shop2.example"
    stale = observe(changed, _canary(5), BACKENDS, 5)
    assert stale.verified == "No" and "mirror" in stale.message


def test_the_factory_builds_it_from_the_spec() -> None:
    router = router_for(spec(router={"nginx": {"ingress": "web"}}), BACKENDS, OWNER,
                        None)  # type: ignore[arg-type]
    assert isinstance(router, NginxRouter) and router.ingress == "web"


def _shell(*bodies: dict[str, Any]) -> tuple[NginxRouter, FakeCluster]:
    cluster = FakeCluster(*bodies)
    kube: Any = cluster
    return NginxRouter(kube, BACKENDS, OWNER, "web"), cluster


def _copy_of(cluster: FakeCluster) -> dict[str, Any] | None:
    return cluster.get("networking.k8s.io/v1", "Ingress", "web-canary", "shop")


def test_reconcile_creates_the_copy_at_0_and_then_keeps_its_weight() -> None:
    router, cluster = _shell(_ingress())
    router.reconcile()
    assert written_weight(_copy_of(cluster)) == 0
    router.set_weight(30)
    router.reconcile()
    assert router.verify(30).verified == "Yes"


def test_the_users_ingress_is_only_read() -> None:
    router, cluster = _shell(_ingress())
    router.reconcile()
    router.set_weight(5)
    assert [r for r in cluster.requests if not r.startswith("get")] == [
        "apply Ingress/web-canary", "apply Ingress/web-canary"]


def test_an_ingress_without_the_primary_or_none_at_all_stops_the_router() -> None:
    router, _ = _shell(_ingress("checkout"))
    with pytest.raises(RouterError, match="no backend 'checkout-primary'"):
        router.set_weight(5)
    with pytest.raises(RouterError, match="Ingress 'web' not found"):
        _shell()[0].reconcile()
