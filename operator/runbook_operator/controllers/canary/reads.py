"""The Kubernetes client of one CanaryRollout tick: each object is read at most once until the
tick writes it.

A tick reads the target and the primary to decide, the router reads the same two Deployments
to verify the weight last written and again to verify the weight decided, and the Services
are read before they are ensured: on the API server that was two to three reads of each
Deployment a tick, a second for every rollout in flight. Within one tick those reads are
milliseconds apart, so the first answer stands for the later ones; a write by the tick
forgets the object, and the next read (the router's read-back after scaling) goes to the API
server. Nothing is remembered from one tick to the next.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from runbook_operator.integrations.kubernetes import Kube

#: An object as the API server names it: kind, namespace, name.
ObjectKey = tuple[str, str | None, str]


class TickReads:
    """A `Kube` for one tick (the same methods): `get` answers a repeated read from the first
    answer, every write forgets what it wrote to; the rest is the wrapped client's."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube
        self._read: dict[ObjectKey, dict[str, Any] | None] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kube, name)

    def get(self, api_version: str, kind: str, name: str,
            namespace: str | None = None) -> dict[str, Any] | None:
        key = (kind, namespace, name)
        if key not in self._read:
            self._read[key] = self._kube.get(api_version, kind, name, namespace)
        return copy.deepcopy(self._read[key])

    def _forget(self, kind: str, namespace: str | None, name: str) -> None:
        self._read.pop((kind, namespace, name), None)

    def _forget_body(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        self._forget(body["kind"], meta.get("namespace"), meta["name"])

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        self._forget_body(body)
        return self._kube.apply(body)

    def create_if_absent(self, body: dict[str, Any]) -> bool:
        self._forget_body(body)
        return self._kube.create_if_absent(body)

    def merge_patch(self, api_version: str, kind: str, name: str, namespace: str,
                    patch: dict[str, Any]) -> dict[str, Any]:
        self._forget(kind, namespace, name)
        return self._kube.merge_patch(api_version, kind, name, namespace, patch)

    def delete_if_exists(self, api_version: str, kind: str, name: str, namespace: str,
                         owned_by: str) -> bool:
        self._forget(kind, namespace, name)
        return self._kube.delete_if_exists(api_version, kind, name, namespace, owned_by)

    def patch_status(self, api_version: str, kind: str, name: str, namespace: str,
                     patch: dict[str, Any], resource_version: str) -> dict[str, Any] | None:
        self._forget(kind, namespace, name)
        return self._kube.patch_status(api_version, kind, name, namespace, patch,
                                       resource_version)

    def update_status(self, api_version: str, kind: str, name: str, namespace: str,
                      change: Callable[[dict[str, Any]], dict[str, Any] | None],
                      ) -> dict[str, Any] | None:
        self._forget(kind, namespace, name)
        return self._kube.update_status(api_version, kind, name, namespace, change)
