"""A deleted CanaryRollout's ticks: the finalizer held on every live one, and the revert
(`core.canary.deletion`) made so before it is released. Blocking: worker threads."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from runbook_operator.api.canaryrollout import CanaryRolloutStatus
from runbook_operator.api.common import API_VERSION
from runbook_operator.controllers.canary.reconcile import (
    IN_FLIGHT,
    KIND,
    STEADY,
    Outcome,
    Prepared,
    Unusable,
    owner_of,
    write_status,
)
from runbook_operator.controllers.canary.workloads import scale
from runbook_operator.core.canary.deletion import FINALIZER, revert, routed_back
from runbook_operator.core.canary.objects import (
    TargetUnusable,
    kept_primary_service,
    primary_name,
    replicas_by_router,
    workload,
)
from runbook_operator.integrations.kubernetes import Kube
from runbook_operator.integrations.routers import RouterError, router_for


def _finalizers(meta: Mapping[str, Any], held: bool) -> dict[str, Any]:
    """The server-side apply body of the operator's finalizer alone (others' stay)."""
    return {"apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                         "finalizers": [FINALIZER] if held else []}}


def hold(kube: Kube, body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The rollout with the operator's finalizer (added when missing)."""
    meta = body["metadata"]
    if FINALIZER in (meta.get("finalizers") or []):
        return body
    return kube.apply(_finalizers(meta, held=True))


def _release(kube: Kube, body: Mapping[str, Any], message: str) -> Outcome:
    kube.apply(_finalizers(body["metadata"], held=False))
    kube.event(dict(body), "Normal", "Reverted", message)
    return Outcome(None, STEADY)


def revert_deleted(kube: Kube, body: Mapping[str, Any], prepared: Prepared) -> Outcome:
    """One step of reverting a deleted rollout; its finalizer removed after the last."""
    meta = body["metadata"]
    namespace = meta["namespace"]
    if FINALIZER not in (meta.get("finalizers") or []):
        return Outcome(body, STEADY)
    if isinstance(prepared, Unusable):
        return _release(kube, body, f"nothing to revert: {prepared.message}")
    spec, backends = prepared.spec, prepared.backends
    target = kube.get("apps/v1", "Deployment", spec.target_ref.name, namespace)
    primary = kube.get("apps/v1", "Deployment", primary_name(spec), namespace)
    service = kube.get("v1", "Service", backends.primary, namespace)
    try:
        since = None if target is None else routed_back(spec, target, primary, service,
                                                        meta["uid"])
    except TargetUnusable as error:
        return _release(kube, body, f"nothing to revert: {error}")
    now = datetime.now(UTC)
    step = revert(workload(target), workload(primary, "annotation"), since, now)
    if step.scale_target is not None:
        scale(kube, spec.target_ref.name, namespace, step.scale_target)
    unrouted = ""
    if step.route_back and target is not None:
        owner = owner_of(body)
        if not replicas_by_router(spec):
            kube.apply(kept_primary_service(spec, target, backends, owner, since or now))
        try:
            router_for(spec, backends, owner, kube).finalize()
        except RouterError as error:
            unrouted = f" (the router could not be finalized: {error})"
    if step.release:
        return _release(kube, body, step.message + unrouted)
    old = CanaryRolloutStatus.model_validate(body.get("status") or {})
    new = old.model_copy(update={"message": f"deleted: {step.message}{unrouted}"})
    return Outcome(write_status(kube, body, old, new), IN_FLIGHT)


async def tick(kube: Kube, body: Mapping[str, Any], prepared: Prepared) -> Outcome:
    return await asyncio.to_thread(revert_deleted, kube, body, prepared)
