"""The demo app's server: answers ``GET /`` as its env says (version, error rate, latency),
counts what it answered in Prometheus' usual HTTP metrics, and keeps a small order queue.

Env (all optional):

``VERSION``                 the version it reports in every answer and in ``demo_app_info``
``ERROR_RATE``              share of answers that are ``500`` (0..1), spread evenly: at 0.05
                            exactly 5 of every 100 requests fail, so a test needs no margin
                            for chance
``LATENCY_SECONDS``         added to every answer
``QUEUE_DRAIN_PER_SECOND``  every successful answer queues one order, which a worker takes
                            this many per second (``queue_backlog_messages{queue="orders"}``);
                            unset: orders are taken at once
``LISTEN_ADDRESS``          the address to bind: the pod's own (``$(POD_IP)`` from the
                            downward API), as every pod of the local cluster shares one network
``PORT`` (8080)             ``/`` the answer, ``/metrics``, ``/ready``, ``/healthz``
``ADMIN_PORT`` (8081)       ``PUT /ready`` with ``true``/``false`` makes the readiness probe
                            pass or fail, as a test needs to take a pod out of rotation
``SHUTDOWN_DELAY_SECONDS``  after SIGTERM, how long it goes on answering (readiness failing)
                            before it stops: a gateway drops a stopping pod's endpoint a few
                            seconds after the pod is deleted, and sends it requests until then
                            (0, the default: it stops at once)
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST


@dataclass(frozen=True)
class Settings:
    version: str = "v1"
    error_rate: float = 0.0
    latency: float = 0.0
    queue_drain: float | None = None
    listen: str = "0.0.0.0"
    port: int = 8080
    admin_port: int = 8081
    shutdown_delay: float = 0.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        drain = env.get("QUEUE_DRAIN_PER_SECOND")
        settings = cls(
            version=env.get("VERSION", cls.version),
            error_rate=float(env.get("ERROR_RATE", "0")),
            latency=float(env.get("LATENCY_SECONDS", "0")),
            queue_drain=float(drain) if drain else None,
            listen=env.get("LISTEN_ADDRESS") or cls.listen,
            port=int(env.get("PORT", cls.port)),
            admin_port=int(env.get("ADMIN_PORT", cls.admin_port)),
            shutdown_delay=float(env.get("SHUTDOWN_DELAY_SECONDS", "0")),
        )
        if not 0 <= settings.error_rate <= 1:
            raise ValueError(f"ERROR_RATE must be between 0 and 1, not {settings.error_rate}")
        if settings.latency < 0 or settings.shutdown_delay < 0 or (
                settings.queue_drain is not None and settings.queue_drain <= 0):
            raise ValueError("LATENCY_SECONDS and SHUTDOWN_DELAY_SECONDS must be >= 0 and "
                             "QUEUE_DRAIN_PER_SECOND > 0")
        return settings


def fails(request_number: int, error_rate: float) -> bool:
    """Whether the `request_number`-th request (from 1) is answered 500: the failures are
    spread evenly, so the first n requests hold floor(n * error_rate) of them."""
    return math.floor(request_number * error_rate) > math.floor((request_number - 1) * error_rate)


class Metrics:
    """The series the example AlertRules and the gateway's analyses read."""

    def __init__(self, version: str) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter("http_requests_total", "HTTP answers by status code",
                                ["code"], registry=self.registry)
        self.duration = Histogram("http_request_duration_seconds",
                                  "Time to answer an HTTP request", registry=self.registry)
        self.backlog = Gauge("queue_backlog_messages", "Messages waiting in a queue",
                             ["queue"], registry=self.registry)
        info = Gauge("demo_app_info", "The running version", ["version"], registry=self.registry)
        info.labels(version).set(1)
        for code in ("200", "500"):  # both series exist from the start: rates are never NaN
            self.requests.labels(code)
        self.backlog.labels("orders")


class App:
    """The state behind both servers: request numbering, readiness, the order queue."""

    def __init__(self, settings: Settings, pod: str) -> None:
        self.settings = settings
        self.pod = pod
        self.metrics = Metrics(settings.version)
        self.ready = True
        self._lock = threading.Lock()
        self._requests = 0
        self._backlog = 0

    def answer(self) -> tuple[int, dict[str, str | int]]:
        """The next answer: its status code and JSON body."""
        with self._lock:
            self._requests += 1
            failed = fails(self._requests, self.settings.error_rate)
            if not failed and self.settings.queue_drain is not None:
                self._backlog += 1
                self.metrics.backlog.labels("orders").set(self._backlog)
        code = 500 if failed else 200
        return code, {"version": self.settings.version, "pod": self.pod, "code": code}

    def drain(self, stop: threading.Event) -> None:
        """The queue's worker: one order per 1/QUEUE_DRAIN_PER_SECOND seconds."""
        assert self.settings.queue_drain is not None
        while not stop.wait(1 / self.settings.queue_drain):
            with self._lock:
                self._backlog = max(0, self._backlog - 1)
                self.metrics.backlog.labels("orders").set(self._backlog)


def _handler(app: App, admin: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, code: int, body: bytes, content_type: str = "application/json",
                  extra: Mapping[str, str] | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            path = self.path.split("?", 1)[0]
            if admin:
                self._send(404, b"{}")
            elif path == "/metrics":
                self._send(200, generate_latest(app.metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._send(200, b"ok", "text/plain")
            elif path == "/ready":
                self._send(200 if app.ready else 503, b"ready" if app.ready else b"not ready",
                           "text/plain")
            else:
                started = time.perf_counter()
                if app.settings.latency:
                    time.sleep(app.settings.latency)
                code, body = app.answer()
                self._send(code, json.dumps(body).encode(),
                           extra={"X-Demo-Version": app.settings.version})
                app.metrics.requests.labels(str(code)).inc()
                app.metrics.duration.observe(time.perf_counter() - started)

        def do_PUT(self) -> None:  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).strip()
            if not admin or self.path != "/ready" or body not in (b"true", b"false"):
                self._send(404 if not admin else 400, b"{}")
                return
            app.ready = body == b"true"
            self._send(200, json.dumps({"ready": app.ready}).encode())

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            """Quiet: traffic generators send thousands of requests."""

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    address_family = socket.AF_INET


def serve(settings: Settings, pod: str, stop: threading.Event) -> None:
    """Both servers until `stop` is set, then `settings.shutdown_delay` more seconds."""
    app = App(settings, pod)
    servers = [_Server((settings.listen, settings.port), _handler(app, admin=False)),
               _Server((settings.listen, settings.admin_port), _handler(app, admin=True))]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    if settings.queue_drain is not None:
        threads.append(threading.Thread(target=app.drain, args=(stop,), daemon=True))
    for thread in threads:
        thread.start()
    print(f"demo app {settings.version} on {settings.listen}:{settings.port} (admin "
          f"{settings.admin_port}): error rate {settings.error_rate}, latency "
          f"{settings.latency}s", flush=True)
    stop.wait()
    app.ready = False
    time.sleep(settings.shutdown_delay)
    for server in servers:
        server.shutdown()
        server.server_close()


def pod_name() -> str:
    return os.environ.get("HOSTNAME") or socket.gethostname()
