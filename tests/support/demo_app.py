"""The demo app and its gateway objects (examples/demo-app) in a test's namespace, and what a
test does to them: weights, readiness, EndpointSlices. The requests themselves go through
:mod:`runbook_operator.demoapp.traffic`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import yaml

from runbook_operator.demoapp import traffic
from runbook_operator.devcluster import gateway
from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.waiting import wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "demo-app"
VERSIONS = ("v1", "v2")
ADMIN_PORT = 8081


def example_objects(*files: str) -> list[dict[str, Any]]:
    return [doc for name in files
            for doc in yaml.safe_load_all((EXAMPLES / name).read_text()) if doc]


def apply(cluster: LocalCluster, namespace: str, objects: list[dict[str, Any]]) -> None:
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=body)


def deploy_checkout(cluster: LocalCluster, namespace: str) -> None:
    """Both versions of the demo app and their Services, rolled out."""
    apply(cluster, namespace, example_objects("checkout.yaml"))
    for version in VERSIONS:
        cluster.kubectl("rollout", "status", "-n", namespace, f"deployment/checkout-{version}",
                        "--timeout=180s", timeout=200)


def host(namespace: str) -> dict[str, str]:
    """The Host header of a test's route: every test's Gateway listens on the one gateway's
    port 8000, so each route answers only its own namespace's host name."""
    return {"Host": f"{namespace}.test"}


def deploy_route(cluster: LocalCluster, namespace: str) -> str:
    """The example Gateway and HTTPRoute (80/20), the route limited to :func:`host`; the
    Gateway's URL once the route is accepted and its backends resolved."""
    objects = example_objects("gateway.yaml", "httproute.yaml")
    for route in (o for o in objects if o["kind"] == "HTTPRoute"):
        route["spec"]["hostnames"] = [host(namespace)["Host"]]
    apply(cluster, namespace, objects)
    url = gateway.gateway_url(cluster, namespace, "web")
    for condition in ("Accepted", "ResolvedRefs"):
        cluster.kubectl("wait", "-n", namespace, "httproute/checkout", "--timeout=120s",
                        f"--for=jsonpath={{.status.parents[0].conditions[?(@.type==\"{condition}"
                        "\")].status}=True", timeout=130)
    return url


def serving(url: str, versions: set[str], headers: dict[str, str] | None = None,
            requests: int = 40) -> None:
    """Until `requests` answers in a row came from the demo app, from exactly `versions`
    (the gateway answers 503 for a backend whose endpoints it has not loaded yet)."""
    def ready() -> bool:
        tally = traffic.send(url, requests, headers=headers)
        return set(tally.by_version()) == versions
    wait_for(ready, f"the gateway at {url} serving {sorted(versions)}", timeout=120)


def set_weights(cluster: LocalCluster, namespace: str, weights: dict[str, int],
                route: str = "checkout") -> None:
    """Weights by backend Service name, in one merge patch of the route's rules."""
    found = json.loads(cluster.kubectl("get", "httproute", route, "-n", namespace,
                                       "-o", "json").stdout)
    rules = found["spec"]["rules"]
    for backend in rules[0]["backendRefs"]:
        backend["weight"] = weights[backend["name"]]
    cluster.kubectl("patch", "httproute", route, "-n", namespace, "--type=merge",
                    "-p", json.dumps({"spec": {"rules": rules}}))


def pods(cluster: LocalCluster, namespace: str, version: str) -> list[dict[str, Any]]:
    return json.loads(cluster.kubectl(
        "get", "pods", "-n", namespace, "-l", f"app.kubernetes.io/version={version}",
        "-o", "json").stdout)["items"]


def set_ready(pod_ip: str, ready: bool) -> None:
    """The demo app's admin endpoint: its readiness probe passes or fails from now on."""
    response = httpx.put(f"http://{pod_ip}:{ADMIN_PORT}/ready",
                         content=b"true" if ready else b"false", timeout=10)
    response.raise_for_status()


def endpoints(cluster: LocalCluster, namespace: str, service: str) -> dict[str, bool]:
    """Address → ready, over the Service's EndpointSlices."""
    slices = json.loads(cluster.kubectl(
        "get", "endpointslices", "-n", namespace, "-l", f"kubernetes.io/service-name={service}",
        "-o", "json").stdout)["items"]
    return {address: bool(e.get("conditions", {}).get("ready"))
            for s in slices for e in s.get("endpoints") or [] for address in e["addresses"]}
