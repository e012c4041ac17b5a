"""Deleting a CanaryRollout: Flagger's revertOnDeletion, always on.

The generated objects (`<target>-primary`, the Services, the primary's autoscaler, the
NGINX router's canary Ingress) go with the CanaryRollout through the garbage collector, while
the target sits at zero replicas between rollouts and the user's route points at
`<service>-primary`: left alone, a deletion would make the app unreachable. A finalizer holds
the deletion until the app runs on what outlives it:

1. the target is scaled up to the primary's replicas (the more of the two), and its pods
   become ready;
2. traffic goes back: `<service>-primary` is kept — its selector the target's, its owner
   reference dropped — and the router is finalized (all of the route's traffic to that
   Service; the NGINX copy deleted, so the user's Ingress, which names it, carries it all),
   or, with the replica-ratio router, the primary is scaled to zero so that the user's one
   Service carries the target's pods alone;
3. `GATEWAY_GRACE` after that (the gateway follows the Service's new endpoints a moment
   later: Traefik took up to about 5 s on a busy 2-core machine), the finalizer is removed
   and the collector takes the rest, the primary's pods with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from runbook_operator.api.canaryrollout import CanaryRolloutSpec
from runbook_operator.core.canary.objects import (
    KEPT_ANNOTATION,
    Workload,
    replicas_by_router,
    selector,
)

FINALIZER = "runbook.dev/revert-on-deletion"
GATEWAY_GRACE = timedelta(seconds=10)
#: With replica ratio no route goes through the primary's Service: nothing to wait for.
LONG_AGO = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Revert:
    """What a deleted CanaryRollout's next tick does."""

    message: str
    scale_target: int | None = None
    """Scale the target up to this many replicas."""
    route_back: bool = False
    """Keep `<service>-primary` on the target's pods and finalize the router (idempotent)."""
    release: bool = False
    """Remove the finalizer: the garbage collector takes the generated objects."""


def routed_back(spec: CanaryRolloutSpec, target: dict[str, Any],
                primary: dict[str, Any] | None, primary_service: dict[str, Any] | None,
                owner_uid: str) -> datetime | None:
    """Since when traffic goes to what outlives the CanaryRollout — `<service>-primary`
    selecting the target's pods, not owned by the CanaryRollout (so the collector leaves
    it); with replica ratio the primary at zero (`LONG_AGO`) — or None."""
    if replicas_by_router(spec):
        replicas = None if primary is None else (primary.get("spec") or {}).get("replicas", 1)
        return LONG_AGO if replicas in (None, 0) else None
    if primary_service is None:
        return None
    meta = primary_service["metadata"]
    owned = any(o.get("uid") == owner_uid for o in meta.get("ownerReferences") or [])
    since = (meta.get("annotations") or {}).get(KEPT_ANNOTATION)
    if owned or since is None or (primary_service.get("spec") or {}).get(
            "selector") != selector(target):
        return None
    try:
        return datetime.fromisoformat(since)
    except ValueError:
        return None


def revert(target: Workload | None, primary: Workload | None, back_since: datetime | None,
           now: datetime) -> Revert:
    """The next step of a deletion (see the module docstring); `back_since`: `routed_back`."""
    if target is None:
        return Revert("the target is gone: nothing to revert", release=True)
    if primary is None:
        return Revert("no primary was made: the target is as it was", release=True)
    wanted = max(primary.replicas, target.replicas, 1)
    if target.replicas < wanted:
        return Revert(f"scaling the target to the primary's {wanted} replicas",
                      scale_target=wanted)
    if not (target.rolled_out and target.ready >= wanted):
        return Revert(f"waiting for the target's pods: {target.ready}/{wanted} ready")
    if back_since is None:
        return Revert("routing traffic back to the target's pods", route_back=True)
    if now - back_since < GATEWAY_GRACE:
        return Revert("traffic goes to the target's pods: giving the gateway "
                      f"{GATEWAY_GRACE.total_seconds():.0f}s to follow", route_back=True)
    return Revert(f"the target serves with {target.ready} replicas: releasing the generated "
                  "objects", route_back=True, release=True)
