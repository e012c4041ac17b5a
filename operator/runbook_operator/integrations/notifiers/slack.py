"""Slack incoming webhook: `{"text": fallback, "blocks": [...], "attachments": [{"color",
"blocks"}]}` within Block Kit's limits.

Slack rejects a whole message (400 invalid_blocks) when one block is over its limit, so every
text is cut to fit; user-supplied text is escaped so it cannot mention @channel or forge links.
"""

from __future__ import annotations

import re
from typing import Any

from runbook_operator.api.notificationchannel import RESOLVED_COLOR, SEVERITIES, SlackChannel
from runbook_operator.core.delivery import Notification, rfc3339, truncate

HEADER_LIMIT = 150
SECTION_TEXT_LIMIT = 3000
FIELD_TEXT_LIMIT = 2000
BUTTON_TEXT_LIMIT = 75
URL_LIMIT = 3000
MAX_BUTTONS = 5
_ICONS = {"problem": ":rotating_light:", "acknowledged": ":eyes:", "clear": ":white_check_mark:"}
_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,3}$")


def escape(text: str) -> str:
    """Slack's three control characters, so `<!channel>` or `<url|text>` stay literal."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fit(text: str, limit: int) -> str:
    """Cut already-escaped text to `limit` characters without splitting an `&amp;` entity."""
    if len(text) <= limit:
        return text
    return _PARTIAL_ENTITY.sub("", text[: limit - 1]) + "…"


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate(text, limit), "emoji": True}


def _mrkdwn(text: str, limit: int) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": fit(text, limit)}


def color(notification: Notification) -> str:
    """The attachment bar's colour: the severity's, green once the problem is over."""
    if notification.phase == "clear":
        return RESOLVED_COLOR
    return SEVERITIES[notification.severity].slack_color


def render_slack(spec: SlackChannel, notification: Notification) -> dict[str, Any]:
    """The incoming-webhook body for one notification: the headline as blocks, the details in
    an attachment whose colour bar shows the severity (Block Kit has no colour of its own)."""
    n = notification
    icon = _ICONS[n.phase]
    source = f"{n.source.kind} {n.source.namespace}/{n.source.name}"
    label = {"clear": "RESOLVED", "acknowledged": "ACKNOWLEDGED"}.get(n.phase, n.severity.upper())
    fallback = f"{icon} [{label}] {n.title}" + (f": {n.summary}" if n.summary else "")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(f"{icon} {n.title}", HEADER_LIMIT)}
    ]
    if n.summary:
        blocks.append({"type": "section", "text": _mrkdwn(escape(n.summary), SECTION_TEXT_LIMIT)})
    details: list[dict[str, Any]] = [
        {
            "type": "section",
            "fields": [
                _mrkdwn(f"*{label}*\n{escape(value)}", FIELD_TEXT_LIMIT)
                for label, value in (
                    ("Severity", n.severity),
                    ("Event", n.event),
                    ("Source", source),
                )
            ],
        }
    ]
    if n.details:
        lines = "\n".join(f"*{escape(k)}*: {escape(v)}" for k, v in n.details.items())
        details.append({"type": "section", "text": _mrkdwn(lines, SECTION_TEXT_LIMIT)})
    links = [link for link in n.links if len(link.href) <= URL_LIMIT][:MAX_BUTTONS]
    if links:
        details.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": _plain(link.text or link.href, BUTTON_TEXT_LIMIT),
                        "url": link.href,
                    }
                    for link in links
                ],
            }
        )
    details.append(
        {
            "type": "context",
            "elements": [_mrkdwn(f"runbook-operator · {rfc3339(n.timestamp)}", SECTION_TEXT_LIMIT)],
        }
    )
    body: dict[str, Any] = {
        "text": fit(escape(fallback), SECTION_TEXT_LIMIT),
        "blocks": blocks,
        "attachments": [{"color": color(n), "blocks": details}],
    }
    if spec.channel:
        body["channel"] = spec.channel
    if spec.username:
        body["username"] = spec.username
    return body
