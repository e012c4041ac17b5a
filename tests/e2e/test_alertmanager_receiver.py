"""The Alertmanager receiver end to end: a real Alertmanager (Debian's), fed alerts through its
v2 API, notifies the operator's `/alertmanager/webhook` with a bearer token from a Secret; each
group opens or updates one Incident. Invalid requests are refused with a 4xx and write nothing;
a repeated delivery changes nothing.

The receiving operator runs for this module with the receiver flags beside the session's
operator: only the holder of the leader-election Lease reconciles, and the receiver serves on
every instance either way."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from runbook_operator.core.delivery import fingerprint
from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.prometheus import AlertmanagerServer
from runbook_operator.devcluster.waiting import free_port, wait_for
from tests.support.incidents import source_events
from tests.support.kube import INCIDENTS, create_secret, incidents
from tests.support.receivers import HTTPReceiver

TOKEN = "am-0123456789abcdef-token"
MAX_BODY_BYTES = 256 * 1024
DEADLINE = 60


class Receiver:
    """The receiving operator's webhook URL and namespace."""

    def __init__(self, namespace: str, port: int) -> None:
        self.namespace = namespace
        self.url = f"http://127.0.0.1:{port}/alertmanager/webhook"

    def post(self, body: bytes, token: str | None = TOKEN,
             content_type: str = "application/json") -> httpx.Response:
        headers = {"Content-Type": content_type}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.post(self.url, content=body, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def receiver(api: client.ApiClient, operator_kubeconfig: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    namespace = f"alertmanager-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    create_secret(api, namespace, "am-token", {"token": TOKEN})
    port = free_port()
    process = LocalOperator(
        operator_kubeconfig, tmp_path_factory.mktemp("receiver") / "operator.log",
        extra_args=(f"--alertmanager-port={port}",
                    f"--alertmanager-token-secret={namespace}/am-token",
                    f"--alertmanager-namespace={namespace}", "--alertmanager-resolve",
                    f"--alertmanager-max-body-bytes={MAX_BODY_BYTES}"))
    process.start()
    found = Receiver(namespace, port)
    try:
        wait_for(lambda: _answers(found), "the receiver to listen", timeout=DEADLINE)
        yield found
    finally:
        process.stop()
        core.delete_namespace(namespace)


def _answers(receiver: Receiver) -> bool:
    try:
        return receiver.post(b"{}", token=None).status_code == 401
    except httpx.TransportError:
        return False


def alerts_of(alertname: str, count: int, first: int = 0,
              ends_at: str | None = None) -> list[dict[str, Any]]:
    """`count` alerts of one group, with label values in several scripts."""
    found = []
    for n in range(first, first + count):
        alert: dict[str, Any] = {
            "labels": {"alertname": alertname, "instance": f"web-{n:02d}",
                       "service": "caisse-café ☕", "region": "東京", "severity": "critical"},
            "annotations": {"summary": "Latence élevée ⚠ sur la caisse"},
            "generatorURL": "http://prometheus.example:9090/graph",
        }
        if ends_at is not None:
            alert["endsAt"] = ends_at
        found.append(alert)
    return found


def of_group(namespace: str, api: client.ApiClient, alertname: str) -> list[dict[str, Any]]:
    """The incidents opened for one group: their names start with the alertname."""
    stem = re.sub(r"[^a-z0-9]+", "-", alertname.lower())
    return [i for i in incidents(api, namespace) if i["metadata"]["name"].startswith(f"{stem}-")]


def status_of(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return INCIDENTS.status(api, namespace, name)


def test_a_group_of_50_alerts_opens_one_incident_that_follows_the_group(
    api: client.ApiClient, receiver: Receiver,
) -> None:
    namespace = receiver.namespace
    alertname = f"CheckoutLatency{uuid.uuid4().hex[:6]}"
    with HTTPReceiver() as copies, AlertmanagerServer(
            receiver.url, bearer_token=TOKEN, copy_to=copies.url("/copy")) as alertmanager:
        alertmanager.post_alerts(alerts_of(alertname, 50))
        (opened,) = wait_for(lambda: of_group(namespace, api, alertname), "the incident",
                             timeout=DEADLINE)
        name = opened["metadata"]["name"]
        status = wait_for(lambda: len(status_of(api, namespace, name).get("alerts") or []) == 50
                          and status_of(api, namespace, name), "its 50 alerts", timeout=DEADLINE)
        (delivered,) = copies.bodies(path="/copy")
        assert opened["spec"]["source"] == {
            "kind": "Alertmanager", "name": "webhook",
            "fingerprint": fingerprint("Alertmanager", delivered["groupKey"])}
        assert "ownerReferences" not in opened["metadata"]
        assert (opened["spec"]["title"], opened["spec"]["severity"]) == (
            "Latence élevée ⚠ sur la caisse", "P1")
        assert opened["spec"]["resolveWhenSourceRecovers"]
        assert {a["labels"]["region"] for a in status["alerts"]} == {"東京"}
        assert {a["labels"]["service"] for a in status["alerts"]} == {"caisse-café ☕"}
        assert {a["status"] for a in status["alerts"]} == {"firing"}
        assert status.get("truncatedAlerts", 0) == 0
        assert source_events(status) == ["AlertsChanged"]

        alertmanager.post_alerts(alerts_of(alertname, 3, first=50))
        grown = wait_for(lambda: status_of(api, namespace, name).get("truncatedAlerts") == 3
                         and status_of(api, namespace, name), "the group's 53 alerts",
                         timeout=DEADLINE)
        assert len(grown["alerts"]) == 50
        assert source_events(grown) == ["AlertsChanged"] * 2
        assert len(of_group(namespace, api, alertname)) == 1

        latest = copies.requests[-1].body
        before = INCIDENTS.get(api, namespace, name)["metadata"]["resourceVersion"]
        repeated = receiver.post(latest)
        assert (repeated.status_code, repeated.json()) == (
            200, {"incident": name, "created": False, "changed": False})
        assert INCIDENTS.get(api, namespace, name)["metadata"]["resourceVersion"] == before

        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        alertmanager.post_alerts(alerts_of(alertname, 53, ends_at=now))
        resolved = wait_for(lambda: status_of(api, namespace, name).get("phase") == "Resolved"
                            and status_of(api, namespace, name), "the group resolved",
                            timeout=DEADLINE)
        assert source_events(resolved)[-1] == "SourceRecovered"
        assert {a["status"] for a in resolved["alerts"]} == {"resolved"}

        alertmanager.post_alerts(alerts_of(alertname, 2))
        again = wait_for(lambda: len(of_group(namespace, api, alertname)) == 2
                         and of_group(namespace, api, alertname), "a new incident",
                         timeout=DEADLINE)
        assert {i["metadata"]["name"] for i in again} - {name}
        assert status_of(api, namespace, name)["phase"] == "Resolved"


def test_alerts_the_sender_left_out_are_counted(
    api: client.ApiClient, receiver: Receiver,
) -> None:
    alertname = f"QueueBacklog{uuid.uuid4().hex[:6]}"
    with AlertmanagerServer(receiver.url, bearer_token=TOKEN, max_alerts=5) as alertmanager:
        alertmanager.post_alerts(alerts_of(alertname, 8))
        (opened,) = wait_for(lambda: of_group(receiver.namespace, api, alertname),
                             "the incident", timeout=DEADLINE)
        status = wait_for(lambda: status_of(api, receiver.namespace,
                                            opened["metadata"]["name"]).get("alerts"),
                          "its alerts", timeout=DEADLINE)
        assert len(status) == 5
        assert status_of(api, receiver.namespace,
                         opened["metadata"]["name"])["truncatedAlerts"] == 3


def payload(alertname: str, **changes: Any) -> dict[str, Any]:
    """A notification in Alertmanager's webhook format (version 4) that would open an
    incident, with `changes` (None removes a field)."""
    body: dict[str, Any] = {
        "version": "4", "groupKey": f'{{}}:{{alertname="{alertname}"}}', "truncatedAlerts": 0,
        "status": "firing", "receiver": "webhook", "groupLabels": {"alertname": alertname},
        "commonLabels": {"alertname": alertname}, "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [{"status": "firing", "labels": {"alertname": alertname},
                    "annotations": {}, "startsAt": "2026-12-01T09:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://p/graph",
                    "fingerprint": "0123456789abcdef"}],
    }
    for name, value in changes.items():
        if value is None:
            del body[name]
        else:
            body[name] = value
    return body


def encoded(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


def test_invalid_requests_are_refused_with_the_reason_and_write_nothing(
    api: client.ApiClient, receiver: Receiver,
) -> None:
    alertname = f"Refused{uuid.uuid4().hex[:6]}"
    valid = encoded(payload(alertname))
    oversized = encoded(payload(alertname, commonAnnotations={"pad": "x" * MAX_BODY_BYTES}))

    def written() -> dict[str, str]:
        return {i["metadata"]["name"]: i["metadata"]["resourceVersion"]
                for i in incidents(api, receiver.namespace)}

    def reconciled() -> bool:
        """The Incident controller has caught up with the incidents earlier tests opened,
        so that its writes are not taken for the receiver's."""
        return all((i.get("status") or {}).get("observedGeneration")
                   == i["metadata"]["generation"] for i in incidents(api, receiver.namespace))

    wait_for(reconciled, "the Incident controller to reconcile every incident",
             timeout=DEADLINE)
    before = written()
    for response, status, reason in [
        (receiver.post(b'{"version": "4", "groupKey": '), 400, "body is not JSON"),
        (receiver.post(encoded(payload(alertname, version="3"))), 422,
         "unsupported payload version '3'"),
        (receiver.post(encoded(payload(alertname, groupKey=None, alerts=None))), 422,
         "groupKey: Field required; alerts: Field required"),
        (receiver.post(oversized), 413,
         f"body of {len(oversized)} bytes exceeds the limit of {MAX_BODY_BYTES} bytes"),
        (receiver.post(valid, token="not-the-token"), 401, "wrong bearer token"),
        (receiver.post(valid, token=None), 401, "missing bearer token"),
        (receiver.post(valid, content_type="text/plain"), 415,
         "Content-Type must be application/json, not 'text/plain'"),
    ]:
        assert response.status_code == status, response.text
        assert reason in response.json()["error"]
    assert written() == before

    accepted = receiver.post(valid)
    assert accepted.status_code == 200 and accepted.json()["created"]
    assert set(written()) - set(before) == {accepted.json()["incident"]}
