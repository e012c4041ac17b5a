"""Traffic routers: how a CanaryRollout's split between primary and canary reaches the data
plane, one module per router behind the small `Router` protocol (Flagger's four methods).

The protocol is the whole contract between the CanaryRollout controller and a router.
`reconcile` makes sure what the router needs exists (the user's route; a canary Ingress it
creates) without moving traffic; `set_weight` writes a split;
`verify` reads it back and answers yes, no or cannot tell (Argo Rollouts' VerifyWeight: an
object not yet processed by its data plane is "cannot tell", never a guess); `finalize`
sends traffic back to what outlives a deleted CanaryRollout (`core.canary.deletion`). The
controller writes, then verifies after every write and writes again until
the answer is yes, so a router never needs to retry itself. Every write is a server-side
apply under the operator's field manager of only the fields it owns, so a GitOps tool
applying the user's objects sees no diff. Each module keeps its pure `desired_*` functions
(objects from backends and a weight) apart from the I/O that applies them, so they are
unit-tested without a cluster; `router_for` is the factory, a switch on the spec's router.
Calls block (the Kubernetes client): the controller runs them in worker threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from runbook_operator.api.canaryrollout import (
    CANARY_SUFFIX,
    PRIMARY_SUFFIX,
    CanaryRolloutSpec,
    Verified,
)
from runbook_operator.api.common import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from runbook_operator.integrations.kubernetes import Kube

#: The label naming the CanaryRollout an object was generated for.
ROLLOUT_LABEL = "runbook.dev/canaryrollout"


class RouterError(RuntimeError):
    """The router cannot do its work until something outside the operator changes (the
    route does not exist, a CRD is missing): the reason is shown as a Stalled condition."""


@dataclass(frozen=True)
class Owner:
    """The CanaryRollout whose traffic a router splits: objects it creates are owned by it."""

    name: str
    namespace: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {"apiVersion": "runbook.dev/v1alpha1", "kind": "CanaryRollout",
                "name": self.name, "uid": self.uid, "controller": True,
                "blockOwnerDeletion": True}

    def labels(self) -> dict[str, str]:
        return {MANAGED_BY_LABEL: MANAGED_BY_VALUE, ROLLOUT_LABEL: self.name}


@dataclass(frozen=True)
class Backends:
    """The two Services traffic is split between, and the port they serve."""

    namespace: str
    service: str
    """The base name: the Services are `<service>-primary` and `<service>-canary`."""
    port: int
    port_name: str

    @property
    def primary(self) -> str:
        return f"{self.service}{PRIMARY_SUFFIX}"

    @property
    def canary(self) -> str:
        return f"{self.service}{CANARY_SUFFIX}"


@dataclass(frozen=True)
class Verification:
    """A router's answer to "is the canary's weight `weight` in effect?"."""

    verified: Verified
    """Yes, No, or Unknown when it cannot tell (yet)."""
    weight: int | None
    """The canary weight the router reports, None when it cannot read one."""
    message: str = ""


class Router(Protocol):
    """What every traffic router does (see the module docstring)."""

    def reconcile(self) -> None:
        """Make what the router needs exist, without moving traffic; raises RouterError
        when it cannot (called before every write)."""

    def set_weight(self, weight: int) -> None:
        """Send `weight` percent of traffic to the canary and the rest to the primary."""

    def verify(self, weight: int) -> Verification:
        """Read the split back: Yes when `weight` is in effect, No when something else is,
        Unknown when the router cannot tell yet."""

    def finalize(self) -> None:
        """Traffic back to what outlives the CanaryRollout, which is being deleted (the
        controller scaled the target up and keeps `<service>-primary`, now selecting the
        target's pods): the route's traffic all to that Service and what the router added
        removed; with replica ratio, the primary at zero."""


def router_for(spec: CanaryRolloutSpec, backends: Backends, owner: Owner, kube: Kube,
               first_write: bool = False) -> Router:
    """The router the spec chooses; `first_write`: the rollout has recorded no weight yet."""
    kind = spec.router.kind()
    if kind == "gatewayAPI":
        from runbook_operator.integrations.routers.gatewayapi import GatewayAPIRouter

        assert spec.router.gateway_api is not None
        return GatewayAPIRouter(kube, backends, owner, spec.router.gateway_api.http_route)
    if kind == "nginx":
        from runbook_operator.integrations.routers.nginx import NginxRouter

        assert spec.router.nginx is not None
        return NginxRouter(kube, backends, owner, spec.router.nginx.ingress)
    if kind == "replicaRatio":
        from runbook_operator.integrations.routers.replica_ratio import ReplicaRatioRouter

        assert spec.router.replica_ratio is not None
        target = spec.target_ref.name
        return ReplicaRatioRouter(kube, backends, f"{target}{PRIMARY_SUFFIX}", target,
                                  spec.router.replica_ratio.total_replicas, first_write)
    from runbook_operator.integrations.routers.istio import IstioRouter

    assert spec.router.istio is not None
    return IstioRouter(kube, backends, spec.router.istio.virtual_service,
                       spec.router.istio.route)
