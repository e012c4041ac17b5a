"""The Istio router: the weights of a VirtualService's http route.

The user's VirtualService declares where traffic comes from (`hosts`, `gateways`); the
operator writes its `http`: one route, named by the spec (default: the Service's base name),
whose destinations are the primary and canary Services' hosts on the Services' port, weighted
`100 - w` and `w`. `http` is an atomic list in Istio's CRD (istio.io/api's
kubernetes/customresourcedefinitions.gen.yaml): whoever writes one weight owns every route,
which is why the user's manifest leaves `http` out and GitOps tools see no diff — the same
rule as the Gateway API router's `rules`. Istio requires weights that sum to 100; the
operator always writes two that do, and reads any split back as the canary's share of the
total (a total of 0 is "No"). Finalize writes the primary alone.

Verification is by read-back of the spec: Istio reports no per-generation status for a
VirtualService unless its optional status analysis is on, and the devcluster runs no Istio.
"""

from __future__ import annotations

from typing import Any

from runbook_operator.integrations.kubernetes import Kube
from runbook_operator.integrations.routers import Backends, RouterError, Verification
from runbook_operator.integrations.routers.gatewayapi import backend_weights

API_VERSION = "networking.istio.io/v1"
KIND = "VirtualService"


def _destination(host: str, backends: Backends, weight: int) -> dict[str, Any]:
    return {"destination": {"host": host, "port": {"number": backends.port}}, "weight": weight}


def desired_http(backends: Backends, route: str, weight: int | None) -> list[dict[str, Any]]:
    """The http routes: primary and canary by weight, or (None) the primary alone."""
    if weight is None:
        return [{"name": route, "route": [_destination(backends.primary, backends, 100)]}]
    primary, canary = backend_weights(weight)
    return [{"name": route, "route": [_destination(backends.primary, backends, primary),
                                      _destination(backends.canary, backends, canary)]}]


def desired_virtual_service(name: str, backends: Backends, route: str,
                            weight: int | None) -> dict[str, Any]:
    """The server-side apply body: only the fields the operator owns."""
    return {"apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"name": name, "namespace": backends.namespace},
            "spec": {"http": desired_http(backends, route, weight)}}


def _host_weights(service: dict[str, Any], backends: Backends,
                  route: str) -> dict[str, int] | str:
    """Weight per destination host of the operator's route, or why there is none."""
    routes = (service.get("spec") or {}).get("http") or []
    if len(routes) != 1 or routes[0].get("name") != route:
        return f"the VirtualService's http routes {[r.get('name') for r in routes]} are not " \
               f"the operator's one {route!r}"
    weights: dict[str, int] = {}
    for entry in routes[0].get("route") or []:
        destination = entry.get("destination") or {}
        host = destination.get("host")
        if (destination.get("port") or {}).get("number") != backends.port:
            return f"destination {host!r} is not on port {backends.port}"
        weights[host] = weights.get(host, 0) + int(entry.get("weight", 0))
    if set(weights) != {backends.primary, backends.canary}:
        return f"destinations {sorted(weights)}, not {backends.primary} and {backends.canary}"
    return weights


def canary_share(service: dict[str, Any], backends: Backends, route: str) -> int | str:
    """The canary's percentage of the route's traffic (rounded), or why there is none."""
    weights = _host_weights(service, backends, route)
    if isinstance(weights, str):
        return weights
    total = sum(weights.values())
    if total == 0:
        return "every destination has weight 0"
    return round(100 * weights[backends.canary] / total)


def observe(service: dict[str, Any] | None, backends: Backends, route: str,
            weight: int) -> Verification:
    """Is the canary's `weight` in the VirtualService (as read)? Yes or No."""
    if service is None:
        return Verification("No", None, "the VirtualService does not exist")
    share = canary_share(service, backends, route)
    if isinstance(share, str):
        return Verification("No", None, share)
    if share != weight:
        return Verification("No", share, f"the VirtualService sends {share}% to the canary")
    return Verification("Yes", share, "weights read back from the VirtualService")


class IstioRouter:
    """The `Router` of a VirtualService the user owns (its http routes are the operator's)."""

    def __init__(self, kube: Kube, backends: Backends, virtual_service: str,
                 route: str | None) -> None:
        self.kube = kube
        self.backends = backends
        self.virtual_service = virtual_service
        self.route = route or backends.service

    def _read(self) -> dict[str, Any] | None:
        return self.kube.get(API_VERSION, KIND, self.virtual_service, self.backends.namespace)

    def reconcile(self) -> None:
        """The VirtualService is the user's: it must exist (set_weight writes its http)."""
        if self._read() is None:
            raise RouterError(
                f"VirtualService {self.virtual_service!r} not found: create it with its hosts "
                "and gateways, and without http (the operator writes it)")

    def set_weight(self, weight: int) -> None:
        self.kube.apply(desired_virtual_service(self.virtual_service, self.backends,
                                                self.route, weight))

    def verify(self, weight: int) -> Verification:
        return observe(self._read(), self.backends, self.route, weight)

    def finalize(self) -> None:
        if self._read() is not None:
            self.kube.apply(desired_virtual_service(self.virtual_service, self.backends,
                                                    self.route, None))
