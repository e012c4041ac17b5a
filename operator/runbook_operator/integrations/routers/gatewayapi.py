"""The Gateway API router: the weights of an HTTPRoute's backends.

The user's HTTPRoute declares where traffic comes from (parentRefs, hostnames); the operator
writes its `rules`: one rule whose backendRefs are the primary and canary Services, weighted
`100 - w` and `w`. `rules` is an atomic list in the Gateway API CRDs (so is backendRefs):
whoever writes one weight owns every rule, which is why the user's manifest leaves rules out
and GitOps tools see no diff. Weights are relative (0..1,000,000, at most 16 backends); the
operator always writes two that sum to 100, and reads any split back as the canary's share
of the total — a total of 0, which the Gateway API answers with errors for every request, is
"No", never a share. Read back means the spec holds the weights *and* every parent Gateway's
controller reports `Accepted` and `ResolvedRefs` True for the route's current generation;
until every controller has processed that generation the answer is "Unknown".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runbook_operator.integrations.kubernetes import Kube
from runbook_operator.integrations.routers import Backends, Owner, RouterError, Verification

API_VERSION = "gateway.networking.k8s.io/v1"
KIND = "HTTPRoute"
#: Backends a rule may list (the CRD's maxItems).
MAX_BACKENDS = 16
#: Conditions every parent must report True for the current generation.
REQUIRED_CONDITIONS = ("Accepted", "ResolvedRefs")


def backend_weights(weight: int) -> tuple[int, int]:
    """(primary, canary) relative weights for a canary percentage."""
    if not 0 <= weight <= 100:
        raise ValueError(f"a weight is a percentage, not {weight}")
    return 100 - weight, weight


def desired_rules(backends: Backends, weight: int) -> list[dict[str, Any]]:
    """The route's rules: every request to the primary and canary Services by weight."""
    primary, canary = backend_weights(weight)
    return [{"backendRefs": [
        {"group": "", "kind": "Service", "name": backends.primary, "port": backends.port,
         "weight": primary},
        {"group": "", "kind": "Service", "name": backends.canary, "port": backends.port,
         "weight": canary},
    ]}]


def desired_route(route: str, backends: Backends, weight: int) -> dict[str, Any]:
    """The server-side apply body: only the fields the operator owns."""
    return {"apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"name": route, "namespace": backends.namespace},
            "spec": {"rules": desired_rules(backends, weight)}}


def _service_weights(route: dict[str, Any], backends: Backends) -> dict[str, int] | str:
    """Weight per backend Service of the route's rules, or why they are not the operator's
    two backends."""
    rules = (route.get("spec") or {}).get("rules") or []
    if len(rules) != 1:
        return f"the route has {len(rules)} rules, not the operator's one"
    refs = rules[0].get("backendRefs") or []
    if len(refs) > MAX_BACKENDS:
        return f"{len(refs)} backends, more than the Gateway API's {MAX_BACKENDS}"
    weights: dict[str, int] = {}
    for ref in refs:
        if ref.get("kind", "Service") != "Service" or ref.get("group", "") != "":
            return f"backend {ref.get('name')!r} is a {ref.get('kind')}, not a Service"
        if ref.get("port") != backends.port:
            return f"backend {ref.get('name')!r} on port {ref.get('port')}, not {backends.port}"
        weights[ref["name"]] = weights.get(ref["name"], 0) + int(ref.get("weight", 1))
    if set(weights) != {backends.primary, backends.canary}:
        return f"backends {sorted(weights)}, not {backends.primary} and {backends.canary}"
    return weights


def canary_share(route: dict[str, Any], backends: Backends) -> int | str:
    """The canary's percentage of the route's traffic (rounded), or why there is none."""
    weights = _service_weights(route, backends)
    if isinstance(weights, str):
        return weights
    total = sum(weights.values())
    if total == 0:
        return "every backend has weight 0: the gateway answers every request with an error"
    return round(100 * weights[backends.canary] / total)


def processed(route: Mapping[str, Any]) -> tuple[bool | None, str]:
    """Whether every parent's controller accepted the route's current generation and
    resolved its backends: True, False (one refused), or None (not processed yet)."""
    generation = route["metadata"].get("generation")
    parents = (route.get("status") or {}).get("parents") or []
    if not parents:
        return None, "no Gateway controller has reported on the route yet"
    for parent in parents:
        name = (parent.get("parentRef") or {}).get("name", "?")
        conditions = {c.get("type"): c for c in parent.get("conditions") or []}
        for type_ in REQUIRED_CONDITIONS:
            condition = conditions.get(type_)
            if condition is None or condition.get("observedGeneration") != generation:
                return None, f"Gateway {name!r} has not reported {type_} for generation " \
                             f"{generation} yet"
            if condition.get("status") != "True":
                return False, (f"Gateway {name!r}: {type_} is {condition.get('status')} "
                               f"({condition.get('reason')}: {condition.get('message', '')})")
    return True, "accepted and resolved by every parent Gateway"


def answered(route: Mapping[str, Any]) -> bool:
    """Whether every parent Gateway has reported on the route's current generation (accepted
    or refused): a rollout waiting to read its weight back can read it now."""
    return processed(route)[0] is not None


def observe(route: dict[str, Any] | None, backends: Backends, weight: int) -> Verification:
    """Is the canary's `weight` in effect on `route` (as read)? Yes, No or Unknown."""
    if route is None:
        return Verification("No", None, "the HTTPRoute does not exist")
    share = canary_share(route, backends)
    if isinstance(share, str):
        return Verification("No", None, share)
    if share != weight:
        return Verification("No", share, f"the route sends {share}% to the canary")
    done, message = processed(route)
    if done is None:
        return Verification("Unknown", share, message)
    return Verification("Yes" if done else "No", share, message)


class GatewayAPIRouter:
    """The `Router` of an HTTPRoute the user owns (its rules are the operator's)."""

    def __init__(self, kube: Kube, backends: Backends, owner: Owner, route: str) -> None:
        self.kube = kube
        self.backends = backends
        self.owner = owner
        self.route = route

    def _read(self) -> dict[str, Any] | None:
        return self.kube.get(API_VERSION, KIND, self.route, self.backends.namespace)

    def reconcile(self) -> None:
        """The route is the user's: it must exist (its rules are written by set_weight)."""
        if self._read() is None:
            raise RouterError(
                f"HTTPRoute {self.route!r} not found: create it with its parentRefs and "
                "hostnames, and without rules (the operator writes them)")

    def set_weight(self, weight: int) -> None:
        self.kube.apply(desired_route(self.route, self.backends, weight))

    def verify(self, weight: int) -> Verification:
        return observe(self._read(), self.backends, weight)

    def finalize(self) -> None:
        if self._read() is not None:
            self.set_weight(0)
