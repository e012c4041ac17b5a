"""Incidents opened by their sources, end to end: a firing AlertRule (a real Prometheus scraping
an in-test exporter) and a failing backup (the runner run for real in the cluster against a real
PostgreSQL, with a wrong password) open one Incident per source fingerprint, update it while it
is open, record recovery (and resolve, when asked) in status only, open a new one for a new
problem after resolution, and outlive the rule that opened them."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from runbook_operator.api.common import API_VERSION
from runbook_operator.api.incident import ASKS_FOR_INCIDENTS
from runbook_operator.controllers.common import RESYNC_PAGE
from runbook_operator.core.incident.records import SOURCE_LABEL
from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.prometheus import MetricsExporter, PrometheusServer
from runbook_operator.devcluster.services import PostgresServer
from runbook_operator.devcluster.waiting import wait_for
from runbook_operator.integrations.kubernetes import connect
from tests.support.builders import alert_rule, errors_of, postgres_pvc_policy
from tests.support.databases import POSTGRES_SCHEMA
from tests.support.incidents import source_events
from tests.support.kube import (
    ALERT_RULES,
    BACKUP_POLICIES,
    INCIDENTS,
    alert_state,
    backup_now,
    create_secrets,
    incidents_from,
    wait_run,
)
from tests.support.prometheus import exporter, prometheus  # noqa: F401

DEADLINE = 90


def events(incident: dict[str, Any]) -> list[str]:
    """The timeline entries the source wrote, in order."""
    return source_events(incident.get("status") or {})


def phase(incident: dict[str, Any]) -> str | None:
    return (incident.get("status") or {}).get("phase")


def wait_count(api: client.ApiClient, namespace: str, kind: str, name: str | None, count: int,
               what: str) -> list[dict[str, Any]]:
    """The incidents a source opened, once there are `count` of them."""

    def counted() -> list[dict[str, Any]] | None:
        found = incidents_from(api, namespace, kind, name)
        return found if len(found) == count else None

    return wait_for(counted, what, timeout=DEADLINE)


def test_the_api_server_sends_the_resync_only_the_sources_that_ask_for_incidents(
    api: client.ApiClient, namespace: str, cluster: LocalCluster, operator_kubeconfig: Path,
) -> None:
    """The CRDs' selectable field, as the operator's resync and kubectl use it: rules without
    spec.incident are filtered out by the API server, not decoded by the operator."""
    rules = {"quiet": None, "pages-p1": {"severity": "P1"}, "pages-p3": {"severity": "P3"}}
    for name, trigger in rules.items():
        ALERT_RULES.create(api, namespace, alert_rule(
            name, "http://127.0.0.1:9", channels=[],
            **({"incident": trigger} if trigger else {})))
    kube = connect(kubeconfig=str(operator_kubeconfig))
    listed = [body["metadata"]["name"] for page in kube.pages(
        API_VERSION, "AlertRule", [namespace], RESYNC_PAGE, ASKS_FOR_INCIDENTS) for body in page]
    assert sorted(listed) == ["pages-p1", "pages-p3"]
    p1 = cluster.kubectl("get", "alertrules", "-n", namespace, "-o", "name",
                         "--field-selector", "spec.incident.severity=P1")
    assert p1.stdout.split() == ["alertrule.runbook.dev/pages-p1"]


def test_a_firing_rule_opens_one_incident_per_episode_and_outlives_the_rule(
    api: client.ApiClient, namespace: str, running_operator: LocalOperator,
    exporter: MetricsExporter, prometheus: PrometheusServer,  # noqa: F811
) -> None:
    series = {"service": f"checkout-{namespace[-5:]}"}
    exporter.set("http_errors_ratio", series, 0.01)
    rules = {"sticky": {"severity": "P2"},
             "auto": {"severity": "P1", "resolveWhenRecovered": True}}
    for name, trigger in rules.items():
        ALERT_RULES.create(api, namespace, alert_rule(
            name, prometheus.url, query=errors_of(series), channels=[], incident=trigger))
    for name in rules:
        wait_for(lambda n=name: alert_state(api, namespace, n) == "Normal", f"{name} Normal",
                 timeout=DEADLINE)

    exporter.set("http_errors_ratio", series, 0.09)
    (sticky,) = wait_for(lambda: incidents_from(api, namespace, "AlertRule", "sticky"),
                         "the sticky rule's incident", timeout=DEADLINE)
    (auto,) = wait_for(lambda: incidents_from(api, namespace, "AlertRule", "auto"),
                       "the auto rule's incident", timeout=DEADLINE)
    assert "ownerReferences" not in sticky["metadata"]
    assert sticky["metadata"]["labels"][SOURCE_LABEL]
    assert (sticky["spec"]["severity"], auto["spec"]["severity"]) == ("P2", "P1")
    assert sticky["spec"]["title"] == f"{series['service']} 5xx ratio is 0.09"
    instance = ALERT_RULES.status(api, namespace, "sticky")["instances"][0]
    assert sticky["spec"]["source"] == {"kind": "AlertRule", "name": "sticky",
                                        "fingerprint": instance["fingerprint"]}
    (alert,) = wait_for(lambda: INCIDENTS.status(api, namespace, sticky["metadata"]["name"])
                        .get("alerts"), "the incident's alert", timeout=DEADLINE)
    assert alert["status"] == "firing" and alert["labels"]["service"] == series["service"]
    assert alert["startsAt"] == instance["firingSince"]

    exporter.set("http_errors_ratio", series, 0.01)
    resolved = wait_for(lambda: [i for i in incidents_from(api, namespace, "AlertRule", "auto")
                                 if phase(i) == "Resolved"], "auto-resolution",
                        timeout=DEADLINE)
    assert resolved[0]["spec"]["status"] == "Open"
    assert events(resolved[0])[-1] == "SourceRecovered"
    recovered = wait_for(lambda: [i for i in incidents_from(api, namespace, "AlertRule", "sticky")
                                  if "SourceRecovered" in events(i)], "recovery recorded",
                         timeout=DEADLINE)
    assert phase(recovered[0]) == "Open"

    exporter.set("http_errors_ratio", series, 0.09)
    first_auto, second_auto = wait_count(api, namespace, "AlertRule", "auto", 2,
                                         "a new incident after auto-resolution")
    assert first_auto["metadata"]["name"] == auto["metadata"]["name"]
    assert phase(first_auto) == "Resolved" and phase(second_auto) != "Resolved"
    again = wait_for(lambda: [i for i in incidents_from(api, namespace, "AlertRule", "sticky")
                              if events(i) == ["AlertsChanged", "SourceRecovered",
                                               "AlertsChanged"]],
                     "the open incident firing again", timeout=DEADLINE)
    (entry, *_) = [e for e in reversed(again[0]["status"]["timeline"])
                   if e["event"] == "AlertsChanged"]
    assert entry["message"].startswith("firing again")
    assert len(incidents_from(api, namespace, "AlertRule", "sticky")) == 1

    for name in rules:
        ALERT_RULES.delete(api, namespace, name)

    def rules_gone() -> bool:
        try:
            for name in rules:
                ALERT_RULES.get(api, namespace, name)
        except ApiException as error:
            return error.status == 404
        return False

    wait_for(rules_gone, "the rules deleted")
    kept = incidents_from(api, namespace, "AlertRule")
    assert sorted(i["metadata"]["name"] for i in kept) == sorted(
        [sticky["metadata"]["name"], auto["metadata"]["name"],
         second_auto["metadata"]["name"]])
    exporter.remove("http_errors_ratio", series)


def _failing_policy(postgres: PostgresServer, database: str) -> dict[str, Any]:
    return postgres_pvc_policy("shop-db", postgres, database, encryption={"mode": "none"},
                               incident={"severity": "P2", "resolveWhenRecovered": True})


def test_a_failing_backup_opens_one_incident_until_it_is_resolved(
    cluster: LocalCluster, api: client.ApiClient, namespace: str,
    running_operator: LocalOperator, postgres: PostgresServer,
) -> None:
    database = f"shop_{uuid.uuid4().hex[:8]}"
    postgres.create_database(database)
    postgres.psql(POSTGRES_SCHEMA, database)
    create_secrets(api, namespace, {"db": {"password": "not-the-password"}})
    cluster.create_claim(namespace, "backups")
    BACKUP_POLICIES.create(api, namespace, _failing_policy(postgres, database))
    BACKUP_POLICIES.wait_ready(api, namespace, "shop-db")

    def run(token: str) -> dict[str, Any]:
        return wait_run(api, namespace, "shop-db", backup_now(api, namespace, "shop-db", token))

    first_run = run("first")
    assert (first_run["outcome"], first_run["reason"]) == ("Failed", "DumpFailed")
    (opened,) = wait_count(api, namespace, "BackupPolicy", None, 1,
                           "the incident of the failed backup")
    name = opened["metadata"]["name"]
    assert opened["spec"]["title"] == "Backup shop-db failed: DumpFailed"
    assert "password authentication failed" in opened["spec"]["description"]
    assert "not-the-password" not in str(opened)

    second_run = run("second")
    updated = wait_for(lambda: [r["name"] for r in INCIDENTS.status(api, namespace, name).get(
        "related") or []] == ["shop-db", first_run["jobName"], second_run["jobName"]] or None,
        "the second failure in the same incident", timeout=DEADLINE)
    assert updated and len(incidents_from(api, namespace, "BackupPolicy")) == 1

    client.CoreV1Api(api).patch_namespaced_secret(
        "db", namespace, {"stringData": {"password": postgres.password}})
    fixed = run("fixed")
    assert fixed["outcome"] == "Succeeded", fixed
    resolved = wait_for(lambda: phase(INCIDENTS.get(api, namespace, name)) == "Resolved"
                        and INCIDENTS.get(api, namespace, name), "resolution on success",
                        timeout=DEADLINE)
    assert events(resolved)[-1] == "SourceRecovered"
    assert {a["status"] for a in resolved["status"]["alerts"]} == {"resolved"}

    client.CoreV1Api(api).patch_namespaced_secret(
        "db", namespace, {"stringData": {"password": "wrong-again"}})
    assert run("broken-again")["outcome"] == "Failed"
    first, second = wait_count(api, namespace, "BackupPolicy", None, 2,
                               "a new incident for the new failure")
    assert first["metadata"]["name"] == name and phase(second) is None
