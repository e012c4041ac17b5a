"""The replica-ratio router, for clusters without a mesh or a weighting gateway: primary and
canary pods behind the user's one Service, the canary's share of traffic its share of ready
pods (a Service spreads connections over its ready endpoints evenly).

The user's Service (the Services' base name) selects labels both pod templates carry — not
the Deployment selector's, whose values the primary's pods have suffixed `-primary`. A weight
is written as replica counts, patched alone (`spec.replicas` under the operator's field
manager; a GitOps manifest of the target leaves `replicas` out, so it sees no diff). The
rounding rule, over `total` pods of both versions together:

- 0% → no canary pod; 100% → every pod a canary;
- otherwise canary = ceil(total × w / 100), at most total − 1: any positive weight gets a
  canary pod and any weight under 100 keeps a primary pod, so a split needs total ≥ 2;
- the primary gets the rest, so the two always add up to `total`.

The canary's real share then differs from `w` by less than 100 / total points. `total` is
the spec's `totalReplicas`; else, at a rollout's first write, the target's replicas (what the
user ran: the primary is new, at the Deployment default of 1, and counting it too made a
1-replica app run 2 pods); else the two Deployments' replicas together — which every write
keeps, so it stays what the primary ran when the canary was at zero.

Verification reads the Deployments back: Yes once both run exactly their counts of ready,
updated pods; Unknown while pods start or stop; No when the counts are not the weight's.
"""

from __future__ import annotations

import math
from typing import Any

from runbook_operator.integrations.kubernetes import Kube
from runbook_operator.integrations.routers import Backends, RouterError, Verification

DEPLOYMENT = ("apps/v1", "Deployment")
SERVICE = ("v1", "Service")


def split(total: int, weight: int) -> tuple[int, int]:
    """(primary, canary) replicas for a canary percentage (the module's rounding rule)."""
    if not 0 <= weight <= 100:
        raise ValueError(f"a weight is a percentage, not {weight}")
    if total < 0:
        raise ValueError(f"replicas cannot be negative ({total})")
    if weight in (0, 100):
        canary = total * weight // 100
    elif total < 2:
        raise ValueError(f"{weight}% needs pods of both versions: at least 2 replicas, "
                         f"not {total}")
    else:
        canary = min(math.ceil(total * weight / 100), total - 1)
    return total - canary, canary


def _replicas(deployment: dict[str, Any]) -> int:
    return int((deployment.get("spec") or {}).get("replicas", 1))


def total_replicas(configured: int | None, primary: dict[str, Any],
                   canary: dict[str, Any], first_write: bool = False) -> int:
    """The pods of both versions together: the spec's; at the rollout's first write the
    target's (unless a write that was not recorded already scaled it to zero); else both
    Deployments' replicas."""
    if configured is not None:
        return configured
    if first_write and _replicas(canary) > 0:
        return _replicas(canary)
    return _replicas(primary) + _replicas(canary)


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether a Service's selector matches pods with `labels` (a Service without a
    selector gets no endpoints from the cluster)."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _template_labels(deployment: dict[str, Any]) -> dict[str, str]:
    template = (deployment.get("spec") or {}).get("template") or {}
    return (template.get("metadata") or {}).get("labels") or {}


def service_problem(service: dict[str, Any], primary: dict[str, Any],
                    canary: dict[str, Any]) -> str | None:
    """Why the Service cannot carry both versions' traffic, or None."""
    selector = (service.get("spec") or {}).get("selector") or {}
    missed = [d["metadata"]["name"] for d in (primary, canary)
              if not selects(selector, _template_labels(d))]
    if not missed:
        return None
    return (f"Service {service['metadata']['name']!r} (selector {selector}) does not select "
            f"the pods of {', '.join(missed)}: select labels both pod templates carry")


def _settled(deployment: dict[str, Any], replicas: int) -> bool:
    """The Deployment runs exactly `replicas` pods of its current template, all ready."""
    status = deployment.get("status") or {}
    current = (status.get("observedGeneration") or 0) >= deployment["metadata"].get(
        "generation", 0)
    counts = (status.get(k) or 0 for k in ("replicas", "updatedReplicas", "readyReplicas"))
    return current and all(c == replicas for c in counts)


def _ready(deployment: dict[str, Any]) -> int:
    return int((deployment.get("status") or {}).get("readyReplicas") or 0)


def observe(primary: dict[str, Any] | None, canary: dict[str, Any] | None, total: int,
            weight: int) -> Verification:
    """Is the canary's `weight` in effect as ready pods? Yes, No or Unknown."""
    if primary is None or canary is None:
        missing = "primary" if primary is None else "canary"
        return Verification("No", None, f"the {missing} Deployment does not exist")
    try:
        wanted = split(total, weight)
    except ValueError as error:
        return Verification("No", None, str(error))
    written = (_replicas(primary), _replicas(canary))
    ready_primary, ready_canary = _ready(primary), _ready(canary)
    pods = f"{ready_canary} canary and {ready_primary} primary pods ready"
    if written != wanted:
        return Verification("No", None, f"replicas {written[1]} canary and {written[0]} "
                            f"primary, not the {wanted[1]} and {wanted[0]} of {weight}%")
    if not (_settled(primary, wanted[0]) and _settled(canary, wanted[1])):
        return Verification("Unknown", None, f"{pods}, waiting for {wanted[1]} and "
                            f"{wanted[0]}")
    share = round(100 * wanted[1] / total) if total else 0
    return Verification("Yes", weight, f"{pods}: {share}% of the Service's endpoints")


class ReplicaRatioRouter:
    """The `Router` that splits one Service's endpoints between the two Deployments."""

    def __init__(self, kube: Kube, backends: Backends, primary: str, canary: str,
                 configured_total: int | None, first_write: bool = False) -> None:
        self.kube = kube
        self.backends = backends
        self.primary = primary
        self.canary = canary
        self.configured_total = configured_total
        self.first_write = first_write
        """No weight was recorded for the rollout yet: the target still runs all its pods."""

    def _total(self, primary: dict[str, Any], canary: dict[str, Any]) -> int:
        return total_replicas(self.configured_total, primary, canary, self.first_write)

    def _deployment(self, name: str) -> dict[str, Any] | None:
        return self.kube.get(*DEPLOYMENT, name, self.backends.namespace)

    def _both(self) -> tuple[dict[str, Any], dict[str, Any]]:
        primary, canary = self._deployment(self.primary), self._deployment(self.canary)
        if primary is None or canary is None:
            missing = self.primary if primary is None else self.canary
            raise RouterError(f"Deployment {missing!r} not found")
        return primary, canary

    def reconcile(self) -> None:
        """Both Deployments exist and the user's Service selects the pods of both."""
        primary, canary = self._both()
        service = self.kube.get(*SERVICE, self.backends.service, self.backends.namespace)
        if service is None:
            raise RouterError(f"Service {self.backends.service!r} not found: it carries "
                              "both versions' traffic")
        problem = service_problem(service, primary, canary)
        if problem is not None:
            raise RouterError(problem)

    def set_weight(self, weight: int) -> None:
        """Scale to the weight's counts, the Deployment that grows first."""
        primary, canary = self._both()
        try:
            wanted = split(self._total(primary, canary), weight)
        except ValueError as error:
            raise RouterError(str(error)) from error
        scales = sorted(zip((primary, canary), wanted, strict=True),
                        key=lambda pair: _replicas(pair[0]) - pair[1])
        for deployment, replicas in scales:
            self.kube.merge_patch(*DEPLOYMENT, deployment["metadata"]["name"],
                                  self.backends.namespace, {"spec": {"replicas": replicas}})

    def verify(self, weight: int) -> Verification:
        primary, canary = self._deployment(self.primary), self._deployment(self.canary)
        if primary is None or canary is None:
            return observe(primary, canary, 0, weight)
        return observe(primary, canary, self._total(primary, canary), weight)

    def finalize(self) -> None:
        """The primary scaled to zero, so that the target's pods — which the controller
        scaled up first — carry the user's Service alone; nothing was added."""
        if self._deployment(self.primary) is not None:
            self.kube.merge_patch(*DEPLOYMENT, self.primary, self.backends.namespace,
                                  {"spec": {"replicas": 0}})
