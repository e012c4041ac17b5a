"""CanaryRollout with real traffic: the demo app's versions as real pods, Traefik splitting
the requests by the HTTPRoute weights the operator writes, Prometheus scraping the gateway,
the operator under its least-privilege identity deciding from what it measures; and a
rollout deleted mid-way, its finalizer leaving the app answering through the gateway."""

from __future__ import annotations

import json
from datetime import datetime

from kubernetes import client

from runbook_operator.core.canary.deletion import FINALIZER
from runbook_operator.demoapp import traffic
from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.prometheus import PrometheusServer
from runbook_operator.devcluster.waiting import wait_for
from tests.support import canary, demo_app
from tests.support.kube import create_webhook_channel, incidents_from
from tests.support.receivers import HTTPReceiver

#: Requests per second asked of the (single-threaded) traffic generator; on a busy 2-core
#: machine it reaches about 15, so at 5 % the canary gets 10 or so in a 15 s window.
RATE = 50
TOLERANCE = 0.05
INTERVAL = "15s"
MINIMUM_REQUESTS = 5
DELETION_RATE = 20


def _initialized(api: client.ApiClient, cluster: LocalCluster, namespace: str,
                 gateway_address: str, gateway_prometheus: PrometheusServer,
                 version: str = "v1",
                 **spec: object) -> str:
    """The example app at `version` and its CanaryRollout, initialized; the gateway's URL
    once it serves that version."""
    canary.deploy_app(cluster, namespace, version)
    canary.create(api, namespace, canary.rollout(gateway_prometheus.url, **spec))
    canary.wait_phase(api, namespace, "Initialized", timeout=180)
    url = f"http://{gateway_address}:8000"
    demo_app.serving(url, {version}, demo_app.host(namespace))
    return url


def test_a_healthy_version_walks_5_30_55_80_100_with_the_traffic_it_says(
        api: client.ApiClient, cluster: LocalCluster, gateway_address: str, namespace: str,
        running_operator: LocalOperator, gateway_prometheus: PrometheusServer,
        figures: dict[str, list[float]]) -> None:
    url = _initialized(api, cluster, namespace, gateway_address, gateway_prometheus,
                       analysis={"interval": INTERVAL, "minimumRequests": MINIMUM_REQUESTS})
    host = demo_app.host(namespace)
    with traffic.Load(url, RATE, headers=host) as load, \
            canary.Recorder(api, namespace, load) as recorder:
        canary.apply_as_user(cluster, namespace, canary.target("v2"))
        final = canary.wait_phase(api, namespace, "Succeeded", timeout=300)

    assert recorder.weights() == [0, 5, 30, 55, 80, 100, 0], recorder.weights()
    for weight, tally in recorder.periods:
        if weight == 0 and tally is recorder.periods[0][1]:
            continue  # v1 alone, before the rollout
        expected = weight / 100 if weight else 1.0  # at 0 the primary runs v2
        share = tally.shares().get("v2", 0.0)
        if tally.total >= 50:
            assert abs(share - expected) <= TOLERANCE, (weight, tally.summary())
        figures.setdefault(f"canary share at weight {weight} (%)", []).append(100 * share)
    primary = canary.deployment(cluster, namespace, "checkout-primary")
    assert canary.version_of(primary) == "v2"
    assert primary["status"].get("readyReplicas") == primary["spec"]["replicas"]
    assert canary.deployment(cluster, namespace, "checkout")["spec"]["replicas"] == 0
    assert traffic.send(url, 100, headers=host).shares() == {"v2": 1.0}
    assert final["failedChecks"] == 0 and final["primaryRevision"] == final["revision"]
    started = recorder.snapshots[0].at
    figures.setdefault("healthy rollout, 4 steps of 15 s (s)", []).append(
        recorder.snapshots[-1].at - started)


def test_a_version_with_5_percent_errors_rolls_back_and_v2_gets_every_request(
        api: client.ApiClient, cluster: LocalCluster, gateway_address: str, namespace: str,
        running_operator: LocalOperator, gateway_prometheus: PrometheusServer,
        figures: dict[str, list[float]]) -> None:
    with HTTPReceiver() as receiver:
        create_webhook_channel(api, namespace, receiver.url("/rollouts"))
        url = _initialized(api, cluster, namespace, gateway_address, gateway_prometheus, "v2",
                           analysis={"interval": INTERVAL, "minimumRequests": MINIMUM_REQUESTS},
                           notifications={"channels": ["oncall"],
                                          "events": ["RolledBack"]},
                           incident={"severity": "P2"})
        host = demo_app.host(namespace)
        with traffic.Load(url, RATE, headers=host) as load, \
                canary.Recorder(api, namespace, load) as recorder:
            canary.apply_as_user(cluster, namespace, canary.target("v3", error_rate=0.05))
            final = canary.wait_phase(api, namespace, "Failed", done=canary.rolled_back,
                                      timeout=240)
        assert final["rollback"]["reason"] == "FailureLimit"
        assert final["failedChecks"] == 2
        failed = [m for m in final["measurements"] if m["verdict"] == "Fail"]
        assert {m["metric"] for m in failed} == {"error-rate-under-1-percent"}
        assert all(float(m["value"]) < 99 for m in failed), failed
        weights = recorder.weights()
        assert weights[:2] == [0, 5] and weights[-1] == 0, weights
        assert weights[1:-1] == sorted(set(weights[1:-1])), weights  # never backwards
        tally = traffic.send(url, 200, concurrency=4, headers=host)
        assert tally.shares() == {"v2": 1.0}, tally.summary()
        assert canary.deployment(cluster, namespace, "checkout")["spec"]["replicas"] == 0
        rolled = wait_for(lambda: receiver.bodies("/rollouts"), "the rollback notification")
        assert rolled[0]["status"] == "firing"
        assert "rolled back" in json.dumps(rolled[0])
    [incident] = incidents_from(api, namespace, "CanaryRollout", canary.NAME)
    assert final["incident"] == incident["metadata"]["name"]
    assert incident["spec"]["severity"] == "P2"
    assert "error-rate-under-1-percent = " in incident["spec"]["description"]
    figures.setdefault("rollback: started → primary 100% read back, canary at 0 (s)", []).append(
        (datetime.fromisoformat(final["rollback"]["completedAt"])
         - datetime.fromisoformat(final["rollback"]["startedAt"])).total_seconds())


#: The primary's pods stop when the collector deletes them; the gateway follows the kept
#: Service's endpoints within its reload (at most 2 s), so at most a few answers fail.
DELETION_MOST_FAILED = 0.03
DELETION_LONGEST_FAILING_RUN = 5


def _gone(cluster: LocalCluster, namespace: str, kind: str, name: str) -> bool:
    return cluster.kubectl("get", kind, name, "-n", namespace, check=False).returncode != 0


def test_a_rollout_deleted_mid_way_leaves_the_target_serving_through_the_gateway(
        api: client.ApiClient, cluster: LocalCluster, gateway_address: str, namespace: str,
        running_operator: LocalOperator, gateway_prometheus: PrometheusServer,
        figures: dict[str, list[float]]) -> None:
    url = _initialized(api, cluster, namespace, gateway_address, gateway_prometheus,
                       analysis={"interval": "5m", "minimumRequests": 0,
                                 "metrics": canary.PASSING})
    host = demo_app.host(namespace)
    assert FINALIZER in canary.ROLLOUTS.get(api, namespace, canary.NAME)["metadata"][
        "finalizers"]

    with traffic.Load(url, DELETION_RATE, headers=host) as load:
        canary.apply_as_user(cluster, namespace, canary.target("v2"))
        canary.wait_phase(api, namespace, "Progressing", done=lambda s: s.get("weight") == 5)
        canary.ROLLOUTS.delete(api, namespace, canary.NAME)
        wait_for(lambda: _gone(cluster, namespace, "canaryrollout", canary.NAME),
                 "the CanaryRollout released and gone", timeout=180)
        wait_for(lambda: _gone(cluster, namespace, "deployment", "checkout-primary")
                 and not demo_app.pods(cluster, namespace, "v1"),
                 "the primary and its pods collected", timeout=180)
        traffic.until_only(url, "v2", headers=host, timeout=60)
        answers = load.take()

    failed = answers.total - answers.codes()[200]
    figures.setdefault("deleted mid-rollout: answers other than 200 (%)", []).append(
        100 * failed / max(answers.total, 1))
    assert answers.total >= 50 and failed <= DELETION_MOST_FAILED * answers.total, answers.codes()
    assert canary.longest_failing_run(answers) <= DELETION_LONGEST_FAILING_RUN, answers.codes()
    target = canary.deployment(cluster, namespace, "checkout")
    assert target["spec"]["replicas"] == 1 and target["status"].get("readyReplicas") == 1
    kept = cluster.kubectl("get", "service", "checkout-primary", "-n", namespace, "-o",
                           "jsonpath={.spec.selector}{.metadata.ownerReferences}").stdout
    assert kept == '{"app.kubernetes.io/name":"checkout"}', kept
    wait_for(lambda: _gone(cluster, namespace, "service", "checkout-canary"),
             "the canary Service collected", timeout=120)
    assert traffic.send(url, 50, concurrency=2, headers=host).shares() == {"v2": 1.0}
