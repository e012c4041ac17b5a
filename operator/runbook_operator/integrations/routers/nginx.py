"""The NGINX Ingress router: ingress-nginx's canary annotations on a copy of the user's Ingress.

The user's Ingress stays the user's: its backends name `<service>-primary` in their own
manifest, and the operator never writes it. Flagger does the same (its nginx router clones
the user's Ingress and leaves it alone; there the backend is the apex Service Flagger points
at the primary): an Ingress's `rules` is an atomic list, so retargeting one backend would
take every rule over and a GitOps tool would see a diff on each sync (Argo Rollouts #3854).

The operator maintains `<ingress>-canary`: the user's spec with each `<service>-primary`
backend renamed `<service>-canary`, the user's annotations, and
`nginx.ingress.kubernetes.io/canary: "true"` with `canary-weight: "<w>"` (a percentage of the
default `canary-weight-total` of 100); a controller serving ingress-nginx's annotations sends
that share of the matching requests to the canary. Deleting the copy sends everything to the
primary again.

Verification is by read-back only: Yes when the copy mirrors the user's current Ingress and
carries the weight. No controller status says which canary weight is in effect (the
load-balancer address an Ingress gets is not per generation). The devcluster's Traefik (v3.7
on) serves the canary annotations, so the tests measure the canary's real share of traffic.
"""

from __future__ import annotations

import copy
from typing import Any

from runbook_operator.integrations.kubernetes import Kube
from runbook_operator.integrations.routers import Backends, Owner, RouterError, Verification

API_VERSION = "networking.k8s.io/v1"
KIND = "Ingress"
CANARY_SUFFIX = "-canary"
ANNOTATION_PREFIX = "nginx.ingress.kubernetes.io/canary"
CANARY_ANNOTATION = ANNOTATION_PREFIX
WEIGHT_ANNOTATION = f"{ANNOTATION_PREFIX}-weight"
#: Not copied from the user's Ingress: kubectl's record of the user's own apply.
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def canary_name(ingress: str) -> str:
    return f"{ingress}{CANARY_SUFFIX}"


def _backends_of(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every backend of an Ingress spec: the default one and each path's (mutable)."""
    found = [spec["defaultBackend"]] if spec.get("defaultBackend") else []
    for rule in spec.get("rules") or []:
        found.extend(p["backend"] for p in (rule.get("http") or {}).get("paths") or []
                     if p.get("backend"))
    return found


def _service_name(backend: dict[str, Any]) -> str | None:
    return (backend.get("service") or {}).get("name")


def primary_missing(ingress: dict[str, Any], backends: Backends) -> str | None:
    """Why the user's Ingress cannot be split, or None when a backend names the primary."""
    names = {_service_name(b) for b in _backends_of(ingress.get("spec") or {})}
    if backends.primary in names:
        return None
    return (f"Ingress {ingress['metadata']['name']!r} has no backend {backends.primary!r} "
            f"(it names {sorted(n for n in names if n)}): point it at the primary Service in "
            "its manifest; the operator does not write the user's Ingress (its rules are an "
            "atomic list, a GitOps tool would see a diff)")


def canary_spec(ingress: dict[str, Any], backends: Backends) -> dict[str, Any]:
    """The user's Ingress spec with every primary backend renamed to the canary."""
    spec = copy.deepcopy(ingress.get("spec") or {})
    for backend in _backends_of(spec):
        if _service_name(backend) == backends.primary:
            backend["service"]["name"] = backends.canary
    return spec


def canary_annotations(ingress: dict[str, Any], weight: int) -> dict[str, str]:
    """The user's annotations (without kubectl's record or canary ones) and the canary's."""
    if not 0 <= weight <= 100:
        raise ValueError(f"a weight is a percentage, not {weight}")
    user = ingress["metadata"].get("annotations") or {}
    kept = {k: v for k, v in user.items()
            if k != LAST_APPLIED and not k.startswith(ANNOTATION_PREFIX)}
    return {**kept, CANARY_ANNOTATION: "true", WEIGHT_ANNOTATION: str(weight)}


def desired_canary_ingress(ingress: dict[str, Any], backends: Backends, owner: Owner,
                           weight: int) -> dict[str, Any]:
    """`<ingress>-canary`, entirely the operator's: the server-side apply body."""
    return {"apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"name": canary_name(ingress["metadata"]["name"]),
                         "namespace": backends.namespace, "labels": owner.labels(),
                         "annotations": canary_annotations(ingress, weight),
                         "ownerReferences": [owner.reference()]},
            "spec": canary_spec(ingress, backends)}


def written_weight(canary: dict[str, Any]) -> int | str:
    """The canary weight the copy's annotations carry, or why it carries none."""
    annotations = canary["metadata"].get("annotations") or {}
    if annotations.get(CANARY_ANNOTATION) != "true":
        return f"{CANARY_ANNOTATION} is {annotations.get(CANARY_ANNOTATION)!r}, not 'true'"
    value = annotations.get(WEIGHT_ANNOTATION)
    if value is None or not value.isdigit() or int(value) > 100:
        return f"{WEIGHT_ANNOTATION} is {value!r}, not a percentage"
    return int(value)


def observe(ingress: dict[str, Any] | None, canary: dict[str, Any] | None,
            backends: Backends, weight: int) -> Verification:
    """Is the canary's `weight` in effect, as read back from both Ingresses?"""
    if ingress is None:
        return Verification("No", None, "the user's Ingress does not exist")
    if canary is None:
        return Verification("No", None, "the canary Ingress does not exist")
    found = written_weight(canary)
    if isinstance(found, str):
        return Verification("No", None, found)
    if (canary.get("spec") or {}) != canary_spec(ingress, backends):
        return Verification("No", found, "the canary Ingress does not mirror the user's")
    if found != weight:
        return Verification("No", found, f"the canary Ingress carries {found}%")
    return Verification("Yes", found, f"{WEIGHT_ANNOTATION} {found} read back")


class NginxRouter:
    """The `Router` of an Ingress the user owns, split by a canary copy the operator owns."""

    def __init__(self, kube: Kube, backends: Backends, owner: Owner, ingress: str) -> None:
        self.kube = kube
        self.backends = backends
        self.owner = owner
        self.ingress = ingress

    def _read(self, name: str) -> dict[str, Any] | None:
        return self.kube.get(API_VERSION, KIND, name, self.backends.namespace)

    def _user_ingress(self) -> dict[str, Any]:
        found = self._read(self.ingress)
        if found is None:
            raise RouterError(f"Ingress {self.ingress!r} not found")
        missing = primary_missing(found, self.backends)
        if missing is not None:
            raise RouterError(missing)
        return found

    def reconcile(self) -> None:
        """The user's Ingress must name the primary; the canary copy follows its spec and
        keeps its weight (0 when new)."""
        ingress = self._user_ingress()
        canary = self._read(canary_name(self.ingress))
        current = written_weight(canary) if canary is not None else 0
        weight = current if isinstance(current, int) else 0
        self.kube.apply(desired_canary_ingress(ingress, self.backends, self.owner, weight))

    def set_weight(self, weight: int) -> None:
        self.kube.apply(desired_canary_ingress(self._user_ingress(), self.backends,
                                               self.owner, weight))

    def verify(self, weight: int) -> Verification:
        return observe(self._read(self.ingress), self._read(canary_name(self.ingress)),
                       self.backends, weight)

    def finalize(self) -> None:
        self.kube.delete_if_exists(API_VERSION, KIND, canary_name(self.ingress),
                                   self.backends.namespace, self.owner.uid)
