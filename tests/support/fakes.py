"""Stand-ins that unit tests inject where the real thing would wait or need a cluster."""

from __future__ import annotations

import copy
from typing import Any

from runbook_operator.integrations.kubernetes import StatusConflict


class Sleeps:
    """An injected `sleep` that records the waits instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class FakeKube:
    """Holds one object like the API server does (resourceVersion moves on every write)
    and records every request."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.stored = copy.deepcopy(body)
        self.requests: list[str] = []

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None):
        self.requests.append("get")
        return copy.deepcopy(self.stored)

    def patch_status(self, api_version, kind, name, namespace, patch, resource_version):
        self.requests.append("patch")
        if resource_version != self.stored["metadata"]["resourceVersion"]:
            raise StatusConflict("moved on")
        return self._write(patch)

    def update_status(self, api_version, kind, name, namespace, change):
        """As Kube.update_status: no write when `change` finds nothing to change."""
        self.requests.append("update")
        patch = change(copy.deepcopy(self.stored))
        return copy.deepcopy(self.stored) if patch is None else self._write(patch)

    def event(self, *args: Any) -> None:
        self.requests.append("event")

    def _write(self, patch: dict[str, Any]) -> dict[str, Any]:
        status = self.stored.setdefault("status", {})
        for field, value in patch.items():
            if value is None:
                status.pop(field, None)
            else:
                status[field] = value
        meta = self.stored["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        return copy.deepcopy(self.stored)


class FakeObjects:
    """Objects of any kind held as the API server holds them (names unique per kind and
    namespace, resourceVersion moving on every write, status written only through the status
    calls), answering the Kube methods the incident sources use; every request is recorded."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.requests: list[str] = []
        self.version = 0

    def _key(self, kind: str, name: str, namespace: str | None) -> tuple[str, str, str]:
        return kind, namespace or "", name

    def _stamp(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        body["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(body)

    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        """Store `body` as it is (status included), as a test sets the scene."""
        meta = body["metadata"]
        meta.setdefault("creationTimestamp", f"2026-12-01T09:{self.version:02d}:00Z")
        stored = copy.deepcopy(body)
        self.objects[self._key(body["kind"], meta["name"], meta.get("namespace"))] = stored
        return self._stamp(stored)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for (k, _, _), o in sorted(self.objects.items()) if k == kind]

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None):
        self.requests.append(f"get {kind}")
        found = self.objects.get(self._key(kind, name, namespace))
        return copy.deepcopy(found) if found is not None else None

    def list(self, api_version: str, kind: str, namespaces: list[str | None],
             label_selector: str | None = None) -> list[dict[str, Any]]:
        """Equality (`k=v`) and set (`k in (a,b)`) selectors, as the sources send them."""
        self.requests.append(f"list {kind}")
        key, values = label_selector.split(" in ", 1) if " in " in (label_selector or "") else (
            (label_selector or "=").split("=", 1))
        wanted = set(values.strip("()").split(","))
        return [o for o in self.of_kind(kind)
                if o["metadata"].get("namespace") in namespaces or None in namespaces
                if not label_selector
                or (o["metadata"].get("labels") or {}).get(key.strip()) in wanted]

    def create_if_absent(self, body: dict[str, Any]) -> bool:
        self.requests.append(f"create {body['kind']}")
        meta = body["metadata"]
        if self._key(body["kind"], meta["name"], meta.get("namespace")) in self.objects:
            return False
        self.put({**copy.deepcopy(body), "status": {}})
        return True

    def _write_status(self, stored: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
        status = stored.setdefault("status", {})
        for field, value in patch.items():
            if value is None:
                status.pop(field, None)
            else:
                status[field] = value
        return self._stamp(stored)

    def patch_status(self, api_version, kind, name, namespace, patch, resource_version):
        self.requests.append(f"patch {kind}")
        stored = self.objects.get(self._key(kind, name, namespace))
        if stored is None:
            return None
        if resource_version != stored["metadata"]["resourceVersion"]:
            raise StatusConflict("moved on")
        return self._write_status(stored, patch)

    def event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.requests.append(f"event {involved['kind']} {reason}: {message}")

    def update_status(self, api_version, kind, name, namespace, change):
        self.requests.append(f"update {kind}")
        stored = self.objects.get(self._key(kind, name, namespace))
        if stored is None:
            return None
        patch = change(copy.deepcopy(stored))
        return copy.deepcopy(stored) if patch is None else self._write_status(stored, patch)
