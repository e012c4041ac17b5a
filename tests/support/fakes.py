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
