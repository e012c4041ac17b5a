"""An Incident's life end to end, beyond escalation: resolution writes the postmortem and MTTA
and MTTR (status and metrics), the whole timeline lives in a ConfigMap, a postmortem is kept
after the Incident only when asked, severity routes, and an incident or policy that cannot page
anyone says so."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kubernetes import client

from runbook_operator.devcluster.demo import LocalEndpoints, example_documents, localize
from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.waiting import wait_for
from tests.support.builders import escalation_policy, incident
from tests.support.incidents import (
    acknowledge,
    at,
    events,
    pages,
    receiving,
    timeline_events,
)
from tests.support.kube import (
    ESCALATION_POLICIES,
    INCIDENTS,
    condition,
    configmap_data,
    kind,
)
from tests.support.operator_metrics import counter, histogram
from tests.support.receivers import PAGERDUTY_ACCEPTED, HTTPReceiver, Reply

ONE_LEVEL = [{"after": "0s", "channels": ["l1"]}]
REPO = Path(__file__).resolve().parents[2]
INCIDENT_EXAMPLES = {"Secret", "NotificationChannel", "EscalationPolicy", "Incident"}


def events_of(api: client.ApiClient, namespace: str, name: str) -> list[tuple[str, str]]:
    found = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}")
    return [(event.reason, event.message) for event in found.items]


def test_resolution_writes_the_postmortem_with_mtta_and_mttr(
        api: client.ApiClient, namespace: str, running_operator: LocalOperator) -> None:
    mtta_before = histogram(running_operator, "runbook_incident_mtta_seconds", {"severity": "P0"})
    mttr_before = histogram(running_operator, "runbook_incident_mttr_seconds", {"severity": "P0"})
    with receiving(api, namespace, "l1") as receiver:
        ESCALATION_POLICIES.create(api, namespace, escalation_policy("one", ONE_LEVEL))
        INCIDENTS.create(api, namespace, incident(
            "payments", "one", severity="P0", commander="carol",
            description="Card payments fail with 502 since the 14:00 deploy.",
            impact={"services": ["payments", "checkout"], "usersAffected": 5000,
                    "summary": "No card payment succeeds."}))
        wait_for(lambda: pages(receiver, "l1", "payments"), "L1 paged", timeout=30)
        # The page goes out before the status that records it is written.
        opened = at(wait_for(lambda: INCIDENTS.status(api, namespace, "payments").get("openedAt"),
                             "openedAt in status"))
        acknowledged = datetime.now(UTC).replace(microsecond=0)
        signer = acknowledge(api, namespace, "payments", acknowledged)
        INCIDENTS.wait_condition(api, namespace, "payments", "Acknowledged")
        note = {"at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "by": signer,
                "text": "Rolled back to v41 | payments recover"}
        INCIDENTS.patch(api, namespace, "payments", {"spec": {"notes": [note],
                                                              "status": "Resolved"}})

        resolved = INCIDENTS.wait_condition(api, namespace, "payments", "Resolved", timeout=60)
        status = resolved["status"]
        assert status["mttaSeconds"] == (acknowledged - opened).total_seconds()
        assert status["mttrSeconds"] == (at(status["resolvedAt"]) - opened).total_seconds()
        assert status["postmortemRef"] == "payments-postmortem"
        assert condition(resolved, "Ready")["reason"] == "Resolved"
        (resolve,) = wait_for(lambda: events(receiver, "l1", "payments", "resolve"),
                              "PagerDuty resolved under the incident's dedup key")

        text = configmap_data(api, namespace, "payments-postmortem")["postmortem.md"]
        assert text.startswith("# Postmortem: payments is down\n")
        for line in ("| Severity | P0 |", "| Commander | carol |",
                     "Card payments fail with 502 since the 14:00 deploy.",
                     "- Services: payments, checkout", "- Users affected: 5000",
                     f"| Acknowledged | {acknowledged:%Y-%m-%dT%H:%M:%SZ} by {signer} |",
                     "## Root cause", "## Action items", "| _To be written_ | | | |",
                     "Rolled back to v41 \\| payments recover",
                     "- Escalation: EscalationPolicy one: reached L1 (step 1)"):
            assert line in text, line
        mtta = int(status["mttaSeconds"])
        assert f"- Time to acknowledge (MTTA): {mtta}s" in text or \
            f"- Time to acknowledge (MTTA): {mtta // 60}m" in text
        rows = [line for line in text.splitlines() if line.startswith("| 20")]
        assert [row.split(" | ")[1] for row in rows][:5] == [
            "Opened", "Assigned", "Escalated", "Notified", "Acknowledged"]
        assert "| Assigned |  | commander: carol |" in text
        assert "Resolved" in [row.split(" | ")[1] for row in rows]

        def stored() -> list[str]:
            text = configmap_data(api, namespace, "payments-timeline")["timeline.jsonl"]
            return [json.loads(line)["event"] for line in text.splitlines()]

        final = INCIDENTS.status(api, namespace, "payments")
        assert final["timelineTotal"] == len(final["timeline"])  # all of it fits in status
        wait_for(lambda: stored() == timeline_events(final), "the whole timeline stored")
        assert stored()[-1] == "PostmortemWritten"
        assert ("Resolved", "resolved; MTTR " + text.split("(MTTR): ")[1].split("\n")[0]) in \
            events_of(api, namespace, "payments")

        count, total = histogram(running_operator, "runbook_incident_mtta_seconds",
                                 {"severity": "P0"})
        assert (count - mtta_before[0], total - mtta_before[1]) == (1, status["mttaSeconds"])
        count, total = histogram(running_operator, "runbook_incident_mttr_seconds",
                                 {"severity": "P0"})
        assert (count - mttr_before[0], total - mttr_before[1]) == (1, status["mttrSeconds"])
        assert resolve.json()["dedup_key"] == pages(receiver, "l1", "payments")[0].json()[
            "dedup_key"]


def test_a_postmortem_outlives_its_incident_only_when_asked(
        api: client.ApiClient, namespace: str, running_operator: LocalOperator) -> None:
    ESCALATION_POLICIES.create(api, namespace, escalation_policy("one", ONE_LEVEL))
    kept = incident("kept", "one", status="Resolved")
    kept["metadata"]["annotations"] = {"runbook.dev/keep-postmortem": "true"}
    INCIDENTS.create(api, namespace, kept)
    INCIDENTS.create(api, namespace, incident("dropped", "one", status="Resolved"))
    for name in ("kept", "dropped"):
        wait_for(lambda: configmap_data(api, namespace, f"{name}-postmortem"),
                 f"the postmortem of {name}")
        wait_for(lambda: configmap_data(api, namespace, f"{name}-timeline"),
                 f"the timeline of {name}")

    INCIDENTS.delete(api, namespace, "kept")
    INCIDENTS.delete(api, namespace, "dropped")
    for name in ("dropped-postmortem", "dropped-timeline", "kept-timeline"):
        wait_for(lambda: configmap_data(api, namespace, name) is None,
                 f"{name} collected with its Incident", timeout=60)
    assert "# Postmortem: kept is down" in configmap_data(
        api, namespace, "kept-postmortem")["postmortem.md"]


def test_severity_routes_tell_the_team_only_until_the_severity_climbs(
        api: client.ApiClient, namespace: str, running_operator: LocalOperator) -> None:
    with receiving(api, namespace, "team", "l1") as receiver:
        ESCALATION_POLICIES.create(api, namespace, escalation_policy(
            "routed", ONE_LEVEL,
            routes=[{"severities": ["P2", "P3"], "channels": ["team"], "escalate": False}]))
        INCIDENTS.create(api, namespace, incident("slow", "routed", severity="P3"))
        (told,) = wait_for(lambda: pages(receiver, "team", "slow"), "the team told", timeout=30)
        assert told.json()["payload"]["severity"] == "warning"  # P3 is low
        INCIDENTS.create(api, namespace, incident("witness", "routed", severity="P1"))
        wait_for(lambda: pages(receiver, "l1", "witness"), "the witness paged at L1")
        assert pages(receiver, "l1", "slow") == []
        obj = INCIDENTS.get(api, namespace, "slow")
        assert condition(obj, "Ready")["reason"] == "Routed"

        raised = datetime.now(UTC)
        INCIDENTS.patch(api, namespace, "slow", {"spec": {"severity": "P1"}})
        (l1,) = wait_for(lambda: pages(receiver, "l1", "slow"), "L1 paged once it is P1",
                         timeout=30)
        assert l1.at - raised < timedelta(seconds=5)
        assert len(pages(receiver, "team", "slow")) == 1
        # The page goes out before its record reaches status: wait for the record.
        def climb_recorded() -> list[str] | None:
            events = timeline_events(INCIDENTS.status(api, namespace, "slow"))
            return events if "SeverityChanged" in events and len(
                events[events.index("SeverityChanged"):]) >= 4 else None

        timeline = wait_for(climb_recorded, "the climb recorded in the timeline", timeout=30)
        changed = timeline.index("SeverityChanged")
        assert timeline[changed:changed + 4] == [
            "SeverityChanged", "Routed", "Escalated", "Notified"], timeline


def test_an_incident_or_policy_that_cannot_page_anyone_says_so(
        api: client.ApiClient, namespace: str, running_operator: LocalOperator) -> None:
    INCIDENTS.create(api, namespace, incident("unowned"))
    obj = INCIDENTS.wait_condition(api, namespace, "unowned", "Stalled")
    assert condition(obj, "Stalled")["reason"] == "NoEscalationPolicy"
    assert [e["message"] for e in obj["status"]["timeline"] if e["event"] == "Routed"] == [
        "nobody is paged: spec.escalationPolicyRef is not set: nobody is paged"]
    wait_for(lambda: [r for r, _ in events_of(api, namespace, "unowned")
                      if r == "NoEscalationPolicy"], "a Warning Event")

    INCIDENTS.create(api, namespace, incident("orphan", "late"))
    obj = INCIDENTS.wait_condition(api, namespace, "orphan", "Stalled")
    assert condition(obj, "Stalled")["reason"] == "EscalationPolicyNotFound"

    ESCALATION_POLICIES.create(api, namespace, escalation_policy(
        "broken", [{"after": "0s", "channels": ["absent"]}]))
    policy = ESCALATION_POLICIES.wait_condition(api, namespace, "broken", "Stalled")
    assert condition(policy, "Stalled")["message"].startswith(
        "NotificationChannels not found: absent;")
    with receiving(api, namespace, "absent", "pager") as receiver:
        ESCALATION_POLICIES.wait_ready(api, namespace, "broken", timeout=60)
        ESCALATION_POLICIES.create(api, namespace, escalation_policy(
            "late", [{"after": "0s", "channels": ["pager"]}]))
        wait_for(lambda: pages(receiver, "pager", "orphan"),
                 "the orphan paged once its policy exists", timeout=30)
        obj = INCIDENTS.wait_condition(api, namespace, "orphan", "Stalled", "False")
        assert condition(obj, "Ready")["reason"] == "Escalating"
        assert counter(running_operator, "runbook_incident_escalations", {"level": "1"}) >= 1


def test_the_runbook_examples_escalate_as_written(
        api: client.ApiClient, namespace: str, running_operator: LocalOperator) -> None:
    with HTTPReceiver(PAGERDUTY_ACCEPTED, paths={"/slack": Reply()}) as receiver:
        local = LocalEndpoints("127.0.0.1", 5432, "postgres", "-", "http://127.0.0.1:9", "-",
                               "-", receiver.url(""))
        docs = [d for d in localize(example_documents(REPO), local)
                if d["kind"] in INCIDENT_EXAMPLES]
        for doc in docs:
            if doc["kind"] == "Secret":
                client.CoreV1Api(api).create_namespaced_secret(namespace, doc)
            else:
                kind(doc["kind"]).create(api, namespace, doc)
        try:
            policy = ESCALATION_POLICIES.wait_ready(api, namespace, "default", timeout=60)
            (on_call,) = policy["status"]["onCall"]
            assert on_call["member"] in ("alice@example.com", "bob@example.com",
                                         "carol@example.com")
            assert at(on_call["until"]).weekday() == 0  # handed over on Mondays (07/08:00 UTC)
            (page,) = wait_for(lambda: [  # every PagerDuty channel posts to /pagerduty here
                r for r in receiver.requests
                if r.path == "/pagerduty" and r.json()["event_action"] == "trigger"],
                "the on-call engineer paged", timeout=60)
            assert page.json()["payload"]["component"] == "checkout-errors"
            custom_details = page.json()["payload"]["custom_details"]
            assert custom_details["on call"].startswith(on_call["member"])
            assert custom_details["level"] == "L1 of 4 (step 1)"
            wait_for(lambda: [r for r in receiver.requests if r.path == "/slack"],
                     "the team told in Slack")
            obj = INCIDENTS.wait_ready(api, namespace, "checkout-errors")
            assert condition(obj, "Ready")["reason"] == "Escalating"
            assert obj["status"]["escalation"]["nextDeadline"] == (
                at(obj["status"]["openedAt"]) + timedelta(minutes=30)).strftime(
                    "%Y-%m-%dT%H:%M:%SZ")
        finally:
            INCIDENTS.delete_all(api, namespace)


def test_a_source_that_recovers_resolves_the_incident_when_asked(
        api: client.ApiClient, namespace: str, running_operator: LocalOperator) -> None:
    with receiving(api, namespace, "l1") as receiver:
        ESCALATION_POLICIES.create(api, namespace, escalation_policy("one", ONE_LEVEL))
        INCIDENTS.create(api, namespace, incident("disk", "one", resolveWhenSourceRecovers=True))
        wait_for(lambda: pages(receiver, "l1", "disk"), "L1 paged", timeout=30)
        recovered = datetime.now(UTC).replace(microsecond=0)
        client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
            "runbook.dev", "v1alpha1", namespace, "incidents", "disk",
            {"status": {"sourceRecoveredAt": recovered.strftime("%Y-%m-%dT%H:%M:%SZ")}})
        obj = INCIDENTS.wait_condition(api, namespace, "disk", "Resolved", timeout=30)
        assert at(obj["status"]["resolvedAt"]) == recovered
        assert obj["spec"]["status"] == "Open"  # the operator never writes spec
        assert [e["message"] for e in obj["status"]["timeline"] if e["event"] == "Resolved"] == [
            "resolved: the source recovered"]
        wait_for(lambda: events(receiver, "l1", "disk", "resolve"), "PagerDuty resolved")
