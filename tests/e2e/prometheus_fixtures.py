"""Module-scoped fixtures for tests that need a real Prometheus (and Alertmanager) from Debian:
bind the ones a test module uses at its top level, e.g.
``prometheus = prometheus_fixtures.prometheus`` (pytest finds fixtures by module attribute).

Each importing module gets its own servers (about 6 s to the first scrape: Prometheus' target
discovery publishes its first targets after a 5 s throttle). Start times are logged at INFO
(``-o log_cli=true --log-cli-level=INFO`` shows them)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from runbook_operator.devcluster.prometheus import (
    AlertmanagerServer,
    MetricsExporter,
    PrometheusServer,
)

log = logging.getLogger(__name__)


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 recording the JSON bodies POSTed to it (Alertmanager's)."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.payloads.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                """Silent."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/alerts"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def exporter() -> Iterator[MetricsExporter]:
    with MetricsExporter() as server:
        yield server


@pytest.fixture(scope="module")
def prometheus(exporter: MetricsExporter) -> Iterator[PrometheusServer]:
    """Prometheus scraping `exporter` every second, its target already scraped once."""
    started = time.monotonic()
    with PrometheusServer([exporter.target]) as server:
        ready = time.monotonic() - started
        server.wait_targets_up()
        log.info(
            "Prometheus ready in %.2fs, first scrape after %.2fs",
            ready,
            time.monotonic() - started,
        )
        yield server


@pytest.fixture(scope="module")
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def alertmanager(webhook_receiver: WebhookReceiver) -> Iterator[AlertmanagerServer]:
    started = time.monotonic()
    with AlertmanagerServer(webhook_receiver.url) as server:
        log.info("Alertmanager ready in %.2fs", time.monotonic() - started)
        yield server
