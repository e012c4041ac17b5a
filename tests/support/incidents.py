"""What PagerDuty receivers got about incidents: one receiver serves every channel, each channel
posting to `/<channel>/v2/enqueue` (see `kube.create_pagerduty_channels`). A trigger names its
incident (`payload.component`); acknowledge and resolve carry only the incident's dedup key,
which the triggers tell."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from kubernetes import client

from tests.support.kube import INCIDENTS, create_pagerduty_channels, username
from tests.support.receivers import PAGERDUTY_ACCEPTED, HTTPReceiver, Received


def endpoints(receiver: HTTPReceiver, *channels: str) -> dict[str, str]:
    """The endpoint of each channel on `receiver`."""
    return {channel: receiver.url(f"/{channel}/v2/enqueue") for channel in channels}


@contextmanager
def receiving(api: client.ApiClient, namespace: str, *channels: str) -> Iterator[HTTPReceiver]:
    """A PagerDuty receiver serving `channels` (created in `namespace`); the namespace's
    incidents are deleted before it closes, so none pages a closed port."""
    with HTTPReceiver(PAGERDUTY_ACCEPTED) as receiver:
        create_pagerduty_channels(api, namespace, endpoints(receiver, *channels))
        try:
            yield receiver
        finally:
            INCIDENTS.delete_all(api, namespace)


def dedup_key(receiver: HTTPReceiver, incident: str) -> str | None:
    """The dedup key of `incident`, once any channel was paged for it."""
    return next((r.json()["dedup_key"] for r in receiver.requests
                 if r.json().get("payload", {}).get("component") == incident), None)


def events(receiver: HTTPReceiver, channel: str, incident: str,
           action: str | None = None) -> list[Received]:
    """PagerDuty events about `incident` on `channel` (trigger, acknowledge or resolve)."""
    key = dedup_key(receiver, incident)
    return [r for r in receiver.requests
            if r.path == f"/{channel}/v2/enqueue" and r.json()["dedup_key"] == key
            and (action is None or r.json()["event_action"] == action)]


def pages(receiver: HTTPReceiver, channel: str, incident: str) -> list[Received]:
    return events(receiver, channel, incident, "trigger")


def details(page: Received) -> dict[str, Any]:
    """What a page says besides its summary (PagerDuty's custom_details)."""
    return page.json()["payload"]["custom_details"]


def at(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def acknowledge(api: client.ApiClient, namespace: str, name: str, when: datetime) -> str:
    """What `kubectl runbook incident ack` writes, signed by whoever `api` acts as (the
    admission policy refuses any other name); returns that name."""
    by = username(api)
    INCIDENTS.patch(api, namespace, name, {"spec": {"acknowledgement": {
        "by": by, "at": when.strftime("%Y-%m-%dT%H:%M:%SZ")}}})
    return by


def timeline_events(status: Mapping[str, Any]) -> list[str]:
    return [entry["event"] for entry in status.get("timeline") or []]


#: What a source writes into an incident's timeline (the Incident controller adds the rest).
SOURCE_EVENTS = ("AlertsChanged", "SourceRecovered")


def source_events(status: Mapping[str, Any]) -> list[str]:
    """The timeline entries a source wrote, in order."""
    return [event for event in timeline_events(status) if event in SOURCE_EVENTS]
