"""CanaryRollout blue-green and its webhooks: the new version running beside the old without
traffic for its health-check period, a confirmPromotion gate holding the switch (a refusal,
then a timeout, each retried as the webhook says), the switch itself — all traffic at once
through the real gateway, or step by step —, the postRollout hook told of the outcome, a
rollback webhook rolling back, and `kubectl runbook canary retry` rolling the same revision
out again. Webhook bodies are held to what `core.canary.gates.payload` sends: Flagger's
fields (name, namespace, type, metadata) and where the rollout stands (target, revision,
phase, weight, step)."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from runbook_operator.demoapp import traffic
from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.prometheus import PrometheusServer
from runbook_operator.devcluster.waiting import wait_for
from tests.support import canary, demo_app
from tests.support.canary import FAKED_IMAGE
from tests.support.receivers import HTTPReceiver, Reply

#: Analysis every 2 s: a health-check period of 6 s is three passing runs.
INTERVAL = "2s"
RATE = 20
METADATA = {"team": "shop"}


def _blue_green(prometheus_url: str, blue_green: dict[str, Any],
                hooks: list[dict[str, Any]]) -> dict[str, Any]:
    """The example CanaryRollout as blue-green, its check always passing, with `hooks`."""
    body = canary.quick(prometheus_url, interval=INTERVAL, strategy="blueGreen",
                        blueGreen=blue_green, analysis={"webhooks": hooks})
    body["spec"].pop("canary")
    return body


def _hook(receiver: HTTPReceiver, type_: str, **fields: Any) -> dict[str, Any]:
    return {"name": type_.lower(), "type": type_, "url": receiver.url(f"/{type_}"),
            "metadata": METADATA, "timeout": "1s", "retries": 0, **fields}


def _sent(namespace: str, type_: str, status: dict[str, Any]) -> dict[str, Any]:
    """The body a webhook of `type_` is documented to receive while the rollout stands at
    `status`."""
    return {"name": canary.NAME, "namespace": namespace, "type": type_,
            "target": canary.NAME, "revision": status["revision"], "phase": status["phase"],
            "weight": status["weight"], "step": status["step"], "metadata": METADATA}


def _waiting_for(reason: str) -> Any:
    return lambda found: "gate 'confirmpromotion'" in found.get("message", "") \
        and reason in found["message"]


def test_blue_green_holds_for_confirmation_then_moves_every_request_at_once(
        api: client.ApiClient, cluster: LocalCluster, gateway_address: str, namespace: str,
        running_operator: LocalOperator, gateway_prometheus: PrometheusServer,
        figures: dict[str, list[float]]) -> None:
    with HTTPReceiver(paths={"/confirmPromotion": Reply(503, "change freeze")}) as receiver:
        canary.deploy_app(cluster, namespace)
        canary.create(api, namespace, _blue_green(
            gateway_prometheus.url, {"healthCheckPeriod": "6s", "switch": "instant"},
            [_hook(receiver, "confirmPromotion", retries=1), _hook(receiver, "postRollout")]))
        canary.wait_phase(api, namespace, "Initialized", timeout=180)
        url, host = f"http://{gateway_address}:8000", demo_app.host(namespace)
        demo_app.serving(url, {"v1"}, host)
        with traffic.Load(url, RATE, headers=host) as load, \
                canary.Recorder(api, namespace, load) as recorder:
            canary.apply_as_user(cluster, namespace, canary.target("v2"))
            refused = canary.wait_phase(api, namespace, "WaitingPromotion", timeout=240,
                                        done=_waiting_for("503 change freeze; gave up after "
                                                          "2 attempts"))
            [asked, *_] = receiver.bodies("/confirmPromotion")
            assert asked == _sent(namespace, "confirmPromotion", refused), asked
            assert refused["weight"] == 0 and refused["failedChecks"] == 0
            assert [g["open"] for g in refused["gates"]] == [False]
            assert canary.deployment(cluster, namespace, "checkout")["status"].get(
                "readyReplicas") == 1  # v2 ran beside v1, without traffic
            receiver.paths["/confirmPromotion"] = Reply(200, "approved", delay=3)
            canary.wait_phase(api, namespace, "WaitingPromotion", timeout=60,
                              done=_waiting_for("after 1s; gave up after 2 attempts"))
            receiver.paths["/confirmPromotion"] = Reply(200, "approved")
            final = canary.wait_phase(api, namespace, "Succeeded", timeout=240)
            [told] = wait_for(lambda: receiver.bodies("/postRollout"), "the postRollout hook")

        assert recorder.weights() == [0, 100, 0], recorder.weights()
        (_, before), *after = recorder.periods
        assert before.total >= 30 and before.shares() == {"v1": 1.0}, before.summary()
        for weight, tally in after:  # v1 never again; a stopping canary pod may fail a few
            assert tally.by_version()["v1"] == 0, (weight, tally.summary())
            assert tally.shares().get("v2", 1.0) >= 0.95, (weight, tally.summary())
            figures.setdefault(f"blue-green instant: answers after the switch at {weight}%",
                               []).append(tally.total)
        assert traffic.send(url, 100, headers=host).shares() == {"v2": 1.0}
        assert told == _sent(namespace, "postRollout", final), told
        assert len(receiver.bodies("/postRollout")) == 1
    assert canary.version_of(canary.deployment(cluster, namespace, "checkout-primary")) == "v2"
    assert canary.deployment(cluster, namespace, "checkout")["spec"]["replicas"] == 0
    assert final["failedChecks"] == 0 and "rollback" not in final


def test_a_rollback_webhook_rolls_back_and_retry_switches_the_same_revision_by_steps(
        api: client.ApiClient, cluster: LocalCluster, gateway_address: str, namespace: str,
        running_operator: LocalOperator, gateway_prometheus: PrometheusServer) -> None:
    with HTTPReceiver(paths={"/rollback": Reply(200, "error budget spent")}) as receiver:
        canary.deploy_app(cluster, namespace, image=FAKED_IMAGE)
        canary.create(api, namespace, _blue_green(
            gateway_prometheus.url,
            {"healthCheckPeriod": INTERVAL, "switch": "gradual", "stepWeight": 50},
            [_hook(receiver, "rollback"), _hook(receiver, "postRollout")]))
        canary.wait_phase(api, namespace, "Initialized", timeout=180)
        with canary.Recorder(api, namespace) as recorder:
            canary.apply_as_user(cluster, namespace, canary.target("v2", image=FAKED_IMAGE))
            failed = canary.wait_phase(api, namespace, "Failed", done=canary.rolled_back)
            [told] = wait_for(lambda: receiver.bodies("/postRollout"), "the postRollout hook")
            assert failed["rollback"]["reason"] == "RollbackWebhook"
            assert "error budget spent" in failed["rollback"]["message"]
            assert failed["failedRevision"] == failed["revision"]
            [asked] = receiver.bodies("/rollback")
            assert asked == _sent(namespace, "rollback", {
                **failed, "phase": "Progressing", "step": "1/3"}), asked
            assert told == _sent(namespace, "postRollout", failed), told

            receiver.paths["/rollback"] = Reply(409, "keep going")
            retried = canary.plugin(cluster, "canary", "retry", canary.NAME, "-n", namespace,
                                    "--wait")
            assert retried.returncode == 0, retried.stderr
            assert "rolling the revision out again" in retried.stdout, retried.stdout
            final = canary.wait_phase(api, namespace, "Succeeded", timeout=180)
            wait_for(lambda: len(receiver.bodies("/postRollout")) == 2,
                     "the postRollout hook told of the success")

    assert final["revision"] == failed["revision"] and "failedRevision" not in final
    assert recorder.weights() == [0, 50, 100, 0], recorder.weights()
    again = receiver.bodies("/rollback")[1:]  # the retried rollout asked it too: it said no
    assert again and {(b["revision"], b["phase"]) for b in again} == {
        (final["revision"], "Progressing")}
    assert receiver.bodies("/postRollout")[1] == _sent(namespace, "postRollout", final)
    assert [c["command"] for c in final["commands"]] == ["retry"]
    assert canary.version_of(canary.deployment(cluster, namespace, "checkout-primary")) == "v2"
