"""The HTTP side of the Alertmanager receiver: `POST /alertmanager/webhook` on a port of its
own (aiohttp, which kopf already brings).

Checks run before anything of the request is trusted: the bearer token first (nothing of an
unauthenticated request is read), then Content-Type, the body size (read no further than the
limit) and the payload (`core.incident.alertmanager`). Only a request that passes them all is
applied. A refusal is a 4xx with the reason as JSON (`{"error": ...}`); a failure to record a
valid notification (API server unreachable, the token Secret unreadable) is a 503, which
Alertmanager retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from runbook_operator.core.incident.alertmanager import (
    DEFAULT_MAX_BODY_BYTES,
    ReceiverSettings,
    Rejected,
    WebhookPayload,
    check_content_type,
    check_size,
    check_token,
    parse_payload,
)

WEBHOOK_PATH = "/alertmanager/webhook"
READ_CHUNK = 64 * 1024

log = logging.getLogger(__name__)
#: The bearer token senders must present (may read a Secret; raises LookupError when it can't).
Token = Callable[[], Awaitable[str]]
#: Records a valid notification; returns what the sender is told (the incident it touched).
Apply = Callable[[WebhookPayload], Awaitable[Mapping[str, Any]]]


@dataclass(frozen=True)
class ReceiverConfig:
    """`runbook-operator run --alertmanager-*`: where the receiver listens, the Secret key
    holding its token, and how incidents are opened."""

    port: int
    token_namespace: str
    token_secret: str
    token_key: str
    settings: ReceiverSettings
    host: str = "0.0.0.0"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


class Unavailable(Exception):
    """The receiver cannot record notifications now (answered with 503)."""


async def _read_limited(request: web.Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it passes `limit`, whatever Content-Length said."""
    if request.content_length is not None:
        check_size(request.content_length, limit)
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(READ_CHUNK):
        size += len(chunk)
        check_size(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def make_app(token: Token, apply: Apply, max_body_bytes: int) -> web.Application:
    """The receiver's application: one route, every refusal with its reason."""

    async def webhook(request: web.Request) -> web.Response:
        try:
            try:
                expected = await token()
            except LookupError as error:
                raise Unavailable(f"the receiver's token is not readable: {error}") from None
            check_token(request.headers.get("Authorization"), expected)
            check_content_type(request.headers.get("Content-Type"))
            payload = parse_payload(await _read_limited(request, max_body_bytes))
            result = await apply(payload)
        except Rejected as rejected:
            log.warning("Alertmanager notification refused (%s): %s", rejected.status,
                        rejected.reason)
            return web.json_response({"error": rejected.reason}, status=rejected.status)
        except Unavailable as error:
            log.warning("Alertmanager notification not recorded: %s", error)
            return web.json_response({"error": str(error)}, status=503)
        return web.json_response(dict(result))

    app = web.Application(client_max_size=max_body_bytes)
    app.router.add_post(WEBHOOK_PATH, webhook)
    return app


async def serve(app: web.Application, host: str, port: int) -> None:
    """Serve `app` until cancelled (the operator's clean-up cancels it)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        log.info("Alertmanager receiver on %s:%s%s", host, port, WEBHOOK_PATH)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
