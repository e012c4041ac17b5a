"""The one outbound HTTP caller, against a real in-test receiver: answers and failures are
described without the URL's path and query or a secret header, whatever the receiver does."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import httpx
import pytest
from runbook_operator.core.delivery import Answer, Deliver, GiveUp, Retry, RetryRules
from runbook_operator.devcluster.waiting import free_port
from runbook_operator.integrations.webhooks import (
    MAX_BODY,
    CallFailed,
    Endpoint,
    attempts,
    call_json,
    post_json,
)

from tests.support.builders import NOW
from tests.support.fakes import Sleeps
from tests.support.receivers import HTTPReceiver, Reply

PATH = "/hooks/T0-s3cr3t-path"
QUERY = "token=s3cr3t-query"
HEADER = "Bearer s3cr3t-header"


@pytest.fixture
def receiver() -> Iterator[HTTPReceiver]:
    with HTTPReceiver() as server:
        yield server


def secret_endpoint(url: str) -> Endpoint:
    return Endpoint.secret(url, {"Authorization": HEADER})


def leaks(text: str, url: str) -> list[str]:
    return [s for s in (url, PATH, QUERY, HEADER) if s in text]


def post(endpoint: Endpoint, timeout: float = 2.0) -> Answer:
    async def once() -> Answer:
        async with httpx.AsyncClient() as client:
            return await post_json(client, endpoint, {"a": 1}, timeout)

    return asyncio.run(once())


def test_the_request_carries_payload_headers_and_user_agent(receiver: HTTPReceiver) -> None:
    answer = post(secret_endpoint(receiver.url(f"{PATH}?{QUERY}")))
    assert (answer.status_code, answer.body) == (200, "ok")
    (request,) = receiver.requests
    assert request.path == f"{PATH}?{QUERY}" and request.json() == {"a": 1}
    assert request.headers["authorization"] == HEADER
    assert request.headers["user-agent"] == "runbook-operator"


def test_an_echoed_secret_is_scrubbed_even_where_the_body_is_cut(
    receiver: HTTPReceiver,
) -> None:
    url = receiver.url(f"{PATH}?{QUERY}")
    cut_inside_the_path = "x" * (MAX_BODY - 5) + PATH
    receiver.answer(Reply(404, f"no hook {url} (auth {HEADER})"), Reply(500, cut_inside_the_path))
    endpoint = secret_endpoint(url)
    first, second = post(endpoint), post(endpoint)
    assert first.body == "no hook *** (auth ***)"
    assert second.body == "x" * (MAX_BODY - 5) + "***"
    assert not leaks(first.body + second.body, url) and "s3cr" not in second.body


def test_failures_are_described_by_their_kind_only(receiver: HTTPReceiver) -> None:
    receiver.answer(Reply(delay=5))
    timed_out = post(secret_endpoint(receiver.url(f"{PATH}?{QUERY}")), timeout=0.2)
    refused = post(secret_endpoint(f"http://127.0.0.1:{free_port()}{PATH}?{QUERY}"))
    unsupported = post(secret_endpoint(f"ftp://example.com{PATH}?{QUERY}"))
    assert (timed_out.error, timed_out.detail) == ("timeout", "ReadTimeout after 0.2s")
    assert (refused.error, refused.detail) == ("connection", "ConnectError")
    assert (unsupported.error, unsupported.detail) == (
        "invalid", "invalid request: UnsupportedProtocol")


def test_a_public_endpoint_hides_only_what_it_is_told() -> None:
    endpoint = Endpoint.public("https://events.pagerduty.com/v2/enqueue", also=("R0UT1NG",))
    assert endpoint.shown == "https://events.pagerduty.com"
    assert endpoint.scrub("key R0UT1NG at /v2/enqueue") == "key *** at /v2/enqueue"


def test_attempts_retry_as_decided_and_stop_at_the_first_final_answer() -> None:
    answers = [Answer(status_code=503), Answer(status_code=429, retry_after="3"),
               Answer(status_code=404), Answer(status_code=200)]
    sleeps, waits = Sleeps(), []

    async def send() -> Answer:
        return answers.pop(0)

    async def before() -> None:
        waits.append(len(answers))

    async def run() -> list:
        return [a async for a in attempts(
            send, "webhook", RetryRules(5, 1.0, 8.0), sleep=sleeps, rng=random.Random(1),
            now=lambda: NOW, before_each=before)]

    made = asyncio.run(run())
    assert [(a.number, type(a.decision)) for a in made] == [
        (1, Retry), (2, Retry), (3, GiveUp)]
    assert sleeps.calls[1] == 3.0 and 0.5 <= sleeps.calls[0] <= 1.0
    assert waits == [4, 3, 2] and answers == [Answer(status_code=200)]


def test_attempts_end_when_the_rules_allow_no_more() -> None:
    async def send() -> Answer:
        return Answer(error="connection", detail="ConnectError")

    async def run() -> list:
        return [a async for a in attempts(send, "webhook", RetryRules(2, 1.0, 1.0),
                                          sleep=Sleeps(), now=lambda: NOW)]

    last = asyncio.run(run())[-1]
    assert last.number == 2 and isinstance(last.decision, GiveUp)
    assert last.decision.reason == "ConnectError; gave up after 2 attempts"


def test_call_json_says_what_happened_without_the_secret_url(receiver: HTTPReceiver) -> None:
    url = receiver.url(f"{PATH}?{QUERY}")
    message = call_json(Endpoint.secret(url), {"rule": "r"}, timeout=2)
    assert message == f"called {receiver.url('')}: 200 ok"
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("reply, reason", [
    (Reply(404, f"unknown hook {PATH}"), "404 unknown hook ***"),
    (Reply(500, "boom"), "500 boom"),
    (Reply(delay=5), "ReadTimeout after 0.2s"),
])
def test_call_json_raises_a_redacted_failure(
    receiver: HTTPReceiver, reply: Reply, reason: str
) -> None:
    url = receiver.url(f"{PATH}?{QUERY}")
    receiver.answer(reply)
    with pytest.raises(CallFailed) as raised:
        call_json(Endpoint.secret(url, {"X-Token": HEADER}), {"rule": "r"}, timeout=0.2)
    assert str(raised.value) == f"{receiver.url('')}: {reason}"
    assert not leaks(str(raised.value), url)
    assert len(receiver.requests) == 1  # one attempt: an action is not repeated


def test_call_json_to_a_closed_port() -> None:
    url = f"http://127.0.0.1:{free_port()}{PATH}?{QUERY}"
    with pytest.raises(CallFailed) as raised:
        call_json(Endpoint.secret(url), {}, timeout=2)
    assert str(raised.value) == f"{url.split(PATH)[0]}: ConnectError"


def test_deliver_decision_of_a_2xx_for_a_generic_webhook(receiver: HTTPReceiver) -> None:
    receiver.answer(Reply(204, ""))

    async def run() -> list:
        async with httpx.AsyncClient() as client:
            endpoint = Endpoint.secret(receiver.url(PATH))
            return [a async for a in attempts(lambda: post_json(client, endpoint, {}, 2),
                                              "webhook", RetryRules(3, 1, 1))]

    (only,) = asyncio.run(run())
    assert isinstance(only.decision, Deliver) and only.decision.reason == "204"
