"""The objects a CanaryRollout maintains, as pure functions of the target and the spec, and
what the operator reads from the Deployments it watches over.

The primary is the target's pod template under `<target>-primary`, its selector labels'
values suffixed `-primary` so that the canary Service (the target's own selector) never
selects primary pods and the primary Service never selects the target's. Every generated
object carries the managed-by and rollout labels and an ownerReference to the CanaryRollout.
Replicas are never part of what is applied (an autoscaler or a person owns them once set):
the controller scales with a patch of `replicas` alone, and only upwards for the primary.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runbook_operator.api.canaryrollout import PRIMARY_SUFFIX, CanaryRolloutSpec
from runbook_operator.integrations.routers import Backends, Owner

#: On the primary Deployment: the revision of the target's template it runs.
REVISION_ANNOTATION = "runbook.dev/revision"
#: On `<service>-primary` kept after its CanaryRollout was deleted: since when.
KEPT_ANNOTATION = "runbook.dev/kept-since"
MAX_LABEL_VALUE = 63


class TargetUnusable(ValueError):
    """The target cannot be rolled out as it is (the reason is shown as Stalled)."""


def revision(template: dict[str, Any]) -> str:
    """A short stable hash of a pod template (its canonical JSON)."""
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Workload:
    """A Deployment as the state machine sees it."""

    revision: str | None
    replicas: int
    """spec.replicas."""
    ready: int
    """Ready pods of the current template."""
    rolled_out: bool
    """The Deployment controller has rolled the current template out to every replica and
    no pod of an older template is left, not even one still stopping."""
    stopping: int = 0
    """Pods deleted but still within their grace period: a draining pod of the old template
    answers requests the gateway still sends it."""


def workload(body: dict[str, Any] | None, revision_of: str = "template",
             stopping: int = 0) -> Workload | None:
    """What a Deployment says about itself; `revision_of` "template" hashes its pod template
    (the target), "annotation" reads the revision the operator recorded (the primary).
    `stopping` counts its pods still stopping (`stopping_pods`): the Deployment's own status
    leaves them out."""
    if body is None:
        return None
    spec, status = body.get("spec") or {}, body.get("status") or {}
    replicas = int(spec.get("replicas", 1))
    if revision_of == "template":
        rev: str | None = revision(spec.get("template") or {})
    else:
        rev = (body["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION)
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    total = int(status.get("replicas") or 0)
    current = status.get("observedGeneration") == body["metadata"].get("generation")
    rolled_out = (current and updated == replicas and available >= replicas
                  and total == replicas and stopping == 0)
    ready = min(int(status.get("readyReplicas") or 0), updated) if current else 0
    return Workload(rev, replicas, ready, rolled_out, stopping)


def stopping_pods(pods: list[dict[str, Any]], now: datetime) -> int:
    """How many of `pods` are deleted and still within their grace period (deletionTimestamp,
    the moment the kubelet kills what is left, still ahead): such a pod may be draining and
    answering. One past that moment no longer runs, even while its object lingers."""
    return sum(1 for pod in pods
               if (deadline := (pod.get("metadata") or {}).get("deletionTimestamp"))
               and datetime.fromisoformat(deadline) > now)


def replicas_by_router(spec: CanaryRolloutSpec) -> bool:
    """Whether the router realises the weight as replica counts (replicaRatio): then it
    alone scales both Deployments, and the controller never does (it would fight it)."""
    return spec.router.replica_ratio is not None


def primary_name(spec: CanaryRolloutSpec) -> str:
    return f"{spec.target_ref.name}{PRIMARY_SUFFIX}"


def _suffixed(labels: dict[str, str], keys: set[str]) -> dict[str, str]:
    out = dict(labels)
    for key in keys & set(labels):
        value = f"{labels[key]}{PRIMARY_SUFFIX}"
        if len(value) > MAX_LABEL_VALUE:
            raise TargetUnusable(f"label {key}={labels[key]} is too long to add "
                                 f"'{PRIMARY_SUFFIX}' (63 characters at most)")
        out[key] = value
    return out


def selector(target: dict[str, Any]) -> dict[str, str]:
    """The target's selector; only matchLabels can be rewritten for the primary."""
    found = (target.get("spec") or {}).get("selector") or {}
    if found.get("matchExpressions") or not found.get("matchLabels"):
        raise TargetUnusable("the target's selector must use matchLabels only")
    return dict(found["matchLabels"])


def primary_selector(target: dict[str, Any]) -> dict[str, str]:
    labels = selector(target)
    return _suffixed(labels, set(labels))


_COPIED_SPEC_FIELDS = ("minReadySeconds", "progressDeadlineSeconds", "revisionHistoryLimit",
                       "strategy")


def desired_primary(spec: CanaryRolloutSpec, target: dict[str, Any], owner: Owner,
                    namespace: str) -> dict[str, Any]:
    """`<target>-primary` running the target's current template (no replicas: see the
    module docstring)."""
    keys = set(selector(target))
    template = copy.deepcopy((target.get("spec") or {}).get("template") or {})
    meta = template.setdefault("metadata", {})
    meta["labels"] = _suffixed(meta.get("labels") or {}, keys)
    target_spec = target.get("spec") or {}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": primary_name(spec), "namespace": namespace,
            "labels": {**(target["metadata"].get("labels") or {}), **owner.labels()},
            "annotations": {REVISION_ANNOTATION: revision(target_spec.get("template") or {})},
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            **{k: target_spec[k] for k in _COPIED_SPEC_FIELDS if k in target_spec},
            "selector": {"matchLabels": primary_selector(target)},
            "template": template,
        },
    }


def _service(spec: CanaryRolloutSpec, backends: Backends, owner: Owner, name: str,
             selects: dict[str, str], owned: bool = True) -> dict[str, Any]:
    port = {"name": spec.service.port_name, "port": spec.service.port,
            "targetPort": spec.service.target_port or spec.service.port, "protocol": "TCP"}
    meta: dict[str, Any] = {"name": name, "namespace": backends.namespace,
                            "labels": owner.labels()}
    if owned:
        meta["ownerReferences"] = [owner.reference()]
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"type": "ClusterIP", "selector": selects, "ports": [port]}}


def desired_services(spec: CanaryRolloutSpec, target: dict[str, Any], backends: Backends,
                     owner: Owner) -> list[dict[str, Any]]:
    """`<service>-primary` selecting the primary's pods, `<service>-canary` the target's."""
    return [_service(spec, backends, owner, backends.primary, primary_selector(target)),
            _service(spec, backends, owner, backends.canary, selector(target))]


def kept_primary_service(spec: CanaryRolloutSpec, target: dict[str, Any], backends: Backends,
                         owner: Owner, since: datetime) -> dict[str, Any]:
    """`<service>-primary` once its CanaryRollout is deleted: the target's pods behind it,
    no owner, so that the route or Ingress naming it keeps working, and when that began
    (`core.canary.deletion`). Applied under the same field manager, it drops the owner
    reference written before."""
    kept = _service(spec, backends, owner, backends.primary, selector(target), owned=False)
    kept["metadata"]["annotations"] = {KEPT_ANNOTATION: since.isoformat()}
    return kept


@dataclass(frozen=True)
class Autoscaler:
    """The target's HorizontalPodAutoscaler's bounds."""

    min_replicas: int
    max_replicas: int


def autoscaler(body: dict[str, Any] | None) -> Autoscaler | None:
    if body is None:
        return None
    spec = body.get("spec") or {}
    return Autoscaler(int(spec.get("minReplicas", 1)), int(spec["maxReplicas"]))


def desired_autoscaler(spec: CanaryRolloutSpec, target_hpa: dict[str, Any], owner: Owner,
                       namespace: str, floor: int | None) -> dict[str, Any]:
    """The primary's HorizontalPodAutoscaler: the target's, aimed at the primary, its
    minimum raised to `floor` while the primary is scaled up to take traffic back."""
    hpa_spec = copy.deepcopy(target_hpa.get("spec") or {})
    hpa_spec["scaleTargetRef"] = {"apiVersion": "apps/v1", "kind": "Deployment",
                                  "name": primary_name(spec)}
    bounds = autoscaler(target_hpa)
    assert bounds is not None
    if floor is not None:
        hpa_spec["minReplicas"] = min(max(bounds.min_replicas, floor), bounds.max_replicas)
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": f"{target_hpa['metadata']['name']}{PRIMARY_SUFFIX}",
                         "namespace": namespace, "labels": owner.labels(),
                         "ownerReferences": [owner.reference()]},
            "spec": hpa_spec}


def primary_floor(primary_replicas: int, canary_replicas: int,
                  bounds: Autoscaler | None) -> int:
    """Replicas the primary needs ready before traffic moves back to it. An autoscaler
    shrank the primary while the canary took traffic (Flagger #869, #1600), so it gets the
    replicas both served with, within the autoscaler's bounds; without one nobody shrank
    it, and it needs at least as many as the canary had."""
    if bounds is None:
        return max(primary_replicas, canary_replicas, 1)
    return max(bounds.min_replicas, min(primary_replicas + canary_replicas,
                                        bounds.max_replicas), 1)
