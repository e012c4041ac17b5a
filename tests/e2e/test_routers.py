"""The NGINX, Istio and replica-ratio routers driven through the `Router` protocol against
the real API server, under the operator's own ServiceAccount identity (so its RBAC is tested
too): reconcile creates what it must, every weight written reads back, finalize sends the
traffic back to what outlives a deleted CanaryRollout, and the user's objects, applied again
as a GitOps tool would, show no diff. The replica-ratio router moves real traffic: demo-app
pods behind one Service, reached through the gateway, answer in the ratio of the replicas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from runbook_operator.api.canaryrollout import CanaryRolloutSpec
from runbook_operator.demoapp import traffic
from runbook_operator.devcluster import gateway
from runbook_operator.devcluster.cluster import LocalCluster, run_build
from runbook_operator.devcluster.waiting import wait_for
from runbook_operator.integrations.kubernetes import Kube, connect
from runbook_operator.integrations.routers import (
    Backends,
    Owner,
    Router,
    RouterError,
    Verification,
    router_for,
)
from runbook_operator.integrations.routers.replica_ratio import split
from tests.support import canary, demo_app

WEIGHTS = (0, 5, 30, 100)
SERVICE = "checkout"
BACKENDS_PORT = 80
ISTIO_CRD = "istio-virtualservice-crd.yaml"
PART_OF = "app.kubernetes.io/part-of"
REQUESTS = 400
TOLERANCE = 0.05


@pytest.fixture(scope="session")
def operator_kube(operator_kubeconfig: Path) -> Kube:
    """The routers' API access: the operator's ServiceAccount, bound by manifests/rbac.yaml."""
    return connect(kubeconfig=str(operator_kubeconfig))


@pytest.fixture(scope="session")
def istio_crd(cluster: LocalCluster) -> None:
    """Istio's VirtualService CRD (from the istio.io/api module, cached before the session
    entered its network namespace: hack/build-istio-crds.sh)."""
    crd = run_build("build-istio-crds.sh", (ISTIO_CRD,)) / ISTIO_CRD
    cluster.kubectl("apply", "--server-side", "-f", str(crd))
    cluster.wait_established("crd/virtualservices.networking.istio.io")


def _router(api: client.ApiClient, kube: Kube, namespace: str,
            chosen: dict[str, Any]) -> tuple[Router, Owner]:
    """The router `chosen` (a spec's `router`) from the factory, for a CanaryRollout that
    exists (objects the router creates are owned by it) but that no operator runs: the
    object's target does not exist, so the session's operator, when an earlier test started
    it, leaves everything alone (Stalled, TargetNotFound)."""
    body = canary.rollout("http://127.0.0.1:9", router=chosen)
    canary.create(api, namespace, {**body, "spec": {**body["spec"],
                                                    "targetRef": {"name": "not-run-here"}}})
    uid = canary.ROLLOUTS.get(api, namespace, canary.NAME)["metadata"]["uid"]
    owner = Owner(canary.NAME, namespace, uid)
    spec = CanaryRolloutSpec.model_validate(body["spec"])
    backends = Backends(namespace, SERVICE, BACKENDS_PORT, "http")
    return router_for(spec, backends, owner, kube), owner


def _get(cluster: LocalCluster, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    found = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    return json.loads(found.stdout) if found.returncode == 0 else None


def _confirmed(router: Router, weight: int) -> Verification | None:
    answer = router.verify(weight)
    return answer if answer.verified == "Yes" else None


def _round_trip(router: Router, cluster: LocalCluster, namespace: str,
                users: dict[str, Any]) -> None:
    """Every weight written is read back as itself, and another weight is not; the user's
    object shows no diff and, applied again, leaves the weight in place."""
    for weight in WEIGHTS:
        router.set_weight(weight)
        answer = wait_for(lambda w=weight: _confirmed(router, w),
                          f"the router to confirm {weight}%", timeout=120)
        assert answer.weight == weight, answer
        assert router.verify(50).verified == "No"
        assert canary.diff_as_user(cluster, namespace, users) == ""
        canary.apply_as_user(cluster, namespace, users)
        assert router.verify(weight).verified == "Yes"


def _ingress(namespace: str, service: str) -> dict[str, Any]:
    backend = {"service": {"name": service, "port": {"number": BACKENDS_PORT}}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "annotations": {"team": "shop"}},
            "spec": {"ingressClassName": "nginx", "rules": [{
                "host": demo_app.host(namespace)["Host"], "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": backend}]}}]}}


def test_the_nginx_router_maintains_a_canary_ingress_and_never_writes_the_users(
        cluster: LocalCluster, api: client.ApiClient, operator_kube: Kube,
        namespace: str) -> None:
    users = _ingress(namespace, f"{SERVICE}-primary")
    canary.apply_as_user(cluster, namespace, users)
    router, owner = _router(api, operator_kube, namespace, {"nginx": {"ingress": "web"}})

    router.reconcile()

    copy_ = _get(cluster, namespace, "ingress", "web-canary")
    assert copy_ is not None
    assert copy_["metadata"]["ownerReferences"][0]["uid"] == owner.uid
    assert copy_["metadata"]["annotations"] == {
        "team": "shop", "nginx.ingress.kubernetes.io/canary": "true",
        "nginx.ingress.kubernetes.io/canary-weight": "0"}
    paths = copy_["spec"]["rules"][0]["http"]["paths"]
    assert paths[0]["backend"]["service"]["name"] == f"{SERVICE}-canary"
    assert router.verify(0).verified == "Yes"
    _round_trip(router, cluster, namespace, users)
    assert _get(cluster, namespace, "ingress", "web-canary")["metadata"]["annotations"][
        "nginx.ingress.kubernetes.io/canary-weight"] == "100"

    router.finalize()

    wait_for(lambda: _get(cluster, namespace, "ingress", "web-canary") is None,
             "the canary Ingress to be deleted", timeout=60)
    assert canary.diff_as_user(cluster, namespace, users) == ""
    retargeted = _ingress(namespace, SERVICE)
    canary.apply_as_user(cluster, namespace, retargeted)
    with pytest.raises(RouterError, match="no backend 'checkout-primary'"):
        router.reconcile()


def test_the_istio_router_writes_the_http_routes_of_the_users_virtual_service(
        cluster: LocalCluster, api: client.ApiClient, operator_kube: Kube, namespace: str,
        istio_crd: None) -> None:
    users = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
             "metadata": {"name": "web"},
             "spec": {"hosts": [demo_app.host(namespace)["Host"]], "gateways": ["web"]}}
    router, _ = _router(api, operator_kube, namespace, {"istio": {"virtualService": "web"}})
    with pytest.raises(RouterError, match="VirtualService 'web' not found"):
        router.reconcile()
    canary.apply_as_user(cluster, namespace, users)

    router.reconcile()
    _round_trip(router, cluster, namespace, users)

    found = _get(cluster, namespace, "virtualservice", "web")
    assert found["spec"]["hosts"] == users["spec"]["hosts"]
    assert found["spec"]["http"] == [{"name": SERVICE, "route": [
        {"destination": {"host": f"{SERVICE}-primary", "port": {"number": 80}}, "weight": 0},
        {"destination": {"host": f"{SERVICE}-canary", "port": {"number": 80}}, "weight": 100},
    ]}]

    router.finalize()

    found = _get(cluster, namespace, "virtualservice", "web")
    assert found["spec"]["http"] == [{"name": SERVICE, "route": [
        {"destination": {"host": f"{SERVICE}-primary", "port": {"number": 80}},
         "weight": 100}]}]
    assert canary.diff_as_user(cluster, namespace, users) == ""


def _shared(deployment: dict[str, Any]) -> dict[str, Any]:
    """A Deployment whose pods carry the label the one Service selects."""
    deployment["spec"]["template"]["metadata"]["labels"][PART_OF] = SERVICE
    return deployment


def _primary(replicas: int) -> dict[str, Any]:
    """`checkout-primary` running v1, its selector's values suffixed as the operator's."""
    body = _shared(canary.target("v1"))
    body["metadata"] = {"name": f"{SERVICE}-primary"}
    labels = body["spec"]["template"]["metadata"]["labels"]
    labels["app.kubernetes.io/name"] = f"{SERVICE}-primary"
    body["spec"]["selector"] = {"matchLabels": {"app.kubernetes.io/name": f"{SERVICE}-primary"}}
    body["spec"]["replicas"] = replicas
    return body


def _user_objects(namespace: str) -> list[dict[str, Any]]:
    """The user's: the target (v2, without replicas), the one Service, a route to it."""
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": SERVICE},
               "spec": {"selector": {PART_OF: SERVICE},
                        "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": SERVICE},
             "spec": {"parentRefs": [{"name": "web"}],
                      "hostnames": [demo_app.host(namespace)["Host"]],
                      "rules": [{"backendRefs": [{"name": SERVICE, "port": 80}]}]}}
    return [_shared(canary.target("v2")), service, route]


@pytest.fixture
def one_service(cluster: LocalCluster, gateway_address: str,
                namespace: str) -> tuple[str, list[dict[str, Any]]]:
    """Primary (v1) and target (v2) pods behind the user's one Service, routed by the
    gateway: its URL and the user's objects."""
    demo_app.apply(cluster, namespace, demo_app.example_objects("gateway.yaml"))
    demo_app.apply(cluster, namespace, [_primary(1)])
    users = _user_objects(namespace)
    canary.apply_as_user(cluster, namespace, *users)
    url = gateway.gateway_url(cluster, namespace, "web")
    cluster.kubectl("wait", "-n", namespace, f"httproute/{SERVICE}", "--timeout=120s",
                    "--for=jsonpath={.status.parents[0].conditions[?(@.type==\"ResolvedRefs\")]"
                    ".status}=True", timeout=130)
    return url, users


def _answering(url: str, host: dict[str, str], pods: int, versions: set[str]) -> bool:
    """The gateway spreads requests over exactly `pods` pods of `versions` (it follows the
    EndpointSlice a moment after the pods change)."""
    tally = traffic.send(url, 10 * pods, concurrency=4, headers=host)
    return len(tally.by_pod()) == pods and set(tally.by_version()) == versions


def test_the_replica_ratio_router_splits_one_services_traffic_by_ready_pods(
        cluster: LocalCluster, api: client.ApiClient, operator_kube: Kube, namespace: str,
        one_service: tuple[str, list[dict[str, Any]]],
        figures: dict[str, list[float]]) -> None:
    url, users = one_service
    host = demo_app.host(namespace)
    total = 4
    router, _ = _router(api, operator_kube, namespace,
                        {"replicaRatio": {"totalReplicas": total}})
    router.reconcile()

    for weight in WEIGHTS:
        router.set_weight(weight)
        wait_for(lambda w=weight: router.verify(w).verified == "Yes",
                 f"{weight}% as ready pods", timeout=240)
        primary, canary_pods = split(total, weight)
        versions = {v for v, n in (("v1", primary), ("v2", canary_pods)) if n}
        wait_for(lambda v=versions: _answering(url, host, total, v),
                 f"the gateway answering from {total} pods of {versions}", timeout=120)

        tally = traffic.send(url, REQUESTS, concurrency=4, headers=host)

        share = tally.shares().get("v2", 0.0)
        figures.setdefault(f"replica ratio {weight}%: canary share observed (expected "
                           f"{canary_pods}/{total})", []).append(share)
        assert abs(share - canary_pods / total) <= TOLERANCE, tally.summary()
        assert canary.diff_as_user(cluster, namespace, *users) == ""
        canary.apply_as_user(cluster, namespace, *users)
        assert router.verify(weight).verified == "Yes"

    _a_pod_not_ready_is_cannot_tell(cluster, namespace, router, 100)
    router.set_weight(30)
    wait_for(lambda: router.verify(30).verified == "Yes", "30% as ready pods", timeout=240)
    router.finalize()

    canaries = split(total, 30)[1]
    wait_for(lambda: _answering(url, host, canaries, {"v2"}), "only the target's pods answering",
             timeout=120)
    assert canary.deployment(cluster, namespace, f"{SERVICE}-primary")["spec"]["replicas"] == 0
    assert traffic.send(url, 100, concurrency=4, headers=host).shares() == {"v2": 1.0}
    assert canary.diff_as_user(cluster, namespace, *users) == ""


def _a_pod_not_ready_is_cannot_tell(cluster: LocalCluster, namespace: str, router: Router,
                                    weight: int) -> None:
    pod = demo_app.pods(cluster, namespace, "v2")[0]["status"]["podIP"]
    demo_app.set_ready(pod, False)

    def doubted() -> Verification | None:
        answer = router.verify(weight)
        return answer if answer.verified != "Yes" else None

    answer = wait_for(doubted, "the router to notice a pod not ready", timeout=120)
    assert answer.verified == "Unknown", answer
    demo_app.set_ready(pod, True)
    wait_for(lambda: router.verify(weight).verified == "Yes", "the pod ready again",
             timeout=120)


def test_the_replica_ratio_router_refuses_a_service_that_misses_the_primary(
        cluster: LocalCluster, api: client.ApiClient, operator_kube: Kube,
        namespace: str) -> None:
    primary, target = _primary(1), _shared(canary.target("v2", image=canary.FAKED_IMAGE))
    primary["spec"]["template"]["spec"]["containers"][0]["image"] = canary.FAKED_IMAGE
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": SERVICE},
               "spec": {"selector": {"app.kubernetes.io/name": SERVICE},
                        "ports": [{"name": "http", "port": 80}]}}
    demo_app.apply(cluster, namespace, [primary, target, service])
    router, _ = _router(api, operator_kube, namespace, {"replicaRatio": {}})

    with pytest.raises(RouterError, match="does not select the pods of checkout-primary"):
        router.reconcile()

