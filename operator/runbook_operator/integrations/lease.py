"""The coordination.k8s.io Lease the operator's replicas elect their leader on: read it, and
write it only if nobody else wrote it since (optimistic concurrency on resourceVersion)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from runbook_operator.core.leadership import Record


@dataclass(frozen=True)
class LeaseRef:
    namespace: str
    name: str


def _record(spec: client.V1LeaseSpec) -> Record:
    return Record(
        holder=spec.holder_identity or None,
        lease_seconds=spec.lease_duration_seconds or 0,
        acquired=spec.acquire_time,
        renewed=spec.renew_time,
        transitions=spec.lease_transitions or 0,
    )


def micro_time(moment: datetime | None) -> str | None:
    """A Lease's MicroTime: RFC 3339 with exactly six fractional digits, which the API server
    requires (`datetime.isoformat` drops them when they are zero)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _spec(record: Record) -> client.V1LeaseSpec:
    return client.V1LeaseSpec(
        holder_identity=record.holder,
        lease_duration_seconds=record.lease_seconds,
        acquire_time=micro_time(record.acquired),
        renew_time=micro_time(record.renewed),
        lease_transitions=record.transitions,
    )


class Leases:
    """Reads and conditional writes of one Lease."""

    def __init__(self, ref: LeaseRef, timeout: float) -> None:
        self.ref = ref
        self.timeout = timeout
        """Seconds one request may take: a leader must notice a hung renewal in time."""
        # No retries inside a request: the elector tries again every retry period anyway,
        # and urllib3 would log a warning for each retry of each try while the server is away.
        config = client.Configuration.get_default_copy()
        config.retries = 0
        self.api = client.CoordinationV1Api(client.ApiClient(config))

    def read(self) -> tuple[Record, str] | None:
        """The Lease's record and resourceVersion; None when there is no Lease."""
        try:
            lease = self.api.read_namespaced_lease(self.ref.name, self.ref.namespace,
                                               _request_timeout=self.timeout)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return _record(lease.spec), lease.metadata.resource_version

    def create(self, record: Record) -> str:
        """Create the Lease; fails with 409 if another instance created it first."""
        lease = client.V1Lease(
            metadata=client.V1ObjectMeta(name=self.ref.name, namespace=self.ref.namespace),
            spec=_spec(record))
        created = self.api.create_namespaced_lease(self.ref.namespace, lease,
                                                 _request_timeout=self.timeout)
        return created.metadata.resource_version

    def write(self, record: Record, resource_version: str) -> str:
        """Replace the Lease's record; fails with 409 if it changed since `resource_version`."""
        lease = client.V1Lease(
            metadata=client.V1ObjectMeta(name=self.ref.name, namespace=self.ref.namespace,
                                         resource_version=resource_version),
            spec=_spec(record))
        replaced = self.api.replace_namespaced_lease(self.ref.name, self.ref.namespace, lease,
                                                  _request_timeout=self.timeout)
        return replaced.metadata.resource_version
