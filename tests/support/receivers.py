"""Real in-test receivers standing in for Slack, PagerDuty, webhooks and SMTP relays: they
record what they get, check nothing themselves, and fail on demand (status codes, delays)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from runbook_operator.devcluster.waiting import free_port


@dataclass
class Reply:
    """What the HTTP receiver answers to one request; `delay` holds the answer back (a
    timeout when longer than the client's)."""

    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    """When it arrived."""

    def json(self) -> Any:
        return json.loads(self.body)


class HTTPReceiver:
    """A real HTTP server on 127.0.0.1 in a thread. Answers come from `replies` in order,
    then `paths` by the request's path, then `default`."""

    def __init__(self, default: Reply | None = None,
                 paths: dict[str, Reply] | None = None) -> None:
        self.default = default or Reply()
        self.paths = paths or {}
        self.replies: list[Reply] = []
        self.requests: list[Received] = []
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def url(self, path: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def answer(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def bodies(self, path: str | None = None, status: str | None = None) -> list[Any]:
        """The JSON bodies received, in arrival order: all, or those POSTed to `path`, or
        those whose top-level `status` is `status` (an Alertmanager-v4 group's)."""
        found = [r.json() for r in self.requests if path is None or r.path == path]
        return [b for b in found if status is None or b.get("status") == status]

    def _next(self, path: str) -> Reply:
        return self.replies.pop(0) if self.replies else self.paths.get(path, self.default)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.requests.append(Received(self.path, headers, body))
                reply = receiver._next(self.path)
                if reply.delay:
                    receiver._release.wait(reply.delay)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    data = reply.body.encode()
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> HTTPReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    login: str | None


class SMTPReceiver:
    """A real SMTP server (aiosmtpd) on 127.0.0.1. DATA replies come from `replies` in order,
    then 250; with `credentials` it requires AUTH, with `tls_context` it offers STARTTLS."""

    def __init__(
        self,
        credentials: tuple[str, str] | None = None,
        tls_context: Any = None,
    ) -> None:
        self.replies: list[str] = []
        self.mails: list[Mail] = []
        self.port = free_port()
        self._credentials = credentials
        self._logins: dict[int, str] = {}
        kwargs: dict[str, Any] = {"auth_require_tls": False}
        if credentials is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True)
        if tls_context is not None:
            kwargs.update(tls_context=tls_context)
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **kwargs)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        if (login, password) != self._credentials:
            return AuthResult(success=False, handled=False)
        self._logins[id(session)] = login
        return AuthResult(success=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = self.replies.pop(0) if self.replies else "250 Message accepted"
        if reply.startswith("250"):
            self.mails.append(
                Mail(
                    mail_from=str(envelope.mail_from),
                    rcpt_tos=list(envelope.rcpt_tos),
                    content=bytes(envelope.original_content or b""),
                    login=self._logins.get(id(session)),
                )
            )
        return reply

    def __enter__(self) -> SMTPReceiver:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


#: PagerDuty accepts an event with 202 (a webhook with any 2xx; Slack wants 200 "ok").
PAGERDUTY_ACCEPTED = Reply(status=202, body='{"status":"success","message":"Event processed"}')
