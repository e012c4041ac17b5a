from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runbook_operator.integrations.routers import Backends, Owner, RouterError, router_for
from runbook_operator.integrations.routers.istio import (
    IstioRouter,
    canary_share,
    desired_virtual_service,
    observe,
)
from tests.support.canary_world import spec
from tests.support.fakes import FakeCluster

BACKENDS = Backends("shop", "checkout", 80, "http")
OWNER = Owner("checkout", "shop", "uid-1")


def _service(weights: dict[str, int], name: str = "checkout", port: int = 80
             ) -> dict[str, Any]:
    route = [{"destination": {"host": host, "port": {"number": port}}, "weight": weight}
             for host, weight in weights.items()]
    return {"metadata": {"name": "web"}, "spec": {"hosts": ["shop.example"],
                                                  "http": [{"name": name, "route": route}]}}


def test_the_operator_writes_only_http_primary_and_canary_on_the_services_port() -> None:
    assert desired_virtual_service("web", BACKENDS, "checkout", 30) == {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"http": [{"name": "checkout", "route": [
            {"destination": {"host": "checkout-primary", "port": {"number": 80}}, "weight": 70},
            {"destination": {"host": "checkout-canary", "port": {"number": 80}}, "weight": 30},
        ]}]}}


def test_finalize_writes_the_primary_alone() -> None:
    body = desired_virtual_service("web", BACKENDS, "checkout", None)
    assert body["spec"]["http"] == [{"name": "checkout", "route": [
        {"destination": {"host": "checkout-primary", "port": {"number": 80}}, "weight": 100}]}]


@given(st.integers(0, 100))
def test_weights_sum_to_100_and_read_back_as_written(weight: int) -> None:
    body = desired_virtual_service("web", BACKENDS, "checkout", weight)
    route = body["spec"]["http"][0]["route"]
    assert sum(d["weight"] for d in route) == 100
    found = observe(body, BACKENDS, "checkout", weight)
    assert (found.verified, found.weight) == ("Yes", weight)


def test_weights_are_read_as_shares_of_the_total() -> None:
    assert canary_share(_service({"checkout-primary": 3, "checkout-canary": 1}), BACKENDS,
                        "checkout") == 25
    zero = canary_share(_service({"checkout-primary": 0, "checkout-canary": 0}), BACKENDS,
                        "checkout")
    assert isinstance(zero, str) and "weight 0" in zero


@pytest.mark.parametrize(("service", "reason"), [
    (_service({"checkout-primary": 100}), "and checkout-canary"),
    (_service({"checkout-primary": 70, "checkout-canary": 30}, name="other"), "'checkout'"),
    (_service({"checkout-primary": 70, "checkout-canary": 30}, port=8080), "port 80"),
    ({"metadata": {"name": "web"}, "spec": {"hosts": ["shop.example"]}}, "[]"),
])
def test_routes_that_are_not_the_operators_are_no(service: dict[str, Any], reason: str) -> None:
    found = observe(service, BACKENDS, "checkout", 30)
    assert found.verified == "No" and reason in found.message


def test_another_weight_or_no_virtual_service_is_no() -> None:
    found = observe(_service({"checkout-primary": 95, "checkout-canary": 5}), BACKENDS,
                    "checkout", 30)
    assert (found.verified, found.weight) == ("No", 5)
    assert observe(None, BACKENDS, "checkout", 0).verified == "No"


def test_the_factory_builds_it_from_the_spec_the_route_named_after_the_service() -> None:
    chosen = spec(router={"istio": {"virtualService": "web"}})
    router = router_for(chosen, BACKENDS, OWNER, None)  # type: ignore[arg-type]
    assert isinstance(router, IstioRouter)
    assert (router.virtual_service, router.route) == ("web", "checkout")
    named = spec(router={"istio": {"virtualService": "web", "route": "main"}})
    assert router_for(named, BACKENDS, OWNER, None).route == "main"  # type: ignore[arg-type]


def test_the_shell_needs_the_users_virtual_service_and_finalizes_to_the_primary() -> None:
    users = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
             "metadata": {"name": "web", "namespace": "shop"}, "spec": {"hosts": ["shop"]}}
    cluster = FakeCluster(users)
    kube: Any = cluster
    router = router_for(spec(router={"istio": {"virtualService": "web"}}), BACKENDS, OWNER,
                        kube)
    router.reconcile()
    router.set_weight(5)
    assert router.verify(5).verified == "Yes"
    router.finalize()
    assert router.verify(0).verified == "No"
    assert cluster.get("networking.istio.io/v1", "VirtualService", "web", "shop")["spec"][
        "http"] == desired_virtual_service("web", BACKENDS, "checkout", None)["spec"]["http"]
    empty: Any = FakeCluster()
    missing = router_for(spec(router={"istio": {"virtualService": "web"}}), BACKENDS, OWNER,
                         empty)
    with pytest.raises(RouterError, match="VirtualService 'web' not found"):
        missing.reconcile()
