"""Incident escalation end to end: the operator, under its own ServiceAccount, pages in-test
PagerDuty receivers through NotificationChannels along an EscalationPolicy with short delays —
on time, never after an acknowledgement, exactly once across an operator killed between
levels, again after an acknowledgement times out, in repeated passes, and to whoever is on
call across a handover.

"Never" and "exactly once" are shown with a witness: a second incident on the same policy,
opened later, whose own later level the operator pages only after the deadline that must stay
silent for the first one has passed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from kubernetes import client

from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.waiting import wait_for
from tests.support.builders import escalation_policy, incident
from tests.support.incidents import (
    acknowledge,
    at,
    dedup_key,
    details,
    endpoints,
    events,
    pages,
    timeline_events,
)
from tests.support.kube import (
    ESCALATION_POLICIES,
    INCIDENTS,
    condition,
    create_pagerduty_channels,
)
from tests.support.receivers import PAGERDUTY_ACCEPTED, HTTPReceiver

#: How late a page may arrive after its deadline on a busy shared machine (the scheduler
#: ticks every second; deliveries run in worker threads).
LATE = timedelta(seconds=5)


@contextmanager
def receiving(api: client.ApiClient, namespace: str, *channels: str) -> Iterator[HTTPReceiver]:
    """A PagerDuty receiver for `channels`; the incidents go before it closes."""
    with HTTPReceiver(PAGERDUTY_ACCEPTED) as receiver:
        create_pagerduty_channels(api, namespace, endpoints(receiver, *channels))
        try:
            yield receiver
        finally:
            INCIDENTS.delete_all(api, namespace)


def policy_ready(api: client.ApiClient, namespace: str, name: str, levels: list[dict],
                 **spec: object) -> None:
    ESCALATION_POLICIES.create(api, namespace, escalation_policy(name, levels, **spec))
    ESCALATION_POLICIES.wait_ready(api, namespace, name)


def opened_at(api: client.ApiClient, namespace: str, name: str) -> datetime:
    status = wait_for(lambda: INCIDENTS.status(api, namespace, name).get("openedAt") and
                      INCIDENTS.status(api, namespace, name), f"{name} opened")
    return at(status["openedAt"])


def on_time(arrived: datetime, deadline: datetime) -> bool:
    return deadline <= arrived <= deadline + LATE


LADDER = [{"after": "0s", "channels": ["l1"]}, {"after": "5s", "channels": ["l2"]},
          {"after": "15s", "channels": ["l3"]}]


def test_the_ladder_climbs_on_time_and_an_acknowledgement_stops_it(
        api: client.ApiClient, namespace: str, running_operator: LocalOperator) -> None:
    with receiving(api, namespace, "l1", "l2", "l3") as receiver:
        policy_ready(api, namespace, "ladder", LADDER)
        INCIDENTS.create(api, namespace, incident("checkout", "ladder"))
        opened = opened_at(api, namespace, "checkout")

        (l1,) = wait_for(lambda: pages(receiver, "l1", "checkout"), "L1 paged", timeout=30)
        (l2,) = wait_for(lambda: pages(receiver, "l2", "checkout"), "L2 paged", timeout=30)
        assert on_time(l1.at, opened) and on_time(l2.at, opened + timedelta(seconds=5))
        acknowledged = datetime.now(UTC).replace(microsecond=0)
        acknowledge(api, namespace, "checkout", "alice", acknowledged)
        INCIDENTS.wait_condition(api, namespace, "checkout", "Acknowledged")

        # The witness opens now: its L3 comes after the acknowledged incident's L3 deadline.
        INCIDENTS.create(api, namespace, incident("witness", "ladder"))
        wait_for(lambda: pages(receiver, "l3", "witness"), "the witness's L3", timeout=60)
        assert opened + timedelta(seconds=15) < datetime.now(UTC)
        assert pages(receiver, "l3", "checkout") == []
        after_ack = [r for r in receiver.requests if r.at > acknowledged + timedelta(seconds=1)
                     and r.json()["dedup_key"] == l1.json()["dedup_key"]]
        assert {(r.path, r.json()["event_action"]) for r in after_ack} <= {
            ("/l1/v2/enqueue", "acknowledge"), ("/l2/v2/enqueue", "acknowledge")}
        for channel in ("l1", "l2"):
            assert len(events(receiver, channel, "checkout", "acknowledge")) == 1

        page = details(l2)
        assert page["incident"] == f"{namespace}/checkout" and page["incident severity"] == "P1"
        assert page["level"] == "L2 of 3 (step 2)"
        assert page["acknowledge"] == f"kubectl runbook incident ack checkout -n {namespace}"
        assert l2.json()["payload"]["severity"] == "error"  # P1 is high, PagerDuty's error
        status = INCIDENTS.status(api, namespace, "checkout")
        assert status["escalation"]["level"] == 2 and status["acknowledgedBy"] == "alice"
        assert status["mttaSeconds"] == (acknowledged - opened).total_seconds()
        assert timeline_events(status)[:6] == [
            "Opened", "Escalated", "Notified", "Escalated", "Notified", "Acknowledged"]
        assert condition(INCIDENTS.get(api, namespace, "checkout"), "Ready")["reason"] == \
            "Acknowledged"
        assert dedup_key(receiver, "checkout") != dedup_key(receiver, "witness")
