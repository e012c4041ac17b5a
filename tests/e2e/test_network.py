"""The pod network: the session runs in a network namespace of its own where nothing but the
loopback exists and the pod network is local; pods of the runtime bind their own addresses,
kwok's pods get addresses from the same network, and EndpointSlices list both.

The namespace test reads the kernel's view (``ip``) and sends nothing anywhere."""

from __future__ import annotations

import json
import os
import subprocess
from ipaddress import ip_address, ip_network

import httpx
import pytest

from runbook_operator.devcluster import network
from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.waiting import wait_for
from tests.support import demo_app


def _ip(*args: str) -> list[dict]:
    return json.loads(subprocess.run(["ip", "-json", *args], capture_output=True, text=True,
                                     check=True).stdout)


def test_the_namespace_holds_only_loopback_and_the_local_pod_network() -> None:
    net = network.current()
    assert net is not None and net.isolated, net and net.note
    outside = f"/proc/{os.getppid()}/ns/net"  # the shell that started the session
    assert os.stat("/proc/self/ns/net").st_ino != os.stat(outside).st_ino

    links = _ip("link", "show")
    assert [(link["ifname"], link["link_type"]) for link in links] == [("lo", "loopback")]
    addresses = [(a["family"], a["local"], a["prefixlen"])
                 for link in _ip("address", "show") for a in link["addr_info"]]
    assert sorted(addresses) == [("inet", "127.0.0.1", 8), ("inet6", "::1", 128)]

    routes = _ip("-4", "route", "show", "table", "all") + _ip("-6", "route", "show", "table",
                                                               "all")
    assert {r["dev"] for r in routes} == {"lo"}
    assert not [r for r in routes if r["dst"] == "default"], routes
    pods = [r for r in routes if r["dst"] == network.POD_NETWORK]
    assert pods == [{"type": "local", "dst": network.POD_NETWORK, "dev": "lo", "table": "local",
                     "scope": "host", "flags": []}], pods
    others = [ip_network(r["dst"]) for r in routes if r["dst"] != network.POD_NETWORK]
    assert all(n.is_loopback for n in others), others


def test_runtime_pods_bind_their_own_address_and_endpointslices_list_them_ready(
        cluster: LocalCluster, namespace: str) -> None:
    demo_app.deploy_checkout(cluster, namespace)
    pods = demo_app.pods(cluster, namespace, "v1")
    runtime = ip_network(cluster.pod_network.runtime_cidr)
    addresses = {p["status"]["podIP"]: p["metadata"]["name"] for p in pods}
    assert len(addresses) == 2 and all(ip_address(a) in runtime for a in addresses)

    wait_for(lambda: demo_app.endpoints(cluster, namespace, "checkout-v1")
             == dict.fromkeys(addresses, True), "both v1 pods ready in the EndpointSlice")
    for address, pod in addresses.items():
        answer = httpx.get(f"http://{address}:8080/", timeout=10).json()
        assert answer["pod"] == pod and answer["version"] == "v1"


def test_kwok_pods_take_addresses_from_the_pod_network_which_nothing_serves(
        cluster: LocalCluster, namespace: str) -> None:
    labels = {"app": "faked"}
    container = {"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 8080}]}
    demo_app.apply(cluster, namespace, [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "faked"},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": labels}, "spec": {"containers": [container]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "faked"},
         "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}},
    ])
    cluster.kubectl("rollout", "status", "-n", namespace, "deployment/faked", "--timeout=120s")
    [pod] = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-l", "app=faked", "-o",
                                       "json").stdout)["items"]
    address = pod["status"]["podIP"]
    assert ip_address(address) in ip_network(cluster.pod_network.kwok_cidr)
    assert wait_for(lambda: demo_app.endpoints(cluster, namespace, "faked"),
                    "the kwok pod in its Service's EndpointSlice") == {address: True}
    # No process binds a kwok pod's address, and the demo app's pods bind only their own:
    # the same port on this local address is refused.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{address}:8080/", timeout=5)
