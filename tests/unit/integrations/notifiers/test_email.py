"""Email: the rendered message, and delivery to a real in-test SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import random
import ssl
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from runbook_operator.api.notificationchannel import EmailChannel, NotificationChannelSpec
from runbook_operator.devcluster.certs import generate_pki
from runbook_operator.integrations.notifiers import Channel, deliver
from runbook_operator.integrations.notifiers.email import render_email, subject

from runbook_operator.devcluster.waiting import free_port
from tests.support.builders import NOW, notification
from tests.support.fakes import Sleeps
from tests.support.receivers import SMTPReceiver

MAIL = {"smtpHost": "127.0.0.1", "from": "runbook@example.com", "to": ["oncall@example.com"]}
AUTH = {
    "usernameSecretRef": {"name": "smtp", "key": "username"},
    "passwordSecretRef": {"name": "smtp", "key": "password"},
}
SECRETS = {("smtp", "username"): "runbook", ("smtp", "password"): "s3cr3t-pa55"}
# The test server takes logins without TLS on purpose (the client side is under test).
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def test_message() -> None:
    spec = EmailChannel.model_validate({**MAIL, "to": ["a@example.com", "b@example.com"]})
    message = render_email(spec, notification())
    assert message["From"] == "runbook@example.com"
    assert message["To"] == "a@example.com, b@example.com"
    assert message["Subject"] == "[HIGH] Backup db-nightly failed"
    assert message["Date"] == "Sun, 01 Mar 2026 12:00:05 +0000"
    assert message.get_content() == (
        "Backup db-nightly failed\n\n"
        "pg_dump: connection refused\n\n"
        "Severity: high\n"
        "Event: failed\n"
        "Source: BackupPolicy prod/db-nightly\n"
        "Time: 2026-03-01T12:00:05Z\n"
        "job: db-nightly-backup-29012345\n"
        "reason: BackoffLimitExceeded\n\n"
        "Dashboard: https://grafana.example.com/d/backups\n"
    )


def test_message_ids_identify_the_event_and_thread_by_dedup_key() -> None:
    spec = EmailChannel.model_validate(MAIL)
    failed = render_email(spec, notification())
    assert render_email(spec, notification())["Message-ID"] == failed["Message-ID"]
    resolved = render_email(spec, notification(event="resolved"))
    assert resolved["Message-ID"] != failed["Message-ID"]
    assert resolved["References"] == failed["References"]
    assert failed["Message-ID"].endswith("@runbook-operator>")


def test_subject_is_one_bounded_line() -> None:
    assert subject(notification(event="resolved")) == "[RESOLVED] Backup db-nightly failed"
    assert subject(notification(event="acknowledged")).startswith("[ACKNOWLEDGED] ")
    assert subject(notification(title="a\r\nBcc: x@evil.example")) == "[HIGH] a Bcc: x@evil.example"
    assert len(subject(notification(title="t" * 500))) == 200


def _channel(port: int, **email: Any) -> Channel:
    spec = NotificationChannelSpec.model_validate(
        {
            "email": {**MAIL, "smtpPort": port, "startTLS": False, **email},
            "retry": {"maxAttempts": 3, "initialBackoff": "1s", "maxBackoff": "4s"},
            "timeout": "5s",
        }
    )
    return Channel(name="mail", namespace="prod", spec=spec)


def _deliver(channel: Channel, secrets: dict | None = None, sleep: Sleeps | None = None):
    return asyncio.run(
        deliver(
            channel,
            notification(),
            secrets or {},
            sleep=sleep or Sleeps(),
            rng=random.Random(0),
            now=lambda: NOW,
        )
    )


def test_delivers_with_login() -> None:
    with SMTPReceiver(credentials=("runbook", "s3cr3t-pa55")) as server:
        records = _deliver(_channel(server.port, **AUTH), SECRETS)
    assert [(r.result, r.status_code, r.attempt) for r in records] == [("delivered", 250, 1)]
    assert records[0].message == "delivered to smtp://127.0.0.1:" + f"{server.port}: 250 accepted"
    [mail] = server.mails
    assert (mail.mail_from, mail.rcpt_tos, mail.login) == (
        "runbook@example.com",
        ["oncall@example.com"],
        "runbook",
    )
    received = message_from_bytes(mail.content, policy=default_policy)
    assert received["Subject"] == "[HIGH] Backup db-nightly failed"
    assert "pg_dump: connection refused" in received.get_content()


def test_wrong_password_is_final_and_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    wrong = {**SECRETS, ("smtp", "password"): "not-the-pa55word"}
    with SMTPReceiver(credentials=("runbook", "s3cr3t-pa55")) as server:
        records = _deliver(_channel(server.port, **AUTH), wrong)
    assert [(r.result, r.status_code) for r in records] == [("failed", 535)]
    assert not server.mails
    assert "not-the-pa55word" not in caplog.text + str(records)


def test_transient_4xx_is_retried_and_delivered_once() -> None:
    sleeps = Sleeps()
    with SMTPReceiver() as server:
        server.replies.append("451 4.3.0 Try again later")
        records = _deliver(_channel(server.port), sleep=sleeps)
    assert [(r.result, r.status_code, r.attempt) for r in records] == [
        ("retrying", 451, 1),
        ("delivered", 250, 2),
    ]
    assert len(server.mails) == 1 and len(sleeps.calls) == 1


def test_permanent_5xx_is_not_retried() -> None:
    with SMTPReceiver() as server:
        server.replies.append("554 5.7.1 Rejected by policy")
        records = _deliver(_channel(server.port))
    assert [(r.result, r.status_code) for r in records] == [("failed", 554)]
    assert "Rejected by policy" in records[0].message


def test_starttls_is_never_skipped() -> None:
    with SMTPReceiver() as server:
        records = _deliver(_channel(server.port, startTLS=True))
    assert [r.result for r in records] == ["failed"]
    assert "does not offer STARTTLS" in records[0].message
    assert not server.mails


def test_starttls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pki = generate_pki(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(pki.apiserver.cert, pki.apiserver.key)
    # The client verifies against the default trust store; point it at the test CA.
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca.cert))
    with SMTPReceiver(credentials=("runbook", "s3cr3t-pa55"), tls_context=server_tls) as server:
        records = _deliver(_channel(server.port, startTLS=True, **AUTH), SECRETS)
    assert [r.result for r in records] == ["delivered"]
    assert server.mails[0].login == "runbook"


def test_untrusted_certificate_fails_without_sending(tmp_path: Path) -> None:
    pki = generate_pki(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(pki.apiserver.cert, pki.apiserver.key)
    with SMTPReceiver(tls_context=server_tls) as server:
        records = _deliver(_channel(server.port, startTLS=True))
    assert [r.result for r in records] == ["failed"]
    assert "TLS failed" in records[0].message and not server.mails


def test_unreachable_server_is_retried_then_given_up() -> None:
    sleeps = Sleeps()
    records = _deliver(_channel(free_port()), sleep=sleeps)
    assert [r.result for r in records] == ["retrying", "retrying", "failed"]
    assert "gave up after 3 attempts" in records[-1].message
    assert len(sleeps.calls) == 2 and all(0 < s <= 4 for s in sleeps.calls)


def test_missing_credentials_fail_before_connecting() -> None:
    records = _deliver(_channel(free_port(), **AUTH), {("smtp", "username"): "runbook"})
    assert [(r.result, r.attempt) for r in records] == [("failed", 1)]
    assert records[0].message == "Secret 'smtp' key 'password' has no value"
