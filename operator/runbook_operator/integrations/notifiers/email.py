"""Email through an SMTP relay with `smtplib`.

STARTTLS, when asked for, is mandatory: a relay that does not offer it fails the delivery
rather than receiving credentials and the message in plain text.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime

from runbook_operator.api.notificationchannel import EmailChannel
from runbook_operator.core.delivery import Answer, Notification, fingerprint, rfc3339, truncate

SUBJECT_LIMIT = 200
MESSAGE_ID_DOMAIN = "runbook-operator"


def subject(notification: Notification) -> str:
    """One line (a header cannot hold a line break): `[CRITICAL] title`, `[RESOLVED] title`."""
    n = notification
    label = {"clear": "RESOLVED", "acknowledged": "ACKNOWLEDGED"}.get(n.phase, n.severity.upper())
    return truncate(" ".join(f"[{label}] {n.title}".split()), SUBJECT_LIMIT)


def _text(notification: Notification) -> str:
    n = notification
    lines = [n.title, ""]
    if n.summary:
        lines += [n.summary, ""]
    lines += [
        f"Severity: {n.severity}",
        f"Event: {n.event}",
        f"Source: {n.source.kind} {n.source.namespace}/{n.source.name}",
        f"Time: {rfc3339(n.timestamp)}",
    ]
    lines += [f"{key}: {value}" for key, value in n.details.items()]
    if n.links:
        lines += ["", *(f"{link.text or link.href}: {link.href}" for link in n.links)]
    return "\n".join(lines) + "\n"


def render_email(spec: EmailChannel, notification: Notification) -> EmailMessage:
    """A plain-text message. Its Message-ID is derived from the event, so a retried send is
    recognisable as the same message; all messages about one dedup key share a thread."""
    n = notification
    message = EmailMessage()
    message["From"] = spec.from_
    message["To"] = ", ".join(spec.to)
    message["Subject"] = subject(n)
    message["Date"] = format_datetime(n.timestamp)
    event_id = fingerprint(n.dedup_key, n.event, rfc3339(n.timestamp))[:32]
    message["Message-ID"] = f"<{event_id}@{MESSAGE_ID_DOMAIN}>"
    message["References"] = f"<{fingerprint(n.dedup_key)[:32]}@{MESSAGE_ID_DOMAIN}>"
    message.set_content(_text(n))
    return message


def _reply_text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else reply


def send_email(
    spec: EmailChannel,
    message: EmailMessage,
    credentials: tuple[str, str] | None,
    timeout: float,
) -> Answer:
    """Send one message (blocking; run it in a thread). SMTP 4xx replies are transient, 5xx
    final, as the SMTP standard defines them."""
    try:
        with smtplib.SMTP(spec.smtp_host, spec.smtp_port, timeout=timeout) as smtp:
            smtp.ehlo()
            if spec.start_tls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if credentials is not None:
                smtp.login(*credentials)
            refused = smtp.send_message(message)
    except smtplib.SMTPNotSupportedError:
        return Answer(error="invalid", detail="the SMTP server does not offer STARTTLS")
    except smtplib.SMTPRecipientsRefused as error:
        code, reply = next(iter(error.recipients.values()))
        return Answer(status_code=code, body=f"all recipients refused: {_reply_text(reply)}")
    except smtplib.SMTPResponseException as error:
        return Answer(status_code=error.smtp_code, body=_reply_text(error.smtp_error))
    except smtplib.SMTPServerDisconnected:
        return Answer(error="connection", detail="the SMTP server closed the connection")
    except ssl.SSLError as error:
        return Answer(error="invalid", detail=f"TLS failed: {error.reason or type(error).__name__}")
    except TimeoutError:
        return Answer(error="timeout", detail=f"no answer within {timeout:g}s")
    except OSError as error:
        return Answer(error="connection", detail=type(error).__name__)
    if refused:
        rejected = ", ".join(f"{rcpt} ({code})" for rcpt, (code, _) in refused.items())
        return Answer(status_code=250, body=f"accepted, but refused for {rejected}")
    return Answer(status_code=250, body="accepted")
