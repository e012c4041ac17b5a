"""The operator's HTTP client of the Kubernetes API: credentials, JSON requests, error types.

The operator reads and writes JSON on a dozen endpoints. The official client would do it with
its generated models and APIs imported into every operator process (kopf imports them too
whenever they are installed: 59 MiB for kopf with them, 41 without) and the dynamic client's
discovery state; at 5,000 AlertRules the operator's RSS was 204 MiB with it and 186 MiB with
this (bench/README.md). This is the part of it that the operator uses, on urllib3, with
credentials loaded the way kubectl loads them.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
import yaml

#: Connections to the API server kept open: below the number of threads that use them at once
#: (incident reconciles, notification deliveries, kopf's handlers), a connection is dropped
#: after each request and the next one pays a TLS handshake (urllib3 "Connection pool is full").
CONNECTIONS = 32
#: Seconds one request may take unless the caller says otherwise.
REQUEST_TIMEOUT = 60.0
#: Where the kubelet mounts a pod's ServiceAccount credentials.
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
#: A projected ServiceAccount token is rotated by the kubelet; re-read it this often.
TOKEN_FILE_REREAD_SECONDS = 60.0
#: An exec plugin's token is asked for again this long before it expires.
EXEC_TOKEN_MARGIN_SECONDS = 30.0
#: What a request raises when the API server cannot be reached (down, restarting, network).
APIUnreachable = urllib3.exceptions.HTTPError


class ConfigError(RuntimeError):
    """No usable credentials: no in-cluster ServiceAccount and no usable kubeconfig."""


class ApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, reason: str, body: str) -> None:
        self.status, self.reason, self.body = status, reason, body
        super().__init__(f"{status} {reason}: {self.message}")

    @property
    def message(self) -> str:
        """The API server's own message (it names the field), not the HTTP dump."""
        try:
            return str(json.loads(self.body)["message"])
        except (TypeError, ValueError, KeyError):
            return f"{self.status} {self.reason}"


class BadRequest(ApiError):
    """400: the request could not be understood (e.g. a malformed patch)."""


class Forbidden(ApiError):
    """403: the operator's identity may not do this."""


class NotFound(ApiError):
    """404: no such object."""


class Conflict(ApiError):
    """409: the object exists already, or changed since the version the write was based on."""


class Gone(ApiError):
    """410: a list continue token or watch version too old to serve."""


class Invalid(ApiError):
    """422: the object fails the API's validation (the message names the field)."""


class UnknownKind(ApiError):
    """The API server serves no such kind in that group/version (e.g. a CRD not installed)."""

    def __init__(self, api_version: str, kind: str) -> None:
        body = json.dumps({"message": f"the API server serves no {kind} in {api_version}"})
        super().__init__(404, "NotFound", body)


ERRORS_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest, 403: Forbidden, 404: NotFound, 409: Conflict, 410: Gone, 422: Invalid,
}


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


class Token:
    """A bearer token that may change: fixed, read from a file the kubelet rotates, or asked
    of a kubeconfig's exec plugin until it expires."""

    def __init__(
        self,
        fixed: str | None = None,
        path: Path | None = None,
        command: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fixed, self._path, self._command, self._clock = fixed, path, command, clock
        self._value: str | None = fixed
        self._expires: float | None = None if fixed else float("-inf")
        self.expiration: datetime | None = None
        self._lock = threading.Lock()

    def value(self) -> str | None:
        with self._lock:
            if self._expires is not None and self._clock() >= self._expires:
                self._value = self._fetch()
            return self._value

    def refresh(self) -> None:
        """Forget the value: the API server refused it (rotated, expired)."""
        with self._lock:
            if self._fixed is None:
                self._expires = float("-inf")

    def _fetch(self) -> str:
        if self._path is not None:
            self._expires = self._clock() + TOKEN_FILE_REREAD_SECONDS
            return self._path.read_text().strip()
        assert self._command is not None
        token, expiration = run_exec_plugin(self._command)
        self.expiration = expiration
        self._expires = (self._clock() + (expiration - datetime.now(UTC)).total_seconds()
                         - EXEC_TOKEN_MARGIN_SECONDS) if expiration else None
        return token


def run_exec_plugin(command: Mapping[str, Any]) -> tuple[str, datetime | None]:
    """A kubeconfig `exec` credential plugin's token and its expiry (client.authentication.k8s.io
    ExecCredential)."""
    env = {**os.environ, **{e["name"]: e["value"] for e in command.get("env") or []}}
    env["KUBERNETES_EXEC_INFO"] = json.dumps({
        "apiVersion": command.get("apiVersion", "client.authentication.k8s.io/v1"),
        "kind": "ExecCredential", "spec": {"interactive": False},
    })
    done = subprocess.run([command["command"], *(command.get("args") or [])], env=env,
                          capture_output=True, text=True, check=False, timeout=60)
    if done.returncode != 0:
        raise ConfigError(f"kubeconfig exec plugin {command['command']!r} exited "
                          f"{done.returncode}: {done.stderr.strip()[:200]}")
    status = json.loads(done.stdout).get("status") or {}
    if not status.get("token"):
        raise ConfigError(f"kubeconfig exec plugin {command['command']!r} gave no token "
                          "(client certificates from a plugin are not supported)")
    expiry = status.get("expirationTimestamp")
    return status["token"], datetime.fromisoformat(expiry) if expiry else None


@dataclass
class Connection:
    """Where the API server is and how to prove who we are, as kubectl would from the same
    environment. Certificate and key data are PEM bytes; paths are absolute."""

    server: str
    ca_path: str | None = None
    ca_data: bytes | None = None
    insecure: bool = False
    cert_path: str | None = None
    cert_data: bytes | None = None
    key_path: str | None = None
    key_data: bytes | None = None
    token: Token | None = None
    username: str | None = None
    password: str | None = None
    namespace: str | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(
            cafile=self.ca_path, cadata=self.ca_data.decode() if self.ca_data else None)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_path or self.cert_data:
            with _pem_file(self.cert_path, self.cert_data) as cert, \
                    _pem_file(self.key_path, self.key_data) as key:
                context.load_cert_chain(cert, key)
        return context

    def headers(self) -> dict[str, str]:
        headers = dict(self.extra_headers)
        token = self.token.value() if self.token else None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif self.username is not None:
            headers.update(urllib3.util.make_headers(
                basic_auth=f"{self.username}:{self.password or ''}"))
        return headers


@contextmanager
def _pem_file(path: str | None, data: bytes | None) -> Iterator[str | None]:
    """A path to PEM material: the given file, or the data in a private temporary file that
    is removed as soon as the SSL context has read it."""
    if path or not data:
        yield path
        return
    descriptor, temporary = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
        yield temporary
    finally:
        os.unlink(temporary)


def load_connection(kubeconfig: str | None = None) -> Connection:
    """The in-cluster ServiceAccount when deployed, else the kubeconfig: `kubeconfig`, then
    $KUBECONFIG (paths joined by os.pathsep, first value wins), then ~/.kube/config."""
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST") \
            and (SERVICE_ACCOUNT / "token").exists():
        return in_cluster_connection(os.environ)
    paths = kubeconfig or os.environ.get("KUBECONFIG") or str(Path("~/.kube/config"))
    return kubeconfig_connection([Path(p).expanduser() for p in paths.split(os.pathsep) if p])


def in_cluster_connection(env: Mapping[str, str], root: Path = SERVICE_ACCOUNT) -> Connection:
    host, port = env["KUBERNETES_SERVICE_HOST"], env.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:
        host = f"[{host}]"
    namespace = root / "namespace"
    return Connection(
        server=f"https://{host}:{port}",
        ca_path=str(root / "ca.crt"),
        token=Token(path=root / "token"),
        namespace=namespace.read_text().strip() if namespace.exists() else None,
    )


def kubeconfig_connection(paths: list[Path]) -> Connection:
    """The current context of the merged kubeconfig files."""
    current: str | None = None
    sections: dict[str, dict[str, tuple[dict[str, Any], Path]]] = {
        "contexts": {}, "clusters": {}, "users": {}}
    for path in paths:
        if not path.exists():
            continue
        config = yaml.safe_load(path.read_text()) or {}
        current = current or config.get("current-context")
        for section, entries in sections.items():
            for entry in config.get(section) or []:
                item = entry.get(section[:-1]) or {}
                entries.setdefault(entry["name"], (item, path.parent))
    if not current:
        raise ConfigError(f"no current context in kubeconfig {os.pathsep.join(map(str, paths))}")
    try:
        context, _ = sections["contexts"][current]
        cluster, cluster_dir = sections["clusters"][context["cluster"]]
        user, user_dir = sections["users"].get(context.get("user", ""), ({}, Path()))
    except KeyError as missing:
        raise ConfigError(f"kubeconfig context {current!r} names no {missing}") from None

    def resolve(value: str | None, base: Path) -> str | None:
        return str(base / Path(value).expanduser()) if value else None

    def data(value: str | None) -> bytes | None:
        return base64.b64decode(value) if value else None

    return Connection(
        server=cluster["server"].rstrip("/"),
        ca_path=resolve(cluster.get("certificate-authority"), cluster_dir),
        ca_data=data(cluster.get("certificate-authority-data")),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        cert_path=resolve(user.get("client-certificate"), user_dir),
        cert_data=data(user.get("client-certificate-data")),
        key_path=resolve(user.get("client-key"), user_dir),
        key_data=data(user.get("client-key-data")),
        token=_user_token(user, user_dir),
        username=user.get("username"),
        password=user.get("password"),
        namespace=context.get("namespace"),
        extra_headers={"Impersonate-User": user["as"]} if user.get("as") else {},
    )


def _user_token(user: Mapping[str, Any], base: Path) -> Token | None:
    provider_token = ((user.get("auth-provider") or {}).get("config") or {}).get("access-token")
    if user.get("token") or provider_token:
        return Token(fixed=user.get("token") or provider_token)
    if user.get("tokenFile"):
        return Token(path=base / Path(user["tokenFile"]).expanduser())
    if user.get("exec"):
        return Token(command=user["exec"])
    return None


class ApiClient:
    """JSON requests to the API server over a shared connection pool, rate limited by an
    optional token bucket; a refused token is reloaded and the request tried once more."""

    def __init__(
        self,
        connection: Connection,
        bucket: TokenBucket | None = None,
        retries: int = 3,
        timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.connection, self.bucket, self.timeout = connection, bucket, timeout
        # As the official client: a request that could not connect, or an idempotent one
        # whose answer was cut off (a kept-alive connection the server had closed), is tried
        # again at once; a POST or PATCH that may have landed is not.
        self.retries = urllib3.Retry(total=retries, redirect=0)
        self._pool = urllib3.PoolManager(
            num_pools=2, maxsize=CONNECTIONS, ssl_context=connection.ssl_context())

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """The decoded JSON answer; raises an ApiError for an error status, APIUnreachable
        when there is no answer."""
        params = {k: v for k, v in (query or {}).items() if v is not None}
        url = self.connection.server + path + (f"?{urlencode(params)}" if params else "")
        payload = None if body is None else json.dumps(body).encode()
        for attempt in range(2):
            if self.bucket is not None:
                delay = self.bucket.reserve()
                if delay > 0:
                    time.sleep(delay)
            headers = {"Accept": "application/json", **self.connection.headers()}
            if payload is not None:
                headers["Content-Type"] = content_type
            response = self._pool.request(
                method, url, body=payload, headers=headers, retries=self.retries,
                timeout=urllib3.Timeout(total=timeout or self.timeout))
            if response.status == 401 and attempt == 0 and self.connection.token:
                self.connection.token.refresh()
                continue
            break
        text = response.data.decode("utf-8", "replace")
        if response.status >= 400:
            error = ERRORS_BY_STATUS.get(response.status, ApiError)
            raise error(response.status, response.reason or "", text)
        return json.loads(text) if text else {}


def group_version_path(api_version: str) -> str:
    """The URL path of a group/version: the core group's is /api/v1."""
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


@dataclass(frozen=True)
class ApiResource:
    """Where objects of one kind live: the plural in the URL and whether it is namespaced."""

    api_version: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
        parts = [group_version_path(self.api_version)]
        if self.namespaced and namespace:
            parts += ["namespaces", quote(namespace, safe="")]
        parts.append(self.plural)
        if name:
            parts.append(quote(name, safe=""))
        if subresource:
            parts.append(subresource)
        return "/".join(parts)


class Discovery:
    """Kinds to their resources, asked of the API server once per group/version, and again
    for a kind it did not serve before (a CRD installed since)."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client
        self._known: dict[tuple[str, str], ApiResource] = {}

    def resource(self, api_version: str, kind: str) -> ApiResource:
        found = self._known.get((api_version, kind))
        if found is None:
            self._discover(api_version)
            found = self._known.get((api_version, kind))
            if found is None:
                raise UnknownKind(api_version, kind)
        return found

    def _discover(self, api_version: str) -> None:
        try:
            listing = self._client.request("GET", group_version_path(api_version))
        except NotFound:
            return
        for entry in listing.get("resources") or []:
            if "/" not in entry["name"]:
                self._known[(api_version, entry["kind"])] = ApiResource(
                    api_version, entry["name"], bool(entry.get("namespaced")))
