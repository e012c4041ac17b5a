from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from runbook_operator.demoapp.app import Settings, serve
from runbook_operator.demoapp.traffic import (
    NO_VERSION,
    Answer,
    Load,
    Tally,
    read_answer,
    send,
    until_only,
)
from runbook_operator.devcluster.waiting import free_ports, wait_for


def test_shares_count_every_answer_and_errors_per_version() -> None:
    tally = Tally([Answer("v1", 200)] * 7 + [Answer("v1", 500)] + [Answer("v2", 200)] * 2)
    assert tally.shares() == {"v1": 0.8, "v2": 0.2}
    assert tally.error_rate("v1") == 1 / 8 and tally.error_rate("v2") == 0
    assert tally.summary() == "v1 80.0% (8), v2 20.0% (2) of 10 answers; 5xx 10.0%"
    assert Tally().shares() == {} and Tally().error_rate() == 0


def test_an_answer_not_from_the_demo_app_has_no_version() -> None:
    request = httpx.Request("GET", "http://gw/")
    ours = httpx.Response(200, json={"version": "v2", "pod": "p-1"}, request=request)
    gateway = httpx.Response(502, text="Bad Gateway", request=request)
    assert read_answer(ours) == Answer("v2", 200, "p-1")
    assert read_answer(gateway) == Answer(NO_VERSION, 502, "")


@pytest.fixture
def app_url() -> Iterator[str]:
    port, admin = free_ports(2)
    stop = threading.Event()
    settings = Settings(version="v7", listen="127.0.0.1", port=port, admin_port=admin)
    thread = threading.Thread(target=serve, args=(settings, "pod-7", stop), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/"
    wait_for(lambda: httpx.get(url, timeout=1).status_code == 200, "the app")
    yield url
    stop.set()
    thread.join(timeout=10)


def test_send_splits_the_requests_between_its_workers(app_url: str) -> None:
    tally = send(app_url, 101, concurrency=4)
    assert tally.total == 101 and tally.shares() == {"v7": 1.0}
    assert tally.by_pod() == {"pod-7": 101}


def test_each_answer_says_when_its_request_was_sent(app_url: str) -> None:
    before = time.time()
    answers = send(app_url, 5).answers
    sent = [a.sent_at for a in answers]
    assert before <= sent[0] and sent == sorted(sent) and sent[-1] <= time.time()


def test_a_refused_connection_is_an_answer_without_a_version() -> None:
    [port] = free_ports(1)
    [answer] = send(f"http://127.0.0.1:{port}/", 1).answers
    assert (answer.version, answer.code) == (NO_VERSION, 0)


def test_until_only_counts_a_run_of_answers_from_the_version(app_url: str) -> None:
    _, sent = until_only(app_url, "v7", consecutive=5)
    assert sent == 5
    with pytest.raises(TimeoutError):
        until_only(app_url, "v8", consecutive=1, timeout=0.5)


def test_load_hands_out_what_it_sent_since_the_last_take(app_url: str) -> None:
    with Load(app_url, rate=50) as load:
        taken = wait_for(lambda: (t := load.take()).total and t, "some traffic")
    rest = load.take()
    assert set(taken.merged(rest).by_version()) == {"v7"}
    assert load.take().total == 0
