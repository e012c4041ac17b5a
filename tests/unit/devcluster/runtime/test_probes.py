from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from runbook_operator.devcluster.runtime.probes import (
    ProbeSettings,
    ProbeState,
    http_get,
    observe,
    probe_due,
    probe_port,
    tcp_socket,
)
from runbook_operator.devcluster.waiting import free_port

T0 = datetime(2026, 5, 1, tzinfo=UTC)
SETTINGS = ProbeSettings.of({"initialDelaySeconds": 5, "periodSeconds": 2,
                             "successThreshold": 2, "failureThreshold": 2})


def test_defaults_are_the_apis() -> None:
    assert ProbeSettings.of({}) == ProbeSettings(timedelta(0), timedelta(seconds=10), 1.0, 1, 3)


def test_probes_wait_for_the_initial_delay_then_run_each_period() -> None:
    state = ProbeState()
    assert not probe_due(SETTINGS, state, T0, T0 + timedelta(seconds=4))
    assert probe_due(SETTINGS, state, T0, T0 + timedelta(seconds=5))
    probed = observe(SETTINGS, state, True, T0 + timedelta(seconds=5))
    assert not probe_due(SETTINGS, probed, T0, T0 + timedelta(seconds=6))
    assert probe_due(SETTINGS, probed, T0, T0 + timedelta(seconds=7))


def test_readiness_needs_consecutive_results_to_change() -> None:
    results = [True, False, True, True, False, True, False, False, True]
    state = ProbeState()
    seen = []
    for ok in results:
        state = observe(SETTINGS, state, ok, T0)
        seen.append(state.ready)
    assert seen == [False, False, False, True, True, True, True, False, False]


def test_named_ports_come_from_the_container() -> None:
    container = {"ports": [{"name": "http", "containerPort": 8080}]}
    assert probe_port("http", container) == 8080
    assert probe_port(9090, container) == probe_port("9090", container) == 9090
    with pytest.raises(ValueError):
        probe_port("metrics", container)


@pytest.fixture
def server():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            code = 200 if self.path == "/ready" else 503
            if self.headers.get("X-Probe") == "redirect":
                code = 302
            self.send_response(code)
            self.end_headers()

        def log_message(self, *args) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_http_probes_pass_from_200_to_399(server: int) -> None:
    container = {"ports": [{"name": "web", "containerPort": server}]}
    assert http_get({"path": "/ready", "port": "web"}, container, "127.0.0.1", 2)
    assert not http_get({"path": "/other", "port": server}, container, "127.0.0.1", 2)
    headers = [{"name": "X-Probe", "value": "redirect"}]
    assert http_get({"path": "/other", "port": server, "httpHeaders": headers}, container,
                    "127.0.0.1", 2)
    assert tcp_socket({"port": server}, container, "127.0.0.1", 2)


def test_probes_of_nothing_listening_fail() -> None:
    closed = free_port()
    assert not http_get({"port": closed}, {}, "127.0.0.1", 1)
    assert not tcp_socket({"port": closed}, {}, "127.0.0.1", 1)
