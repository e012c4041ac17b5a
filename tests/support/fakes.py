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


class FakeCluster:
    """Holds objects of any kind like the API server does (resourceVersion and generation
    move on, status is a subresource) and records every request as `verb kind/name`."""

    def __init__(self, *bodies: dict[str, Any]) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.requests: list[str] = []
        self.events: list[tuple[str, str, str]] = []
        self.version = 100
        for body in bodies:
            self.put(body)

    @staticmethod
    def _key(kind: str, namespace: str | None, name: str) -> tuple[str, str, str]:
        return kind, namespace or "", name

    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        """Store `body` as its owner would write it (a spec change bumps the generation)."""
        meta = body["metadata"]
        key = self._key(body["kind"], meta.get("namespace"), meta["name"])
        stored = copy.deepcopy(body)
        stored["metadata"].setdefault("creationTimestamp",
                                      f"2026-12-01T09:{self.version % 60:02d}:00Z")
        old = self.objects.get(key)
        generation = (old or {}).get("metadata", {}).get("generation", 0)
        if old is None or old.get("spec") != stored.get("spec"):
            generation += 1
        self.version += 1
        stored["metadata"].update(generation=generation, resourceVersion=str(self.version))
        self.objects[key] = stored
        return copy.deepcopy(stored)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None):
        self.requests.append(f"get {kind}/{name}")
        found = self.objects.get(self._key(kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """Every stored object of `kind`, by namespace and name (no request recorded)."""
        return [copy.deepcopy(body) for (k, _, _), body in sorted(self.objects.items())
                if k == kind]

    def list(self, api_version: str, kind: str, namespaces: list[str | None],
             label_selector: str | None = None) -> list[dict[str, Any]]:
        """With equality (`k=v`) and set (`k in (a,b)`) selectors, as the operator sends."""
        self.requests.append(f"list {kind}")
        key, values = label_selector.split(" in ", 1) if " in " in (label_selector or "") else (
            (label_selector or "=").split("=", 1))
        wanted = set(values.strip("()").split(","))
        return [body for body in self.of_kind(kind)
                if None in namespaces or body["metadata"].get("namespace") in namespaces
                if not label_selector
                or (body["metadata"].get("labels") or {}).get(key.strip()) in wanted]

    def _status_write(self, kind: str, name: str, namespace: str,
                      patch: dict[str, Any]) -> dict[str, Any] | None:
        stored = self.objects.get(self._key(kind, namespace, name))
        if stored is None:
            return None
        status = stored.setdefault("status", {})
        for field, value in patch.items():
            if value is None:
                status.pop(field, None)
            else:
                status[field] = value
        self.version += 1
        stored["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(stored)

    def patch_status(self, api_version, kind, name, namespace, patch, resource_version):
        self.requests.append(f"patch {kind}/{name}")
        stored = self.objects.get(self._key(kind, namespace, name))
        if stored is not None and stored["metadata"]["resourceVersion"] != resource_version:
            raise StatusConflict("moved on")
        return self._status_write(kind, name, namespace, patch)

    def update_status(self, api_version, kind, name, namespace, change):
        self.requests.append(f"update {kind}/{name}")
        stored = self.objects.get(self._key(kind, namespace, name))
        if stored is None:
            return None
        patch = change(copy.deepcopy(stored))
        if patch is None:
            return copy.deepcopy(stored)
        return self._status_write(kind, name, namespace, patch)

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(f"apply {body['kind']}/{body['metadata']['name']}")
        return self.put(body)

    def create_if_absent(self, body: dict[str, Any]) -> bool:
        self.requests.append(f"create {body['kind']}/{body['metadata']['name']}")
        meta = body["metadata"]
        if self._key(body["kind"], meta.get("namespace"), meta["name"]) in self.objects:
            return False
        self.put(body)
        return True

    def merge_patch(self, api_version, kind, name, namespace, patch):
        self.requests.append(f"merge {kind}/{name}")
        stored = self.objects[self._key(kind, namespace, name)]
        _merge(stored, copy.deepcopy(patch))
        return copy.deepcopy(stored)

    def event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.requests.append(f"event {reason}")
        self.events.append((type_, reason, message))


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """A JSON merge patch (RFC 7386)."""
    for field, value in patch.items():
        if value is None:
            target.pop(field, None)
        elif isinstance(value, dict) and isinstance(target.get(field), dict):
            _merge(target[field], value)
        else:
            target[field] = value
