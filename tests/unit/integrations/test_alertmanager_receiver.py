"""integrations.alertmanager_receiver over real HTTP (aiohttp's test server on loopback): the
order of the checks, each refusal's status and reason, and that nothing is applied unless every
check passed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import ClientResponse, ClientSession
from aiohttp.test_utils import TestServer

from runbook_operator.core.incident.alertmanager import WebhookPayload
from runbook_operator.integrations.alertmanager_receiver import (
    WEBHOOK_PATH,
    Unavailable,
    make_app,
)

TOKEN = "t0ken-value"
LIMIT = 4096
PAYLOAD = {
    "version": "4", "groupKey": "{}:{alertname=\"A\"}", "truncatedAlerts": 0,
    "status": "firing", "receiver": "runbook", "groupLabels": {"alertname": "A"},
    "commonLabels": {"alertname": "A"}, "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "alerts": [{"status": "firing", "labels": {"alertname": "A"}, "annotations": {},
                "startsAt": "2026-12-01T09:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus/graph", "fingerprint": "0123456789abcdef"}],
}
JSON = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
Answer = tuple[int, dict[str, Any]]


class Recorder:
    """What the receiver applied, answering as the controller would (or failing)."""

    def __init__(self, fail: bool = False) -> None:
        self.applied: list[WebhookPayload] = []
        self.fail = fail

    async def __call__(self, payload: WebhookPayload) -> Mapping[str, Any]:
        if self.fail:
            raise Unavailable("the API server is unreachable")
        self.applied.append(payload)
        return {"incident": "a-0123456789", "created": True, "changed": True}


async def _token() -> str:
    return TOKEN


async def _no_token() -> str:
    raise LookupError("Secret 'am-token' not found")


def exchange(send: Callable[[ClientSession, str], Awaitable[ClientResponse]],
             recorder: Recorder, token: Callable[[], Awaitable[str]] = _token) -> Answer:
    """One request to a receiver on a real loopback port; its status and JSON answer."""

    async def scenario() -> Answer:
        server = TestServer(make_app(token, recorder, LIMIT))
        await server.start_server()
        try:
            async with ClientSession() as session:
                response = await send(session, str(server.make_url(WEBHOOK_PATH)))
                if response.content_type != "application/json":
                    return response.status, {"text": await response.text()}
                return response.status, await response.json()
        finally:
            await server.close()

    return asyncio.run(asyncio.wait_for(scenario(), 30))


def post(body: bytes, headers: Mapping[str, str] = JSON,
         ) -> Callable[[ClientSession, str], Awaitable[ClientResponse]]:
    return lambda session, url: session.post(url, data=body, headers=dict(headers))


def refused(body: bytes, headers: Mapping[str, str] = JSON,
            token: Callable[[], Awaitable[str]] = _token) -> Answer:
    recorder = Recorder()
    answer = exchange(post(body, headers), recorder, token)
    assert recorder.applied == []
    return answer


VALID = json.dumps(PAYLOAD).encode()


def test_a_valid_notification_is_applied_and_answered_with_the_incident() -> None:
    recorder = Recorder()
    assert exchange(post(VALID), recorder) == (
        200, {"incident": "a-0123456789", "created": True, "changed": True})
    (applied,) = recorder.applied
    assert applied.group_key == PAYLOAD["groupKey"]


def test_the_token_is_checked_before_anything_else() -> None:
    no_token = {"Content-Type": "text/plain"}
    status, answer = refused(b"garbage" * 2000, no_token)
    assert status == 401 and answer["error"].startswith("missing bearer token")
    status, answer = refused(VALID, {**JSON, "Authorization": "Bearer wrong"})
    assert (status, answer) == (401, {"error": "wrong bearer token"})


def test_content_type_size_and_payload_are_each_refused_with_their_reason() -> None:
    status, answer = refused(VALID, {**JSON, "Content-Type": "text/plain"})
    assert (status, answer["error"]) == (
        415, "Content-Type must be application/json, not 'text/plain'")
    status, answer = refused(b" " * (LIMIT + 1))
    assert (status, answer["error"]) == (
        413, f"body of {LIMIT + 1} bytes exceeds the limit of {LIMIT} bytes")
    assert refused(b"{garbage")[0] == 400
    status, answer = refused(json.dumps({**PAYLOAD, "version": "3"}).encode())
    assert status == 422 and "version '3'" in answer["error"]


def test_a_body_without_length_is_cut_off_at_the_limit() -> None:
    async def chunks() -> Any:
        for _ in range(LIMIT // 1024 + 2):
            yield b" " * 1024

    recorder = Recorder()
    status, answer = exchange(lambda session, url: session.post(url, data=chunks(),
                                                                headers=JSON), recorder)
    assert status == 413 and "exceeds the limit" in answer["error"]
    assert recorder.applied == []


def test_what_cannot_be_recorded_now_is_a_503_for_alertmanager_to_retry() -> None:
    status, answer = refused(VALID, token=_no_token)
    assert status == 503 and "Secret 'am-token' not found" in answer["error"]
    status, answer = exchange(post(VALID), Recorder(fail=True))
    assert (status, answer) == (503, {"error": "the API server is unreachable"})


def test_only_post_is_served() -> None:
    recorder = Recorder()
    status, _ = exchange(lambda session, url: session.get(url, headers=JSON), recorder)
    assert status == 405 and recorder.applied == []
