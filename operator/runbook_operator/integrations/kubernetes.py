"""The operator's only door to the Kubernetes API for its own reads and writes.

Generated objects are written with server-side apply under one field manager, so fields that
users or other controllers own on them are not fought over. Status is written with a merge
patch guarded by resourceVersion, so concurrent writers never lose each other's updates.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from runbook_operator.api.common import FIELD_MANAGER
from runbook_operator.integrations.kubeapi import (
    ApiClient,
    ApiResource,
    Conflict,
    Connection,
    Discovery,
    NotFound,
    TokenBucket,
    load_connection,
)
from runbook_operator.integrations.secrets import key_names

STATUS_CONFLICT_RETRIES = 5
MERGE_PATCH = "application/merge-patch+json"


class StatusConflict(RuntimeError):
    """Status could not be written after several conflicting concurrent updates."""


def connect(qps: float = 0, burst: int = 1, kubeconfig: str | None = None,
            connection: Connection | None = None) -> Kube:
    """A Kube on `connection`, else the environment's credentials (kubeapi.load_connection),
    limited to `qps` requests a second (burst `burst`), or not limited when qps is 0."""
    bucket = TokenBucket(qps, burst) if qps else None
    return Kube(ApiClient(connection or load_connection(kubeconfig), bucket))


class Kube:
    """Thin, dict-in/dict-out adapter over the API: the operator's verbs on any kind."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self._discovery = Discovery(client)

    def _resource(self, api_version: str, kind: str) -> ApiResource:
        return self._discovery.resource(api_version, kind)

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply `body`, taking ownership of the fields it sets."""
        resource = self._resource(body["apiVersion"], body["kind"])
        path = resource.path(body["metadata"].get("namespace"), body["metadata"]["name"])
        return self.client.request(
            "PATCH", path, body=body, content_type="application/apply-patch+yaml",
            query={"fieldManager": FIELD_MANAGER, "force": "true"})

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        try:
            return self.client.request(
                "GET", self._resource(api_version, kind).path(namespace, name))
        except NotFound:
            return None

    def list(
        self,
        api_version: str,
        kind: str,
        namespaces: list[str | None],
        label_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        """All objects of a kind in the given namespaces (None: all namespaces)."""
        resource = self._resource(api_version, kind)
        items: list[dict[str, Any]] = []
        for namespace in namespaces:
            found = self.client.request("GET", resource.path(namespace),
                                        query={"labelSelector": label_selector})
            items.extend(found["items"])
        return items

    def pages(
        self, api_version: str, kind: str, namespaces: list[str | None], size: int,
        field_selector: str | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """The objects of a kind in the given namespaces (None: all) that `field_selector`
        selects, `size` at a time (the API server's limit and continue): a caller that works
        through one page before asking for the next holds one page, not every object of the
        kind at once."""
        resource = self._resource(api_version, kind)
        for namespace in namespaces:
            token = None
            while True:
                found = self.client.request("GET", resource.path(namespace),
                                            query={"limit": size, "continue": token,
                                                   "fieldSelector": field_selector})
                yield found["items"]
                token = (found.get("metadata") or {}).get("continue")
                if not token:
                    break

    def count(self, api_version: str, kind: str, namespaces: list[str | None]) -> int:
        """How many objects of a kind there are in the given namespaces (None: all), from a
        LIST of one object per namespace and the API server's `remainingItemCount`, without
        reading the others."""
        resource = self._resource(api_version, kind)
        total = 0
        for namespace in namespaces:
            found = self.client.request("GET", resource.path(namespace), query={"limit": 1})
            remaining = (found.get("metadata") or {}).get("remainingItemCount") or 0
            total += len(found["items"]) + int(remaining)
        return total

    def event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """Record a core/v1 Event on `involved` (any object dict with apiVersion/kind/metadata).

        Posted directly rather than through kopf, so it works from any thread or task."""
        meta = involved["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "reportingInstance": socket.gethostname(),
        }
        self.client.request("POST", self._resource("v1", "Event").path(meta["namespace"]),
                            body=body)

    def merge_patch(
        self, api_version: str, kind: str, name: str, namespace: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        """A JSON merge patch of fields the operator changes on purpose (e.g. an automated
        scale), recorded under its field manager."""
        return self.client.request(
            "PATCH", self._resource(api_version, kind).path(namespace, name), body=patch,
            content_type=MERGE_PATCH, query={"fieldManager": FIELD_MANAGER})

    def create_if_absent(self, body: dict[str, Any]) -> bool:
        """Create `body`; an object of that name already existing is not an error (the
        request was acted on before). Returns whether it created."""
        resource = self._resource(body["apiVersion"], body["kind"])
        try:
            self.client.request("POST", resource.path(body["metadata"].get("namespace")),
                                body=body)
        except Conflict:
            return False
        return True

    def delete_if_exists(
        self, api_version: str, kind: str, name: str, namespace: str, owned_by: str
    ) -> bool:
        """Delete an object the operator generated earlier and no longer wants; objects not
        owned by `owned_by` (a uid) are left alone. Returns whether it deleted."""
        current = self.get(api_version, kind, name, namespace)
        owners = (current or {}).get("metadata", {}).get("ownerReferences") or []
        if not any(o.get("uid") == owned_by for o in owners):
            return False
        try:
            self.client.request(
                "DELETE", self._resource(api_version, kind).path(namespace, name),
                body={"propagationPolicy": "Background"})
        except NotFound:
            return False
        return True

    def secret_keys(self, namespace: str, name: str) -> set[str] | None:
        """The key names of a Secret, or None if it does not exist. Values are dropped here,
        so they can never reach status, events or logs."""
        return key_names(self.get("v1", "Secret", name, namespace))

    def _write_status(
        self, resource: ApiResource, name: str, namespace: str,
        patch: dict[str, Any], resource_version: str,
    ) -> dict[str, Any]:
        body = {"metadata": {"resourceVersion": resource_version}, "status": patch}
        return self.client.request(
            "PATCH", resource.path(namespace, name, "status"), body=body,
            content_type=MERGE_PATCH, query={"fieldManager": FIELD_MANAGER})

    def patch_status(
        self, api_version: str, kind: str, name: str, namespace: str,
        patch: dict[str, Any], resource_version: str,
    ) -> dict[str, Any] | None:
        """One merge patch of status, accepted only if the object is still at
        `resource_version` (the version the patch was computed from): one request, no read.
        Raises StatusConflict when it moved on; None when the object is gone."""
        resource = self._resource(api_version, kind)
        try:
            return self._write_status(resource, name, namespace, patch, resource_version)
        except Conflict as conflict:
            raise StatusConflict(f"{kind} {namespace}/{name} changed since it was read") \
                from conflict
        except NotFound:
            return None

    def update_status(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str,
        change: Callable[[dict[str, Any]], dict[str, Any] | None],
    ) -> dict[str, Any] | None:
        """Read the object, let `change` compute a status patch from it, write it.

        `change` returns None when nothing needs writing. A concurrent write makes the
        resourceVersion stale; the read-compute-write then repeats on fresh data.
        """
        resource = self._resource(api_version, kind)
        for _ in range(STATUS_CONFLICT_RETRIES):
            current = self.get(api_version, kind, name, namespace)
            if current is None:
                return None
            patch = change(current)
            if patch is None:
                return current
            try:
                return self._write_status(resource, name, namespace, patch,
                                          current["metadata"]["resourceVersion"])
            except Conflict:
                continue
            except NotFound:
                return None
        raise StatusConflict(
            f"{kind} {namespace}/{name}: status update conflicted {STATUS_CONFLICT_RETRIES} times"
        )
