"""People working incidents, against the real API server with the admission policy and roles
from manifests/: two ServiceAccounts bound to the shipped responder role act under their own
identities. An acknowledgement or a note signed with someone else's name is refused by the API
server; `kubectl runbook incident` signs everything with the caller's username."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from runbook_operator.api.common import API_VERSION
from runbook_operator.devcluster.cluster import LocalCluster
from tests.support.kube import INCIDENTS, Person, bind_cluster_role, service_account

RESPONDER = "runbook-incident-responder"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def incident(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "Incident", "metadata": {"name": name},
            "spec": {"title": "Checkout is down", "severity": "P1", **spec}}


def refused(call: Any) -> str:
    """The API server's message for a request the admission policy denied."""
    with pytest.raises(ApiException) as raised:
        call()
    assert raised.value.status == 403, raised.value.body
    message = json.loads(raised.value.body)["message"]
    assert "ValidatingAdmissionPolicy 'runbook-incident-signatures'" in message
    return message


@pytest.fixture
def people(cluster: LocalCluster, api: client.ApiClient, namespace: str,
           tmp_path: Path) -> dict[str, Person]:
    """alice and bob, responders in the test namespace; carol, who may only look."""
    found = {name: service_account(cluster, api, namespace, name, tmp_path)
             for name in ("alice", "bob", "carol")}
    bind_cluster_role(api, namespace, RESPONDER, ["alice", "bob"])
    bind_cluster_role(api, namespace, "runbook-incident-viewer", ["carol"])
    return found


def test_only_what_is_signed_with_the_callers_own_name_is_accepted(
    api: client.ApiClient, namespace: str, people: dict[str, Person],
) -> None:
    alice, bob = people["alice"], people["bob"]
    INCIDENTS.create(api, namespace, incident("checkout-down"))

    def ack(person: Person, by: str) -> dict[str, Any]:
        return INCIDENTS.patch(person.api, namespace, "checkout-down",
                               {"spec": {"acknowledgement": {"by": by, "at": now()}}})

    message = refused(lambda: ack(alice, bob.username))
    assert f"must be your own username ({alice.username}), not {bob.username}" in message
    assert "acknowledgement" not in INCIDENTS.get(api, namespace, "checkout-down")["spec"]
    acked = ack(alice, alice.username)
    assert acked["spec"]["acknowledgement"]["by"] == alice.username

    alice_note = {"at": now(), "by": alice.username, "text": "rolling back"}
    INCIDENTS.patch(alice.api, namespace, "checkout-down", {"spec": {"notes": [alice_note]}})
    forged = {"at": now(), "by": alice.username, "text": "it was bob's fault"}
    message = refused(lambda: INCIDENTS.patch(bob.api, namespace, "checkout-down", {
        "spec": {"notes": [alice_note, forged]}}))
    assert f"signed with your own username ({bob.username})" in message
    own = {"at": now(), "by": bob.username, "text": "database is back"}
    kept = INCIDENTS.patch(bob.api, namespace, "checkout-down", {
        "spec": {"notes": [alice_note, own], "commander": bob.username}})
    assert [n["by"] for n in kept["spec"]["notes"]] == [alice.username, bob.username]
    assert kept["spec"]["acknowledgement"]["by"] == alice.username

    refused(lambda: INCIDENTS.create(bob.api, namespace, incident(
        "forged", acknowledgement={"by": alice.username, "at": now()})))
    refused(lambda: INCIDENTS.create(bob.api, namespace, incident(
        "forged", notes=[{"at": now(), "by": alice.username, "text": "opened"}])))
    created = INCIDENTS.create(bob.api, namespace, incident(
        "signed", notes=[{"at": now(), "by": bob.username, "text": "opened"}]))
    assert created["spec"]["notes"][0]["by"] == bob.username


def plugin(person: Person, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runbook_operator.cli.plugin", "incident", *args,
         "--kubeconfig", str(person.kubeconfig)],
        capture_output=True, text=True, timeout=120, check=False)


def test_the_plugin_signs_every_action_with_the_callers_username(
    api: client.ApiClient, namespace: str, people: dict[str, Person],
) -> None:
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    opened = plugin(alice, "open", "Checkout is down", "--severity", "P1", "--service",
                    "checkout", "--name", "checkout-down", "-n", namespace)
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout.strip() == (
        f"incident/checkout-down opened (P1) by {alice.username}: Checkout is down")

    denied = plugin(carol, "ack", "checkout-down", "-n", namespace)
    assert denied.returncode == 2
    assert "kubectl auth can-i patch incidents.runbook.dev" in denied.stderr
    assert plugin(bob, "ack", "checkout-down", "-n", namespace).returncode == 0
    again = plugin(alice, "ack", "checkout-down", "-n", namespace)
    assert again.returncode == 0 and f"was acknowledged by {bob.username}" in again.stdout
    for person, args in ((alice, ("note", "checkout-down", "rolled back to v41")),
                         (bob, ("assign", "checkout-down", alice.username)),
                         (alice, ("resolve", "checkout-down", "--note", "v41 is healthy"))):
        done = plugin(person, *args, "-n", namespace)
        assert done.returncode == 0, done.stderr

    spec = INCIDENTS.get(api, namespace, "checkout-down")["spec"]
    assert spec["acknowledgement"]["by"] == bob.username
    assert (spec["status"], spec["commander"]) == ("Resolved", alice.username)
    assert spec["impact"]["services"] == ["checkout"]
    assert [(n["by"], n["text"]) for n in spec["notes"]] == [
        (alice.username, "Opened."), (alice.username, "rolled back to v41"),
        (bob.username, f"Assigned to {alice.username}."),
        (alice.username, "Resolved. v41 is healthy")]

    assert plugin(carol, "list", "-n", namespace).stderr.startswith("No open incidents")
    listed = plugin(carol, "list", "-n", namespace, "--all").stdout.splitlines()
    assert listed[0].split() == ["NAMESPACE", "NAME", "SEVERITY", "STATUS", "LEVEL",
                                 "ACKNOWLEDGED", "AGE", "TITLE"]
    assert listed[1].split()[:6] == [namespace, "checkout-down", "P1", "Resolved", "-",
                                     bob.username]
    shown = plugin(carol, "show", "checkout-down", "-n", namespace)
    assert shown.returncode == 0, shown.stderr
    assert f"Acknowledged:  {bob.username} at" in shown.stdout
    assert "Status:        Resolved" in shown.stdout
    assert "Resolved. v41 is healthy" in shown.stdout
    missing = plugin(carol, "show", "nothing-here", "-n", namespace)
    assert (missing.returncode, missing.stderr.strip()) == (
        2, f"error: Incident 'nothing-here' not found in namespace '{namespace}'")
