"""Making a decision's `Effects` so, idempotently: the primary's template and replicas, its
autoscaler, the Services, the router's weight (written, then read back), the canary's scale.
Blocking (the Kubernetes client): runs in a worker thread.

Writes are server-side applies of the operator's fields, except replicas, which are patched
alone and only when they must change (an autoscaler owns them otherwise): the primary only
upwards, the target from zero to the rollout's count or back to zero. With the replica-ratio
router the decisions ask for no scaling: the router's weight is both Deployments' replicas.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runbook_operator.api.canaryrollout import CanaryRolloutSpec, RouterStatus
from runbook_operator.core.canary.machine import Effects
from runbook_operator.core.canary.objects import (
    REVISION_ANNOTATION,
    desired_autoscaler,
    desired_primary,
    desired_services,
    primary_name,
    revision,
)
from runbook_operator.core.canary.status import confirmed_at
from runbook_operator.integrations.kubernetes import Kube
from runbook_operator.integrations.routers import Backends, Owner, Router, Verification

HPA_API = "autoscaling/v2"


@dataclass(frozen=True)
class Observed:
    """What the tick read before deciding."""

    target: dict[str, Any]
    primary: dict[str, Any] | None
    target_hpa: dict[str, Any] | None
    route: Verification | None = None
    """The router's answer about the weight last written, when it was asked."""
    primary_stopping: int = 0
    """The primary's pods deleted and still within their grace period, when counted."""


def scale(kube: Kube, name: str, namespace: str, replicas: int) -> None:
    kube.merge_patch("apps/v1", "Deployment", name, namespace, {"spec": {"replicas": replicas}})


def _ensure_services(kube: Kube, spec: CanaryRolloutSpec, observed: Observed,
                     backends: Backends, owner: Owner) -> None:
    for service in desired_services(spec, observed.target, backends, owner):
        found = kube.get("v1", "Service", service["metadata"]["name"], backends.namespace)
        found_spec = (found or {}).get("spec") or {}
        wanted = service["spec"]
        if found is None or found_spec.get("selector") != wanted["selector"] or [
                {k: p.get(k) for k in ("name", "port", "targetPort")}
                for p in found_spec.get("ports") or []] != [
                {k: p[k] for k in ("name", "port", "targetPort")} for p in wanted["ports"]]:
            kube.apply(service)


def _autoscaler(kube: Kube, spec: CanaryRolloutSpec, observed: Observed, owner: Owner,
                namespace: str, floor: int | None) -> None:
    if observed.target_hpa is None:
        return
    wanted = desired_autoscaler(spec, observed.target_hpa, owner, namespace, floor)
    found = kube.get(HPA_API, "HorizontalPodAutoscaler", wanted["metadata"]["name"], namespace)
    found_spec = (found or {}).get("spec") or {}
    if found is None or any(found_spec.get(k) != v for k, v in wanted["spec"].items()):
        kube.apply(wanted)


def _route(router: Router, weight: int, previous: RouterStatus | None, now: datetime,
           known: Verification | None) -> RouterStatus:
    """Write `weight` unless the router already carries it, and read it back (the time of a
    first confirmation is the read-back's, not the tick's). `known`, the tick's own read,
    is not read again when it confirmed `weight`. The answer's time is kept while the router
    answers the same, so a rollout at rest writes no status."""
    if known is not None and known.verified == "Yes" and known.weight == weight:
        answer = known
    else:
        answer = router.verify(weight)
    if answer.verified == "No":
        router.reconcile()
        router.set_weight(weight)
        answer = router.verify(weight)
        previous = None  # written anew: an earlier confirmation no longer holds
    message = answer.message[:1024]
    asked = now
    if previous is not None and (previous.weight, previous.verified, previous.message) == (
            weight, answer.verified, message):
        asked = previous.time
    return RouterStatus(weight=weight, verified=answer.verified, message=message, time=asked,
                        confirmed_at=confirmed_at(previous, weight, answer.verified,
                                                  datetime.now(UTC)))


def make_so(kube: Kube, spec: CanaryRolloutSpec, observed: Observed, effects: Effects,
            canary_replicas: int | None, backends: Backends, owner: Owner, router: Router,
            previous: RouterStatus | None, now: datetime) -> RouterStatus | None:
    """Make `effects` so; what the router answered when a weight is wanted (`previous`: its
    last answer recorded)."""
    namespace = backends.namespace
    target, primary = observed.target, observed.primary
    if effects.promote is not None and revision(target["spec"]["template"]) == effects.promote:
        running = ((primary or {}).get("metadata", {}).get("annotations") or {}).get(
            REVISION_ANNOTATION)
        if running != effects.promote:
            kube.apply(desired_primary(spec, target, owner, namespace))
    if spec.autoscaler_ref is not None:
        _autoscaler(kube, spec, observed, owner, namespace, effects.primary_floor)
    if effects.primary_floor is not None and primary is not None and int(
            primary["spec"].get("replicas", 1)) < effects.primary_floor:
        scale(kube, primary_name(spec), namespace, effects.primary_floor)
    answered = None
    if effects.weight is not None:
        _ensure_services(kube, spec, observed, backends, owner)
        answered = _route(router, effects.weight, previous, now, observed.route)
    replicas = int(target["spec"].get("replicas", 1))
    if effects.canary == "zero" and replicas != 0:
        scale(kube, spec.target_ref.name, namespace, 0)
    elif effects.canary == "running" and replicas == 0:
        scale(kube, spec.target_ref.name, namespace, max(canary_replicas or 1, 1))
    return answered
