"""Incident escalation end to end: the operator, under its own ServiceAccount, pages in-test
PagerDuty receivers through NotificationChannels along an EscalationPolicy with short delays —
on time, never after an acknowledgement, exactly once across an operator killed between
levels, again after an acknowledgement times out, in repeated passes, and to whoever is on
call across a handover.

"Never" and "exactly once" are shown with a witness: a second incident on the same policy,
opened later, whose own later level the operator pages only after the deadline that must stay
silent for the first one has passed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client

from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.waiting import wait_for
from tests.support.builders import escalation_policy, incident
from tests.support.incidents import (
    acknowledge,
    at,
    dedup_key,
    details,
    events,
    pages,
    receiving,
    timeline_events,
)
from tests.support.kube import (
    ESCALATION_POLICIES,
    INCIDENTS,
    condition,
)

#: How late a page may arrive after its deadline on a busy shared machine (the scheduler
#: ticks every second; deliveries run in worker threads).
LATE = timedelta(seconds=5)


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
        signer = acknowledge(api, namespace, "checkout", acknowledged)
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
        assert status["escalation"]["level"] == 2 and status["acknowledgedBy"] == signer
        assert status["mttaSeconds"] == (acknowledged - opened).total_seconds()
        assert timeline_events(status)[:6] == [
            "Opened", "Escalated", "Notified", "Escalated", "Notified", "Acknowledged"]
        assert condition(INCIDENTS.get(api, namespace, "checkout"), "Ready")["reason"] == \
            "Acknowledged"
        assert dedup_key(receiver, "checkout") != dedup_key(receiver, "witness")


def test_an_operator_killed_between_levels_pages_the_next_level_once_and_on_time(
        api: client.ApiClient, namespace: str, running_operator: LocalOperator) -> None:
    levels = [{"after": "0s", "channels": ["l1"]}, {"after": "15s", "channels": ["l2"]},
              {"after": "25s", "channels": ["l3"]}]
    with receiving(api, namespace, "l1", "l2", "l3") as receiver:
        policy_ready(api, namespace, "restart", levels)
        INCIDENTS.create(api, namespace, incident("db", "restart"))
        opened = opened_at(api, namespace, "db")
        wait_for(lambda: (INCIDENTS.status(api, namespace, "db").get("escalation") or {}).get(
            "step") == 1, "L1 paged and recorded")

        running_operator.kill9()
        running_operator.start()
        assert datetime.now(UTC) < opened + timedelta(seconds=15), "restarted too late to tell"

        (l2,) = wait_for(lambda: pages(receiver, "l2", "db"), "L2 after the restart", timeout=60)
        assert on_time(l2.at, opened + timedelta(seconds=15))
        wait_for(lambda: pages(receiver, "l3", "db"), "L3, after which L2 is long done",
                 timeout=60)
        assert [len(pages(receiver, channel, "db")) for channel in ("l1", "l2", "l3")] == \
            [1, 1, 1]
        # A page goes out before its record reaches status: wait for L3's record.
        def l3_recorded() -> dict[str, Any] | None:
            status = INCIDENTS.status(api, namespace, "db")
            return status if status["escalation"]["step"] == 3 else None

        status = wait_for(l3_recorded, "L3 recorded")
        assert timeline_events(status).count("Escalated") == 3
        assert "nextDeadline" not in status["escalation"]


def test_an_acknowledgement_not_resolved_within_ack_timeout_retriggers_from_l1(
        api: client.ApiClient, namespace: str, running_operator: LocalOperator) -> None:
    levels = [{"after": "0s", "channels": ["l1"]}, {"after": "10m", "channels": ["l2"]}]
    with receiving(api, namespace, "l1", "l2") as receiver:
        policy_ready(api, namespace, "timeout", levels, ackTimeout="6s")
        INCIDENTS.create(api, namespace, incident("queue", "timeout"))
        wait_for(lambda: pages(receiver, "l1", "queue"), "L1 paged", timeout=30)
        acknowledged = datetime.now(UTC).replace(microsecond=0)
        signer = acknowledge(api, namespace, "queue", acknowledged)
        wait_for(lambda: events(receiver, "l1", "queue", "acknowledge"), "the acknowledgement")

        second = wait_for(lambda: pages(receiver, "l1", "queue")[1:], "the re-trigger's L1",
                          timeout=60)
        assert on_time(second[0].at, acknowledged + timedelta(seconds=6))
        obj = INCIDENTS.wait_condition(api, namespace, "queue", "Acknowledged", "False")
        assert condition(obj, "Acknowledged")["reason"] == "AcknowledgementExpired"
        status = obj["status"]
        assert "acknowledgedBy" not in status and status["escalation"]["retriggers"] == 1
        assert status["escalation"]["expiredAcknowledgement"]["by"] == signer
        assert status["mttaSeconds"] <= 30  # the first acknowledgement's
        retriggered = [e for e in status["timeline"] if e["event"] == "Retriggered"]
        assert len(retriggered) == 1 and "starts again from L1" in retriggered[0]["message"]

        acknowledge(api, namespace, "queue", datetime.now(UTC))
        wait_for(lambda: len(events(receiver, "l1", "queue", "acknowledge")) == 2,
                 "the second acknowledgement")
        INCIDENTS.patch(api, namespace, "queue", {"spec": {"status": "Resolved"}})
        wait_for(lambda: events(receiver, "l1", "queue", "resolve"), "the resolution")
        assert len(pages(receiver, "l1", "queue")) == 2 and not pages(receiver, "l2", "queue")
        assert len(events(receiver, "l1", "queue", "acknowledge")) == 2


def test_repeat_loops_from_its_level_and_stops_after_its_count(
        api: client.ApiClient, namespace: str, running_operator: LocalOperator) -> None:
    levels = [{"after": "0s", "channels": ["l1"]}, {"after": "3s", "channels": ["l2"]}]
    with receiving(api, namespace, "l1", "l2") as receiver:
        policy_ready(api, namespace, "loops", levels,
                     repeat={"count": 2, "every": "6s", "fromLevel": 2})
        INCIDENTS.create(api, namespace, incident("batch", "loops"))
        opened = opened_at(api, namespace, "batch")
        l2 = wait_for(lambda: len(pages(receiver, "l2", "batch")) >= 3 and
                      pages(receiver, "l2", "batch"), "three passes of L2", timeout=60)
        for page, offset in zip(l2, (3, 9, 15), strict=True):
            assert on_time(page.at, opened + timedelta(seconds=offset)), (page.at, offset)
        assert [details(page)["level"] for page in l2] == [
            "L2 of 2 (step 2)", "L2 of 2 (step 3, pass 2)", "L2 of 2 (step 4, pass 3)"]

        INCIDENTS.create(api, namespace, incident("witness", "loops"))
        wait_for(lambda: len(pages(receiver, "l2", "witness")) >= 2,
                 "the witness's second pass, after a fourth pass would have been", timeout=60)
        assert len(pages(receiver, "l2", "batch")) == 3
        assert len(pages(receiver, "l1", "batch")) == 1  # passes repeat from L2
        escalation = INCIDENTS.status(api, namespace, "batch")["escalation"]
        assert escalation["step"] == 4 and "nextDeadline" not in escalation


def test_a_rotation_pages_whoever_is_on_call_across_a_handover(
        api: client.ApiClient, namespace: str, running_operator: LocalOperator) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=48)
    rotation = {"name": "primary", "turn": "1m", "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "members": [{"name": "alice", "channel": "alice"},
                            {"name": "bob", "channel": "bob"}]}
    levels = [{"after": "0s", "channels": ["team"], "rotation": "primary"}]
    with receiving(api, namespace, "team", "alice", "bob") as receiver:
        policy_ready(api, namespace, "oncall", levels, rotations=[rotation],
                     repeat={"count": 3, "every": "8s"})
        (on_call,) = ESCALATION_POLICIES.status(api, namespace, "oncall")["onCall"]
        handover = start + timedelta(minutes=1)
        assert on_call == {"rotation": "primary", "member": "alice",
                           "until": handover.strftime("%Y-%m-%dT%H:%M:%SZ")}
        INCIDENTS.create(api, namespace, incident("api", "oncall"))

        team = wait_for(lambda: len(pages(receiver, "team", "api")) >= 4 and
                        pages(receiver, "team", "api"), "four passes", timeout=90)
        before = [p for p in team if p.at < handover]
        after = [p for p in team if p.at > handover + timedelta(seconds=2)]
        assert before and after
        assert all(details(p)["on call"].startswith("alice (rotation primary") for p in before)
        assert all(details(p)["on call"].startswith("bob (rotation primary") for p in after)
        assert len(pages(receiver, "alice", "api")) == len(before)
        # A pass pages the team's channel, then the member's: the last one may be in flight.
        wait_for(lambda: len(pages(receiver, "bob", "api")) >= len(after),
                 "bob paged on every pass after the handover")
        wait_for(lambda: [o["member"] for o in ESCALATION_POLICIES.status(
            api, namespace, "oncall")["onCall"]] == ["bob"], "bob on call in the policy's status")
