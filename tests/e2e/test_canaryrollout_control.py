"""CanaryRollout under control: the operator killed mid-rollout, people pausing, promoting and
aborting with `kubectl runbook canary`, a gate answering 500, a newer revision mid-rollout,
analysis without data, GitOps applies that never see a diff, an autoscaled primary scaled
before traffic returns, and an open Incident holding the start. The target runs pods kwok
fakes (ready, serving nothing), so every rollout here is decided by its checks, its gates
and its people; the operator writes real HTTPRoute weights that Traefik reads back."""

from __future__ import annotations

from collections import Counter
from typing import Any

from kubernetes import client

from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.prometheus import PrometheusServer
from runbook_operator.devcluster.waiting import wait_for
from tests.support import canary
from tests.support.builders import incident
from tests.support.canary import FAKED_IMAGE
from tests.support.kube import INCIDENTS
from tests.support.receivers import HTTPReceiver, Reply

WALK = [0, 5, 30, 55, 80, 100, 0]


def _initialized(api: client.ApiClient, cluster: LocalCluster, namespace: str,
                 body: dict[str, Any]) -> None:
    canary.deploy_app(cluster, namespace, image=FAKED_IMAGE)
    canary.create(api, namespace, body)
    canary.wait_phase(api, namespace, "Initialized", timeout=180)


def _release(cluster: LocalCluster, namespace: str, version: str) -> None:
    canary.apply_as_user(cluster, namespace, canary.target(version, image=FAKED_IMAGE))


def _at_weight(weight: int) -> Any:
    return lambda found: found.get("weight") == weight


def test_a_killed_operator_continues_from_status_without_repeating_a_step(
        api: client.ApiClient, cluster: LocalCluster, gateway_address: str, namespace: str,
        running_operator: LocalOperator, gateway_prometheus: PrometheusServer) -> None:
    _initialized(api, cluster, namespace, canary.quick(gateway_prometheus.url, interval="4s"))
    with canary.Recorder(api, namespace) as recorder:
        _release(cluster, namespace, "v2")
        canary.wait_phase(api, namespace, "Progressing", done=_at_weight(30))
        running_operator.kill9()
        running_operator.start()
        final = canary.wait_phase(api, namespace, "Succeeded", timeout=240)

    assert recorder.weights() == WALK, recorder.weights()
    steps = [s.step_index for s in recorder.snapshots if s.revision == final["revision"]]
    assert steps == sorted(steps), steps  # no step went back
    runs = Counter(m["step"] for m in final["measurements"]
                   if m["revision"] == final["revision"])
    assert runs == {1: 1, 3: 1, 5: 1, 7: 1}, runs  # each analysis step ran once


def test_pause_resume_promote_and_abort_by_hand(
        api: client.ApiClient, cluster: LocalCluster, gateway_address: str, namespace: str,
        running_operator: LocalOperator, gateway_prometheus: PrometheusServer) -> None:
    _initialized(api, cluster, namespace, canary.quick(gateway_prometheus.url, interval="30s"))
    _release(cluster, namespace, "v2")
    canary.wait_phase(api, namespace, "Progressing", done=_at_weight(5))

    paused = canary.plugin(cluster, "canary", "pause", canary.NAME, "-n", namespace, "--wait")
    assert paused.returncode == 0 and "paused" in paused.stdout, paused.stderr
    held = canary.wait_phase(api, namespace, "Paused")
    shown = canary.plugin(cluster, "canary", "status", canary.NAME, "-n", namespace)
    assert "Phase:     Paused" in shown.stdout and "Weight:    5%" in shown.stdout
    resumed = canary.plugin(cluster, "canary", "resume", canary.NAME, "-n", namespace,
                            "--wait")
    assert "resumed after" in resumed.stdout, resumed.stderr
    after = canary.status(api, namespace)
    assert after["weight"] == 5
    during = [m for m in after.get("measurements", []) if m["time"] > held["pausedAt"]
              and m["time"] < after["commands"][0]["time"]]
    assert during == []  # nothing was measured while paused

    skipped = canary.plugin(cluster, "canary", "promote", canary.NAME, "-n", namespace,
                            "--wait")
    assert "skipped to step" in skipped.stdout, skipped.stderr
    full = canary.plugin(cluster, "canary", "promote", "--full", canary.NAME, "-n",
                         namespace, "--wait")
    assert "promoting" in full.stdout, full.stderr
    canary.wait_phase(api, namespace, "Succeeded", timeout=120)
    primary = canary.deployment(cluster, namespace, "checkout-primary")
    assert canary.version_of(primary) == "v2"

    _release(cluster, namespace, "v3")
    canary.wait_phase(api, namespace, "Progressing", done=_at_weight(5))
    aborted = canary.plugin(cluster, "canary", "abort", canary.NAME, "-n", namespace, "--wait")
    assert "rolling back" in aborted.stdout, aborted.stderr
    final = canary.wait_phase(api, namespace, "Failed", done=canary.rolled_back)
    assert final["rollback"]["reason"] == "Aborted" and final["weight"] == 0
    assert canary.version_of(canary.deployment(cluster, namespace, "checkout-primary")) == "v2"
    assert canary.deployment(cluster, namespace, "checkout")["spec"]["replicas"] == 0
    acted = [c["command"] for c in final["commands"]]
    assert acted == ["abort", "promoteFull", "promote", "resume", "pause"], acted


def test_a_gate_answering_500_holds_the_rollout_without_failing_it(
        api: client.ApiClient, cluster: LocalCluster, gateway_address: str, namespace: str,
        running_operator: LocalOperator, gateway_prometheus: PrometheusServer) -> None:
    with HTTPReceiver(default=Reply(500, "load test not ready")) as receiver:
        hook = {"name": "smoke", "type": "preRollout", "url": receiver.url("/smoke"),
                "retries": 0, "timeout": "2s"}
        _initialized(api, cluster, namespace,
                     canary.quick(gateway_prometheus.url, analysis={"webhooks": [hook]}))
        _release(cluster, namespace, "v2")
        wait_for(lambda: len(receiver.bodies("/smoke")) >= 3, "the gate asked three times",
                 timeout=120)
        held = canary.status(api, namespace)
        assert held["phase"] == "Progressing" and held["weight"] == 0
        assert held["failedChecks"] == 0
        assert "gate 'smoke'" in held["message"] and "500" in held["message"]
        assert [g["open"] for g in held["gates"]] == [False]
        sent = receiver.bodies("/smoke")[0]
        assert (sent["type"], sent["name"], sent["revision"]) == (
            "preRollout", canary.NAME, held["revision"])
        receiver.default = Reply(200)
        final = canary.wait_phase(api, namespace, "Succeeded", timeout=180)
    assert final["failedChecks"] == 0 and "rollback" not in final


def test_a_newer_revision_mid_rollout_restarts_the_analysis(
        api: client.ApiClient, cluster: LocalCluster, gateway_address: str, namespace: str,
        running_operator: LocalOperator, gateway_prometheus: PrometheusServer) -> None:
    _initialized(api, cluster, namespace, canary.quick(gateway_prometheus.url, interval="4s"))
    with canary.Recorder(api, namespace) as recorder:
        _release(cluster, namespace, "v2")
        v2 = canary.wait_phase(api, namespace, "Progressing", done=_at_weight(30))["revision"]
        _release(cluster, namespace, "v3")
        final = canary.wait_phase(api, namespace, "Succeeded", timeout=240)
    assert final["revision"] != v2
    assert canary.version_of(canary.deployment(cluster, namespace, "checkout-primary")) == "v3"
    weights = recorder.weights()
    assert weights[:3] == [0, 5, 30] and weights[-5:] == [30, 55, 80, 100, 0], weights
    restarted = [s for s in recorder.snapshots if s.revision == final["revision"]]
    assert restarted[0].step_index == 0
    runs = Counter(m["step"] for m in final["measurements"]
                   if m["revision"] == final["revision"])
    assert runs == {1: 1, 3: 1, 5: 1, 7: 1}, runs


def test_no_data_passes_fails_or_waits_as_on_no_data_says(
        api: client.ApiClient, cluster: LocalCluster, gateway_address: str, namespace: str,
        running_operator: LocalOperator, gateway_prometheus: PrometheusServer) -> None:
    nan = {"name": "nan", "query": "vector(0) / vector(0)", "thresholdRange": {"min": 0},
           "onNoData": "fail"}
    _initialized(api, cluster, namespace, canary.quick(
        gateway_prometheus.url, analysis={"metrics": [nan], "failureLimit": 1}))
    _release(cluster, namespace, "v2")
    failed = canary.wait_phase(api, namespace, "Failed", done=canary.rolled_back)
    assert failed["rollback"]["reason"] == "FailureLimit"
    [measured] = [m for m in failed["measurements"] if m["metric"] == "nan"]
    assert measured["verdict"] == "Fail" and "value" not in measured
    assert "NaN" in measured["message"]

    empty = {"name": "empty", "query": "absent(vector(1))", "thresholdRange": {"min": 0},
             "onNoData": "pass"}
    canary.ROLLOUTS.patch(api, namespace, canary.NAME, {"spec": {"analysis": {
        "metrics": [empty]}}})
    _release(cluster, namespace, "v3")
    passed = canary.wait_phase(api, namespace, "Succeeded", timeout=180)
    assert {m["verdict"] for m in passed["measurements"]
            if m["revision"] == passed["revision"]} == {"Pass"}

    canary.ROLLOUTS.patch(api, namespace, canary.NAME, {"spec": {
        "progressDeadline": "30s",
        "analysis": {"minimumRequests": 10, "metrics": [{**empty, "onNoData": "inconclusive"}]}}})
    _release(cluster, namespace, "v4")
    waited = canary.wait_phase(api, namespace, "Failed", done=canary.rolled_back)
    assert waited["rollback"]["reason"] == "ProgressDeadline" and waited["failedChecks"] == 0
    ran = [m for m in waited["measurements"] if m["revision"] == waited["revision"]]
    assert ran and {m["verdict"] for m in ran} == {"Inconclusive"}
    assert any("fewer than minimumRequests 10" in m["message"] for m in ran)
    assert canary.version_of(canary.deployment(cluster, namespace, "checkout-primary")) == "v3"


def test_gitops_applies_of_the_users_objects_never_see_a_diff(
        api: client.ApiClient, cluster: LocalCluster, gateway_address: str, namespace: str,
        running_operator: LocalOperator, gateway_prometheus: PrometheusServer) -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "checkout"},
               "spec": {"selector": {"app.kubernetes.io/name": "checkout"},
                        "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
    _initialized(api, cluster, namespace, canary.quick(gateway_prometheus.url, interval="5s"))
    canary.apply_as_user(cluster, namespace, service)

    def users(version: str) -> list[dict[str, Any]]:
        return [canary.target(version, image=FAKED_IMAGE), canary.route(namespace), service]

    assert canary.diff_as_user(cluster, namespace, *users("v1")) == ""
    _release(cluster, namespace, "v2")
    canary.wait_phase(api, namespace, "Progressing", done=_at_weight(30))
    assert canary.diff_as_user(cluster, namespace, *users("v2")) == ""
    canary.wait_phase(api, namespace, "Succeeded", timeout=180)
    assert canary.diff_as_user(cluster, namespace, *users("v2")) == ""


def _ready_replicas(deployment: dict[str, Any]) -> int:
    return int((deployment.get("status") or {}).get("readyReplicas") or 0)


def test_an_abort_scales_the_autoscaled_primary_before_traffic_moves_back(
        api: client.ApiClient, cluster: LocalCluster, gateway_address: str, namespace: str,
        running_operator: LocalOperator, gateway_prometheus: PrometheusServer) -> None:
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "checkout"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                       "name": "checkout"},
                    "minReplicas": 1, "maxReplicas": 4}}
    canary.deploy_app(cluster, namespace, image=FAKED_IMAGE)
    canary.apply_as_user(cluster, namespace, hpa)
    canary.create(api, namespace, canary.quick(gateway_prometheus.url, interval="30s",
                                               autoscalerRef={"name": "checkout"}))
    canary.wait_phase(api, namespace, "Initialized", timeout=180)
    primary_hpa = canary.autoscaler(cluster, namespace, "checkout-primary")
    assert primary_hpa["spec"]["scaleTargetRef"]["name"] == "checkout-primary"
    with canary.Recorder(api, namespace) as recorder, \
            canary.ObjectWatch(api, namespace, "checkout-primary",
                               client.AppsV1Api(api).list_namespaced_deployment,
                               _ready_replicas) as primary:
        _release(cluster, namespace, "v2")
        canary.wait_phase(api, namespace, "Progressing", done=_at_weight(5))
        canary.plugin(cluster, "canary", "abort", canary.NAME, "-n", namespace, "--wait")
        final = canary.wait_phase(api, namespace, "Failed", done=canary.rolled_back)

    floor = final["rollback"]["primaryReplicas"]
    assert floor == 2  # the primary's one replica and the canary's one, within 1..4
    moved_back = next(s.resource_version for s in recorder.snapshots
                      if s.phase == "Failed" and recorder.written(s) == 0)
    ready_before = [ready for version, ready in sorted(primary.seen) if version < moved_back]
    assert ready_before and ready_before[-1] >= floor, (primary.seen, moved_back)


def test_an_open_p1_incident_holds_the_start_until_it_is_resolved(
        api: client.ApiClient, cluster: LocalCluster, gateway_address: str, namespace: str,
        running_operator: LocalOperator, gateway_prometheus: PrometheusServer) -> None:
    _initialized(api, cluster, namespace, canary.quick(gateway_prometheus.url,
                                                       blockOnIncidents=["P0", "P1"]))
    INCIDENTS.create(api, namespace, incident("payments-down", severity="P1"))
    _release(cluster, namespace, "v2")
    held = canary.wait_phase(api, namespace, "Progressing",
                             done=lambda s: "Incident 'payments-down'" in s.get("message", ""))
    assert held["weight"] == 0 and held["stepIndex"] == 0
    INCIDENTS.patch(api, namespace, "payments-down", {"spec": {"status": "Resolved"}})
    final = canary.wait_phase(api, namespace, "Succeeded", timeout=180)
    assert final["failedChecks"] == 0
