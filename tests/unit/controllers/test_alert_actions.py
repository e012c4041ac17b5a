"""The AlertRule webhook action against a real receiver: however the call fails, its secret
URL (and its path and query) reaches neither the action record, the Event nor the log."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from runbook_operator.api.alertrule import Actions, AlertInstance
from runbook_operator.controllers import alert_actions
from runbook_operator.controllers.alert_actions import run_actions
from runbook_operator.devcluster.waiting import free_port

from tests.support.builders import NOW
from tests.support.receivers import HTTPReceiver, Reply

PATH = "/remediate/T0-s3cr3t-path"
QUERY = "token=s3cr3t-query"
BODY = {"apiVersion": "runbook.dev/v1alpha1", "kind": "AlertRule",
        "metadata": {"name": "api-5xx", "namespace": "prod", "uid": "u1"}}
ACTIONS = Actions.model_validate({"webhook": {"urlSecretRef": {"name": "hook", "key": "url"}}})
INSTANCE = AlertInstance(fingerprint="f1", labels={"service": "api"}, state="Firing",
                         firing_since=NOW, last_value="0.5")


class SecretAndEvents:
    """The Kube calls an action makes: read its Secret, post Events."""

    def __init__(self, url: str) -> None:
        self.secret = {"data": {"url": base64.b64encode(url.encode()).decode()}}
        self.events: list[tuple[str, str, str]] = []

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None):
        return self.secret if (kind, name, namespace) == ("Secret", "hook", "prod") else None

    def event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))


@pytest.fixture
def receiver() -> Iterator[HTTPReceiver]:
    with HTTPReceiver() as server:
        yield server


def act(url: str, caplog: pytest.LogCaptureFixture) -> tuple[Any, SecretAndEvents, str]:
    kube = SecretAndEvents(url)
    caplog.set_level(logging.DEBUG)
    (record,) = run_actions(kube, BODY, ACTIONS, INSTANCE, NOW)  # type: ignore[arg-type]
    return record, kube, caplog.text


def shown(record: Any, kube: SecretAndEvents, log: str) -> str:
    return "\n".join([record.message, *(m for _, _, m in kube.events), log])


@pytest.mark.parametrize("reply, says", [
    (Reply(404, f"no such hook {PATH}?{QUERY}"), "404 no such hook ***?***"),
    (Reply(503, "unavailable"), "503 unavailable"),
    (Reply(delay=5), "ReadTimeout after 0.3s"),
])
def test_a_failing_webhook_is_recorded_without_its_url(
    receiver: HTTPReceiver, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch, reply: Reply, says: str,
) -> None:
    monkeypatch.setattr(alert_actions, "WEBHOOK_TIMEOUT_SECONDS", 0.3)
    url = receiver.url(f"{PATH}?{QUERY}")
    receiver.answer(reply)
    record, kube, log = act(url, caplog)
    assert (record.action, record.result) == ("webhook", "failed")
    assert record.message == f"CallFailed: {receiver.url('')}: {says}"
    assert kube.events == [("Warning", "ActionFailed", f"webhook: {record.message}")]
    everything = shown(record, kube, log)
    assert record.message in log
    assert url not in everything and PATH not in everything and QUERY not in everything


def test_a_refused_connection_is_recorded_without_its_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host = f"http://127.0.0.1:{free_port()}"
    record, kube, log = act(f"{host}{PATH}?{QUERY}", caplog)
    assert record.message == f"CallFailed: {host}: ConnectError"
    everything = shown(record, kube, log)
    assert PATH not in everything and QUERY not in everything


def test_a_successful_call_names_only_the_host(
    receiver: HTTPReceiver, caplog: pytest.LogCaptureFixture,
) -> None:
    record, kube, log = act(receiver.url(f"{PATH}?{QUERY}"), caplog)
    assert (record.result, record.message) == ("succeeded", f"called {receiver.url('')}: 200 ok")
    (request,) = receiver.requests
    assert request.json()["rule"] == "api-5xx" and request.json()["labels"] == {"service": "api"}
    assert PATH not in shown(record, kube, log)


def test_a_missing_secret_is_recorded_by_name() -> None:
    kube = SecretAndEvents("unused")
    kube.secret = {"data": {}}
    (record,) = run_actions(kube, BODY, ACTIONS, INSTANCE, NOW)  # type: ignore[arg-type]
    assert record.message == "SecretError: Secret 'hook' has no key 'url'"
