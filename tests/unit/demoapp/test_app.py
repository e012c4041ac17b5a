from __future__ import annotations

import math
import threading
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from runbook_operator.demoapp.app import App, Settings, fails, serve
from runbook_operator.devcluster.waiting import free_ports, wait_for


@given(st.floats(min_value=0, max_value=1), st.integers(min_value=1, max_value=5000))
def test_failures_are_spread_evenly(rate: float, n: int) -> None:
    assert sum(fails(i, rate) for i in range(1, n + 1)) == math.floor(n * rate)


def test_settings_come_from_the_env_with_defaults() -> None:
    assert Settings.from_env({}) == Settings()
    settings = Settings.from_env({"VERSION": "v2", "ERROR_RATE": "0.05", "LATENCY_SECONDS": "0.1",
                                  "QUEUE_DRAIN_PER_SECOND": "5", "LISTEN_ADDRESS": "10.244.32.4",
                                  "PORT": "9000", "ADMIN_PORT": "9001",
                                  "SHUTDOWN_DELAY_SECONDS": "3"})
    assert settings == Settings("v2", 0.05, 0.1, 5.0, "10.244.32.4", 9000, 9001, 3.0)


@pytest.mark.parametrize("env", [{"ERROR_RATE": "1.5"}, {"LATENCY_SECONDS": "-1"},
                                 {"QUEUE_DRAIN_PER_SECOND": "0"},
                                 {"SHUTDOWN_DELAY_SECONDS": "-1"}])
def test_impossible_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        Settings.from_env(env)


def test_every_twentieth_answer_fails_at_five_percent() -> None:
    app = App(Settings(version="v3", error_rate=0.05), "pod-1")
    codes = [app.answer()[0] for _ in range(100)]
    assert [i for i, c in enumerate(codes, 1) if c == 500] == [20, 40, 60, 80, 100]
    assert app.answer()[1] == {"version": "v3", "pod": "pod-1", "code": 200}


def test_answered_orders_queue_up_only_with_a_drain_rate() -> None:
    unlimited = App(Settings(), "p")
    queued = App(Settings(queue_drain=2.0), "p")
    for _ in range(7):
        unlimited.answer()
        queued.answer()
    assert unlimited.metrics.backlog.labels("orders")._value.get() == 0
    assert queued.metrics.backlog.labels("orders")._value.get() == 7


@pytest.fixture
def running() -> Iterator[tuple[str, str]]:
    port, admin = free_ports(2)
    stop = threading.Event()
    settings = Settings(version="v9", error_rate=0.5, listen="127.0.0.1", port=port,
                        admin_port=admin)
    thread = threading.Thread(target=serve, args=(settings, "pod-9", stop), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: httpx.get(f"{base}/healthz", timeout=1).status_code == 200, "the app")
    yield base, f"http://127.0.0.1:{admin}"
    stop.set()
    thread.join(timeout=10)


def test_the_server_answers_counts_and_turns_unready_on_request(
        running: tuple[str, str]) -> None:
    running, admin = running
    answers = [httpx.get(f"{running}/checkout", timeout=5) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 500, 200, 500]
    assert answers[0].json() == {"version": "v9", "pod": "pod-9", "code": 200}
    assert answers[0].headers["X-Demo-Version"] == "v9"
    metrics = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(httpx.get(f"{running}/metrics").text)
               for s in f.samples}
    assert metrics[("http_requests_total", (("code", "200"),))] == 2
    assert metrics[("http_requests_total", (("code", "500"),))] == 2
    assert metrics[("http_request_duration_seconds_count", ())] == 4
    assert metrics[("demo_app_info", (("version", "v9"),))] == 1
    assert httpx.put(f"{running}/ready", content=b"false").status_code == 404
    assert httpx.get(f"{running}/ready").status_code == 200
    assert httpx.put(f"{admin}/ready", content=b"maybe").status_code == 400
    assert httpx.put(f"{admin}/ready", content=b"false").json() == {"ready": False}
    assert httpx.get(f"{running}/ready").status_code == 503
    assert httpx.put(f"{admin}/ready", content=b"true").json() == {"ready": True}
    assert httpx.get(f"{running}/ready").status_code == 200


def test_after_stop_it_answers_unready_for_its_shutdown_delay_then_stops() -> None:
    port, admin = free_ports(2)
    stop = threading.Event()
    settings = Settings(listen="127.0.0.1", port=port, admin_port=admin, shutdown_delay=1.5)
    thread = threading.Thread(target=serve, args=(settings, "pod-7", stop), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: httpx.get(f"{base}/healthz", timeout=1).status_code == 200, "the app")
    stop.set()
    wait_for(lambda: httpx.get(f"{base}/ready", timeout=1).status_code == 503, "unready")
    assert thread.is_alive()
    assert httpx.get(f"{base}/checkout", timeout=1).json()["pod"] == "pod-7"
    thread.join(timeout=10)
    assert not thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/checkout", timeout=1)
