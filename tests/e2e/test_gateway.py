"""The gateway with real traffic: Traefik, built from its Go module and run by the runtime as
a pod, routes requests to the demo app's pods by HTTPRoute weights (and Ingresses of class
nginx, with ingress-nginx's canary weights), and follows readiness through the
EndpointSlices. Every request goes from this test, inside the cluster's network namespace, to
the gateway's pod address."""

from __future__ import annotations

import time
from typing import Any

from runbook_operator.demoapp import traffic
from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.waiting import wait_for
from tests.support import demo_app
from tests.support.demo_app import VERSIONS

REQUESTS = 1000
TOLERANCE = 0.05


def test_an_httproute_at_80_20_splits_1000_requests_80_20(
        cluster: LocalCluster, gateway_address: str, namespace: str) -> None:
    demo_app.deploy_checkout(cluster, namespace)
    url = demo_app.deploy_route(cluster, namespace)
    assert url == f"http://{gateway_address}:8000"
    host = demo_app.host(namespace)
    demo_app.set_weights(cluster, namespace, {"checkout-v1": 80, "checkout-v2": 20})
    demo_app.serving(url, set(VERSIONS), host)

    tally = traffic.send(url, REQUESTS, concurrency=8, headers=host)

    shares = tally.shares()
    assert set(shares) == set(VERSIONS), tally.summary()
    assert abs(shares["v1"] - 0.80) <= TOLERANCE, tally.summary()
    assert abs(shares["v2"] - 0.20) <= TOLERANCE, tally.summary()
    assert tally.codes()[200] + tally.codes()[500] == REQUESTS  # every answer from a pod
    assert len(tally.by_pod()) == 3  # v1's two pods and v2's one


def test_a_weight_change_reaches_every_answer(
        cluster: LocalCluster, gateway_address: str, namespace: str,
        figures: dict[str, list[float]]) -> None:
    demo_app.deploy_checkout(cluster, namespace)
    url = demo_app.deploy_route(cluster, namespace)
    host = demo_app.host(namespace)
    demo_app.serving(url, set(VERSIONS), host)
    for weights, version in (({"checkout-v1": 0, "checkout-v2": 100}, "v2"),
                             ({"checkout-v1": 100, "checkout-v2": 0}, "v1")):
        patched = time.monotonic()
        demo_app.set_weights(cluster, namespace, weights)
        first, _ = traffic.until_only(url, version, consecutive=50, timeout=60, headers=host)
        figures.setdefault("gateway propagation after a weight patch (s)", []).append(
            first - patched)
        tally = traffic.send(url, 200, concurrency=4, headers=host)
        assert tally.shares() == {version: 1.0}, tally.summary()


def test_a_failing_readiness_probe_takes_a_pod_out_of_the_slice_and_the_rotation(
        cluster: LocalCluster, gateway_address: str, namespace: str) -> None:
    demo_app.deploy_checkout(cluster, namespace)
    url = demo_app.deploy_route(cluster, namespace)
    host = demo_app.host(namespace)
    demo_app.set_weights(cluster, namespace, {"checkout-v1": 100, "checkout-v2": 0})
    demo_app.serving(url, {"v1"}, host)
    leaving, staying = demo_app.pods(cluster, namespace, "v1")
    names = {p["status"]["podIP"]: p["metadata"]["name"] for p in (leaving, staying)}
    assert traffic.send(url, 100, headers=host).by_pod().keys() == set(names.values())

    demo_app.set_ready(leaving["status"]["podIP"], False)
    _until_endpoints(cluster, namespace, {leaving["status"]["podIP"]: False,
                                          staying["status"]["podIP"]: True})
    _until_only_pod(url, host, staying["metadata"]["name"])
    tally = traffic.send(url, 200, concurrency=4, headers=host)
    assert tally.by_pod() == {staying["metadata"]["name"]: 200}, tally.by_pod()

    demo_app.set_ready(leaving["status"]["podIP"], True)
    _until_endpoints(cluster, namespace, dict.fromkeys(names, True))
    wait_for(lambda: traffic.send(url, 20, headers=host).by_pod().keys() == set(names.values()),
             "both pods answering again", timeout=60)


def _until_endpoints(cluster: LocalCluster, namespace: str, wanted: dict[str, bool]) -> None:
    wait_for(lambda: demo_app.endpoints(cluster, namespace, "checkout-v1") == wanted,
             f"EndpointSlice of checkout-v1 to read {wanted}", timeout=60)


def _until_only_pod(url: str, host: dict[str, str], pod: str) -> None:
    wait_for(lambda: traffic.send(url, 50, headers=host).by_pod() == {pod: 50},
             f"50 answers in a row from {pod}", timeout=60)


def _nginx_ingress(name: str, host: dict[str, str], service: str,
                   annotations: dict[str, str] | None = None) -> dict[str, Any]:
    backend = {"service": {"name": service, "port": {"number": 80}}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": host["Host"], "http": {
                "paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}]}}


def test_ingresses_of_class_nginx_are_served_by_the_same_gateway(
        cluster: LocalCluster, gateway_address: str, namespace: str) -> None:
    """Traefik's NGINX provider, for clusters that use Ingresses."""
    demo_app.deploy_checkout(cluster, namespace)
    host = {"Host": f"shop.{namespace}.test"}
    demo_app.apply(cluster, namespace, [_nginx_ingress("checkout", host, "checkout-v2")])
    cluster.kubectl("wait", "-n", namespace, "ingress/checkout", "--timeout=120s",
                    f"--for=jsonpath={{.status.loadBalancer.ingress[0].ip}}={gateway_address}",
                    timeout=130)
    url = f"http://{gateway_address}:8000/"
    demo_app.serving(url, {"v2"}, headers=host)

    tally = traffic.send(url, 200, concurrency=4, headers=host)

    assert tally.shares() == {"v2": 1.0}, tally.summary()
    other = traffic.send(url, 10, headers={"Host": f"elsewhere.{namespace}.test"})
    assert other.codes() == {404: 10}  # no Ingress, no route for another host


def test_a_canary_ingress_of_class_nginx_gets_its_canary_weight_of_the_requests(
        cluster: LocalCluster, gateway_address: str, namespace: str) -> None:
    """ingress-nginx's canary annotations, served by Traefik's NGINX provider (v3.7 on): a
    second Ingress for the same host and path, `canary: "true"` and `canary-weight: "30"`,
    gets 30 % of the requests; without the annotation's weight, none."""
    demo_app.deploy_checkout(cluster, namespace)
    host = {"Host": f"shop.{namespace}.test"}
    canary = {"nginx.ingress.kubernetes.io/canary": "true",
              "nginx.ingress.kubernetes.io/canary-weight": "30"}
    demo_app.apply(cluster, namespace, [
        _nginx_ingress("checkout", host, "checkout-v1"),
        _nginx_ingress("checkout-canary", host, "checkout-v2", canary)])
    url = f"http://{gateway_address}:8000/"
    demo_app.serving(url, {"v1", "v2"}, headers=host)

    tally = traffic.send(url, 1000, concurrency=4, headers=host)

    assert abs(tally.shares().get("v2", 0.0) - 0.30) <= 0.02, tally.summary()
    cluster.kubectl("annotate", "-n", namespace, "ingress/checkout-canary", "--overwrite",
                    "nginx.ingress.kubernetes.io/canary-weight=0")
    traffic.until_only(url, "v1", headers=host, timeout=60)
