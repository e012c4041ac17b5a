"""Which notifications an incident sends now, deduplicated against the records in its status
(so a restart repeats none): each step's page to its channels, the route's channels told when
the incident opens, the acknowledgement to every channel whose last word was a page (PagerDuty
acknowledges under the incident's one dedup key), and the resolution to every channel told
anything. Nothing that pages is planned once the incident is acknowledged or resolved."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from runbook_operator.api.common import NotificationRecord
from runbook_operator.core.incident.escalate import Page
from runbook_operator.core.incident.policy import Route
from runbook_operator.core.notify_plan import newest_records

IncidentEvent = Literal["opened", "escalated", "acknowledged", "resolved"]
PAGES = ("opened", "escalated")


@dataclass(frozen=True)
class Delivery:
    """One notification to send now."""

    channel: str
    event: IncidentEvent
    step: int
    """The step it belongs to (0: not a step of the ladder)."""
    page: Page | None = None


def _paged_in_climb(record: NotificationRecord | None, page: Page) -> bool:
    """The channel already got this step (or a later one) of this climb: sent before the
    operator stopped half-way through a step."""
    return (record is not None and record.event in PAGES and record.level >= page.step
            and record.time >= page.climb_started_at)


def plan(key: str, log: Sequence[NotificationRecord], pages: Sequence[Page], route: Route,
         acknowledged: bool, resolved: bool) -> list[Delivery]:
    """The deliveries due now for the incident whose dedup key is `key`."""
    newest = {channel: record for (fingerprint, channel), record in newest_records(log).items()
              if fingerprint == key}
    if resolved:
        return [Delivery(channel, "resolved", 0) for channel, record in sorted(newest.items())
                if record.event != "resolved"]
    if acknowledged:
        return [Delivery(channel, "acknowledged", record.level)
                for channel, record in sorted(newest.items()) if record.event in PAGES]
    # A channel on several of the steps due at once (after an outage) gets the highest.
    by_channel = {channel: Delivery(channel, "opened" if page.step == 1 else "escalated",
                                    page.step, page)
                  for page in pages for channel in page.channels
                  if not _paged_in_climb(newest.get(channel), page)}
    due = sorted(by_channel.values(), key=lambda delivery: delivery.step)
    paged = {channel for page in pages for channel in page.channels}
    due += [Delivery(channel, "opened", 0) for channel in route.channels
            if channel not in newest and channel not in paged]
    return due
