"""Slack incoming-webhook payloads: the documented shape, Block Kit limits, escaping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from runbook_operator.api.notificationchannel import SlackChannel
from runbook_operator.core.delivery import Link
from runbook_operator.integrations.notifiers.slack import escape, fit, render_slack

from tests.support.builders import notification

SPEC = SlackChannel.model_validate({"webhookURLSecretRef": {"name": "slack", "key": "url"}})


def test_payload_shape() -> None:
    assert render_slack(SPEC, notification()) == {
        "text": ":rotating_light: [HIGH] Backup db-nightly failed: pg_dump: connection refused",
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": ":rotating_light: Backup db-nightly failed",
                    "emoji": True,
                },
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": "pg_dump: connection refused"}},
        ],
        "attachments": [
            {
                "color": "#F2711C",
                "blocks": [
                    {
                        "type": "section",
                        "fields": [
                            {"type": "mrkdwn", "text": "*Severity*\nhigh"},
                            {"type": "mrkdwn", "text": "*Event*\nfailed"},
                            {"type": "mrkdwn", "text": "*Source*\nBackupPolicy prod/db-nightly"},
                        ],
                    },
                    {
                        "type": "section",
                        "text": {
                            "type": "mrkdwn",
                            "text": "*job*: db-nightly-backup-29012345\n"
                            "*reason*: BackoffLimitExceeded",
                        },
                    },
                    {
                        "type": "actions",
                        "elements": [
                            {
                                "type": "button",
                                "text": {"type": "plain_text", "text": "Dashboard", "emoji": True},
                                "url": "https://grafana.example.com/d/backups",
                            }
                        ],
                    },
                    {
                        "type": "context",
                        "elements": [
                            {"type": "mrkdwn", "text": "runbook-operator · 2026-03-01T12:00:05Z"}
                        ],
                    },
                ],
            }
        ],
    }


@pytest.mark.parametrize("severity, colour", [
    ("critical", "#D0021B"), ("high", "#F2711C"), ("medium", "#ECB22E"), ("warning", "#ECB22E"),
    ("low", "#439FE0"), ("info", "#9E9EA6"),
])
def test_the_colour_bar_shows_the_severity_until_the_problem_is_over(
    severity: str, colour: str
) -> None:
    problem = render_slack(SPEC, notification(severity=severity))
    acknowledged = render_slack(SPEC, notification(severity=severity, event="acknowledged"))
    over = render_slack(SPEC, notification(severity=severity, event="resolved"))
    assert problem["attachments"][0]["color"] == acknowledged["attachments"][0]["color"] == colour
    assert over["attachments"][0]["color"] == "#2EB67D"


def test_resolved_and_overrides() -> None:
    spec = SPEC.model_copy(update={"channel": "#ops", "username": "runbook"})
    body = render_slack(spec, notification(event="succeeded", summary="", details={}, links=[]))
    assert body["text"] == ":white_check_mark: [RESOLVED] Backup db-nightly failed"
    assert (body["channel"], body["username"]) == ("#ops", "runbook")
    assert [b["type"] for b in body["blocks"]] == ["header"]
    assert [b["type"] for b in body["attachments"][0]["blocks"]] == ["section", "context"]


def test_user_text_cannot_mention_or_forge_links() -> None:
    body = render_slack(SPEC, notification(summary="<!channel> see <https://evil|docs> & more"))
    assert body["blocks"][1]["text"]["text"] == (
        "&lt;!channel&gt; see &lt;https://evil|docs&gt; &amp; more"
    )
    assert "<!channel>" not in str(body)


def test_fit_never_splits_an_entity() -> None:
    assert fit(escape("a" * 8 + "&b"), 10) == "a" * 8 + "…"
    assert fit("short", 10) == "short"


def _blocks(body: dict) -> list[dict]:
    """The message's blocks and its attachments' blocks."""
    return [*body["blocks"], *(b for a in body.get("attachments", []) for b in a["blocks"])]


def _texts(body: dict) -> list[tuple[str, str]]:
    """(block type, text) of every text object."""
    found = []
    for block in _blocks(body):
        if "text" in block:
            found.append((block["type"], block["text"]["text"]))
        for item in block.get("fields", []):
            found.append(("field", item["text"]))
        for element in block.get("elements", []):
            text = element["text"]["text"] if element["type"] == "button" else element["text"]
            found.append((element["type"], text))
    return found


LIMITS = {"header": 150, "section": 3000, "field": 2000, "button": 75, "mrkdwn": 3000}


@given(
    title=st.text(min_size=1, max_size=400),
    summary=st.text(max_size=7000),
    details=st.dictionaries(st.text(max_size=50), st.text(max_size=3000), max_size=5),
    link_texts=st.lists(st.text(max_size=200), max_size=8),
)
def test_every_text_fits_block_kit_limits(title, summary, details, link_texts) -> None:
    links = [Link(href=f"https://example.com/{i}", text=t) for i, t in enumerate(link_texts)]
    body = render_slack(
        SPEC, notification(title=title, summary=summary, details=details, links=links)
    )
    assert len(body["text"]) <= 3000
    for kind, text in _texts(body):
        assert len(text) <= LIMITS[kind], kind
    actions = [b for b in _blocks(body) if b["type"] == "actions"]
    assert all(len(b["elements"]) <= 5 for b in actions)
    assert len(_blocks(body)) <= 50
