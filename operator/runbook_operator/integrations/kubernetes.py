"""The operator's only door to the Kubernetes API for its own reads and writes.

Generated objects are written with server-side apply under one field manager, so fields that
users or other controllers own on them are not fought over. Status is written with a merge
patch guarded by resourceVersion, so concurrent writers never lose each other's updates.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from kubernetes import config
from kubernetes.client import ApiClient, Configuration
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError
from urllib3.exceptions import HTTPError

from runbook_operator.api.common import FIELD_MANAGER
from runbook_operator.integrations.secrets import key_names

STATUS_CONFLICT_RETRIES = 5
#: Connections to the API server kept open: below the number of threads that use them at once
#: (incident reconciles, notification deliveries, kopf's handlers), a connection is dropped
#: after each request and the next one pays a TLS handshake (urllib3 "Connection pool is full").
CONNECTIONS = 32
#: What a request raises when the API server cannot be reached (down, restarting, network).
APIUnreachable = HTTPError


class StatusConflict(RuntimeError):
    """Status could not be written after several conflicting concurrent updates."""


class TokenBucket:
    """A client-side request rate limit as client-go's: `rate` requests a second on average
    and up to `burst` at once after a quiet spell, so a start with thousands of objects does
    not flood the API server. Shared by threads; the clock is injected for the tests."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1, not {rate}/{burst}")
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take a token, borrowing against the refill when none is left: the seconds the
        caller must wait before its request (0 within the burst)."""
        with self._lock:
            now = self._clock()
            elapsed = max(0.0, now - self._updated)
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
            self._updated = now
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class ThrottledApiClient(ApiClient):
    """An ApiClient whose every request (the dynamic client's and discovery's alike) first
    takes a token from `bucket`."""

    def __init__(self, bucket: TokenBucket, configuration: Configuration | None = None) -> None:
        super().__init__(configuration)
        self.bucket = bucket

    def call_api(self, *args: Any, **kwargs: Any) -> Any:
        delay = self.bucket.reserve()
        if delay > 0:
            time.sleep(delay)
        return super().call_api(*args, **kwargs)


def api_client(qps: float, burst: int) -> ApiClient:
    """The client of the operator's own calls: limited to `qps` (burst `burst`), or not
    limited when qps is 0."""
    if qps == 0:
        return ApiClient()
    return ThrottledApiClient(TokenBucket(qps, burst))


def load_client_config() -> None:
    """In-cluster credentials when deployed, the kubeconfig (KUBECONFIG) otherwise; with a
    connection pool as large as the worker threads that share it, and the proxy (if any) read
    from the environment once."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    settings = Configuration.get_default_copy()
    settings.connection_pool_maxsize = CONNECTIONS
    # Fixed once: left to follow the environment, every request rescans it for a proxy.
    settings.proxy = settings.proxy
    Configuration.set_default(settings)


def _plain(_client: DynamicClient, decoded: dict[str, Any]) -> dict[str, Any]:
    """The dynamic client's serializer that keeps the decoded JSON: its default wraps every
    answer in a tree of `ResourceField`s, which `to_dict()` then copies again, so a list of
    1,000 objects was briefly held three times, and each status write's answer paid for both."""
    return decoded


class Kube:
    """Thin, dict-in/dict-out adapter over the dynamic client."""

    def __init__(self, api_client: ApiClient | None = None) -> None:
        self._dynamic = DynamicClient(api_client or ApiClient())

    def _resource(self, api_version: str, kind: str) -> Any:
        return self._dynamic.resources.get(api_version=api_version, kind=kind)

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply `body`, taking ownership of the fields it sets."""
        resource = self._resource(body["apiVersion"], body["kind"])
        result = self._dynamic.server_side_apply(
            resource,
            body=body,
            namespace=body["metadata"].get("namespace"),
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
            serializer=_plain,
        )
        return result

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        try:
            return self._resource(api_version, kind).get(name=name, namespace=namespace,
                                                         serializer=_plain)
        except NotFoundError:
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
            found = resource.get(namespace=namespace, label_selector=label_selector,
                                 serializer=_plain)
            items.extend(found["items"])
        return items

    def pages(
        self, api_version: str, kind: str, namespaces: list[str | None], size: int
    ) -> Iterator[list[dict[str, Any]]]:
        """All objects of a kind in the given namespaces (None: all), `size` at a time (the
        API server's limit and continue): a caller that works through one page before asking
        for the next holds one page, not every object of the kind at once."""
        resource = self._resource(api_version, kind)
        for namespace in namespaces:
            token = None
            while True:
                found = resource.get(namespace=namespace, limit=size, _continue=token,
                                     serializer=_plain)
                yield found["items"]
                token = (found.get("metadata") or {}).get("continue")
                if not token:
                    break

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
        self._resource("v1", "Event").create(body=body, namespace=meta["namespace"],
                                             serializer=_plain)

    def merge_patch(
        self, api_version: str, kind: str, name: str, namespace: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        """A JSON merge patch of fields the operator changes on purpose (e.g. an automated
        scale), recorded under its field manager."""
        return self._resource(api_version, kind).patch(
            body=patch, name=name, namespace=namespace,
            content_type="application/merge-patch+json", field_manager=FIELD_MANAGER,
            serializer=_plain,
        )

    def create_if_absent(self, body: dict[str, Any]) -> bool:
        """Create `body`; an object of that name already existing is not an error (the
        request was acted on before). Returns whether it created."""
        resource = self._resource(body["apiVersion"], body["kind"])
        try:
            resource.create(body=body, namespace=body["metadata"].get("namespace"),
                            serializer=_plain)
        except ConflictError:
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
            self._resource(api_version, kind).delete(
                name=name, namespace=namespace, body={"propagationPolicy": "Background"},
                serializer=_plain,
            )
        except NotFoundError:
            return False
        return True

    def secret_keys(self, namespace: str, name: str) -> set[str] | None:
        """The key names of a Secret, or None if it does not exist. Values are dropped here,
        so they can never reach status, events or logs."""
        return key_names(self.get("v1", "Secret", name, namespace))

    def patch_status(
        self, api_version: str, kind: str, name: str, namespace: str,
        patch: dict[str, Any], resource_version: str,
    ) -> dict[str, Any] | None:
        """One merge patch of status, accepted only if the object is still at
        `resource_version` (the version the patch was computed from): one request, no read.
        Raises StatusConflict when it moved on; None when the object is gone."""
        body = {"metadata": {"resourceVersion": resource_version}, "status": patch}
        try:
            return self._resource(api_version, kind).status.patch(
                body=body, name=name, namespace=namespace,
                content_type="application/merge-patch+json", field_manager=FIELD_MANAGER,
                serializer=_plain,
            )
        except ConflictError as conflict:
            raise StatusConflict(f"{kind} {namespace}/{name} changed since it was read") \
                from conflict
        except NotFoundError:
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
            try:
                current = resource.get(name=name, namespace=namespace, serializer=_plain)
            except NotFoundError:
                return None
            patch = change(current)
            if patch is None:
                return current
            body = {
                "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                "status": patch,
            }
            try:
                return resource.status.patch(
                    body=body,
                    name=name,
                    namespace=namespace,
                    content_type="application/merge-patch+json",
                    field_manager=FIELD_MANAGER,
                    serializer=_plain,
                )
            except ConflictError:
                continue
            except NotFoundError:
                return None
        raise StatusConflict(
            f"{kind} {namespace}/{name}: status update conflicted {STATUS_CONFLICT_RETRIES} times"
        )
