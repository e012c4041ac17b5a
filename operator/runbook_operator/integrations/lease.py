"""The coordination.k8s.io Lease the operator's replicas elect their leader on: read it, and
write it only if nobody else wrote it since (optimistic concurrency on resourceVersion)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runbook_operator.core.leadership import Record
from runbook_operator.integrations.kubeapi import ApiClient, ApiResource, Connection, NotFound

LEASES = ApiResource("coordination.k8s.io/v1", "leases", namespaced=True)


@dataclass(frozen=True)
class LeaseRef:
    namespace: str
    name: str


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _record(spec: dict[str, Any]) -> Record:
    return Record(
        holder=spec.get("holderIdentity") or None,
        lease_seconds=spec.get("leaseDurationSeconds") or 0,
        acquired=_time(spec.get("acquireTime")),
        renewed=_time(spec.get("renewTime")),
        transitions=spec.get("leaseTransitions") or 0,
    )


def micro_time(moment: datetime | None) -> str | None:
    """A Lease's MicroTime: RFC 3339 with exactly six fractional digits, which the API server
    requires (`datetime.isoformat` drops them when they are zero)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _spec(record: Record) -> dict[str, Any]:
    spec = {
        "holderIdentity": record.holder,
        "leaseDurationSeconds": record.lease_seconds,
        "acquireTime": micro_time(record.acquired),
        "renewTime": micro_time(record.renewed),
        "leaseTransitions": record.transitions,
    }
    return {key: value for key, value in spec.items() if value is not None}


class Leases:
    """Reads and conditional writes of one Lease."""

    def __init__(self, ref: LeaseRef, timeout: float, connection: Connection) -> None:
        self.ref = ref
        # No retries inside a request: the elector tries again every retry period anyway,
        # and a leader must notice a hung renewal within `timeout` seconds.
        self.client = ApiClient(connection, retries=0, timeout=timeout)

    def _lease(self, record: Record, resource_version: str | None = None) -> dict[str, Any]:
        metadata = {"name": self.ref.name, "namespace": self.ref.namespace}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        return {"apiVersion": LEASES.api_version, "kind": "Lease", "metadata": metadata,
                "spec": _spec(record)}

    def read(self) -> tuple[Record, str] | None:
        """The Lease's record and resourceVersion; None when there is no Lease."""
        try:
            lease = self.client.request("GET", LEASES.path(self.ref.namespace, self.ref.name))
        except NotFound:
            return None
        return _record(lease.get("spec") or {}), lease["metadata"]["resourceVersion"]

    def create(self, record: Record) -> str:
        """Create the Lease; fails with 409 if another instance created it first."""
        created = self.client.request("POST", LEASES.path(self.ref.namespace),
                                      body=self._lease(record))
        return created["metadata"]["resourceVersion"]

    def write(self, record: Record, resource_version: str) -> str:
        """Replace the Lease's record; fails with 409 if it changed since `resource_version`."""
        replaced = self.client.request(
            "PUT", LEASES.path(self.ref.namespace, self.ref.name),
            body=self._lease(record, resource_version))
        return replaced["metadata"]["resourceVersion"]
