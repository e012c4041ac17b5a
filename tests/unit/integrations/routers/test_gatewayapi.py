from __future__ import annotations

import copy
from typing import Any

import pytest

from runbook_operator.integrations.routers import Backends
from runbook_operator.integrations.routers.gatewayapi import (
    answered,
    backend_weights,
    canary_share,
    desired_route,
    observe,
    processed,
)

BACKENDS = Backends("shop", "checkout", 80, "http")


def _route(weights: dict[str, int] | None = None, generation: int = 3,
           observed: int | None = 3, accepted: str = "True", resolved: str = "True",
           parents: int = 1) -> dict[str, Any]:
    refs = [{"group": "", "kind": "Service", "name": name, "port": 80, "weight": weight}
            for name, weight in (weights or {"checkout-primary": 70,
                                              "checkout-canary": 30}).items()]
    conditions = [{"type": "Accepted", "status": accepted, "observedGeneration": observed,
                   "reason": "Accepted"},
                  {"type": "ResolvedRefs", "status": resolved, "observedGeneration": observed,
                   "reason": "BackendNotFound" if resolved != "True" else "ResolvedRefs"}]
    return {"metadata": {"name": "checkout", "generation": generation},
            "spec": {"rules": [{"backendRefs": refs}]},
            "status": {"parents": [{"parentRef": {"name": f"web-{i}"},
                                    "conditions": copy.deepcopy(conditions)}
                                   for i in range(parents)]}}


def test_the_operator_writes_only_the_rules_primary_and_canary_summing_to_100() -> None:
    body = desired_route("checkout", BACKENDS, 30)
    assert body == {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "checkout", "namespace": "shop"},
        "spec": {"rules": [{"backendRefs": [
            {"group": "", "kind": "Service", "name": "checkout-primary", "port": 80,
             "weight": 70},
            {"group": "", "kind": "Service", "name": "checkout-canary", "port": 80,
             "weight": 30}]}]}}


@pytest.mark.parametrize("weight", [0, 1, 50, 99, 100])
def test_weights_never_total_zero(weight: int) -> None:
    primary, canary = backend_weights(weight)
    assert primary + canary == 100 and canary == weight


def test_a_weight_outside_0_100_is_refused() -> None:
    with pytest.raises(ValueError):
        backend_weights(101)


def test_weights_are_relative() -> None:
    assert canary_share(_route({"checkout-primary": 3, "checkout-canary": 1}), BACKENDS) == 25
    assert canary_share(_route({"checkout-primary": 999_999, "checkout-canary": 1}),
                        BACKENDS) == 0
    assert canary_share(_route({"checkout-primary": 0, "checkout-canary": 7}), BACKENDS) == 100


def test_a_total_of_zero_is_no_share_at_all() -> None:
    found = canary_share(_route({"checkout-primary": 0, "checkout-canary": 0}), BACKENDS)
    assert isinstance(found, str) and "weight 0" in found
    assert observe(_route({"checkout-primary": 0, "checkout-canary": 0}), BACKENDS,
                   0).verified == "No"


def test_a_missing_weight_counts_as_1() -> None:
    route = _route()
    for ref in route["spec"]["rules"][0]["backendRefs"]:
        del ref["weight"]
    assert canary_share(route, BACKENDS) == 50


@pytest.mark.parametrize("route", [
    {"metadata": {"generation": 1}, "spec": {"rules": [{"matches": []}]}},  # the CRD default
    _route({"checkout-v1": 80, "checkout-v2": 20}),  # someone else's backends
    _route({"checkout-primary": 100}),
])
def test_rules_that_are_not_the_operators_are_no_split(route: dict[str, Any]) -> None:
    assert observe(route, BACKENDS, 0).verified == "No"


def test_yes_needs_the_weight_and_every_parent_processing_this_generation() -> None:
    assert observe(_route(), BACKENDS, 30).verified == "Yes"
    assert observe(_route(), BACKENDS, 31).verified == "No"
    assert observe(_route(observed=2), BACKENDS, 30).verified == "Unknown"
    assert observe(_route(parents=0), BACKENDS, 30).verified == "Unknown"
    refused = observe(_route(resolved="False"), BACKENDS, 30)
    assert (refused.verified, refused.weight) == ("No", 30)
    assert "ResolvedRefs is False (BackendNotFound" in refused.message
    assert observe(None, BACKENDS, 0).verified == "No"


def test_one_parent_behind_is_cannot_tell() -> None:
    route = _route(parents=2)
    route["status"]["parents"][1]["conditions"][0]["observedGeneration"] = 2
    done, message = processed(route)
    assert done is None and "web-1" in message


def test_a_route_is_answered_once_every_parent_reported_on_its_generation_either_way() -> None:
    assert answered(_route()) and answered(_route(resolved="False"))
    assert not answered(_route(observed=2)) and not answered(_route(parents=0))
