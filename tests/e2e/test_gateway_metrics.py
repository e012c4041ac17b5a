"""Prometheus finds its targets through the API server, as in a cluster: the annotated demo
app pods, Traefik's pod and the kubelet's cAdvisor endpoint; and what they expose agrees with
the traffic sent through the gateway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runbook_operator.core.canary.analysis import GATEWAY_PROVIDER, route_backend
from runbook_operator.demoapp import traffic
from runbook_operator.devcluster import discovery
from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.prometheus import PrometheusServer
from runbook_operator.devcluster.waiting import wait_for
from tests.support import demo_app

LIMIT = 128 * 1024 * 1024  # the example Deployments' memory limit


@pytest.fixture
def prometheus(cluster: LocalCluster, tmp_path: Path) -> Iterator[PrometheusServer]:
    server = discovery.discovering_prometheus(cluster, tmp_path)
    server.start()
    yield server
    server.stop()


def _query(prometheus: PrometheusServer, query: str) -> dict[str, float]:
    """The instant vector, keyed by the labels that tell its series apart here."""
    answer = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": query}, timeout=10)
    answer.raise_for_status()
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return {",".join(f"{k}={v}" for k, v in sorted(r["metric"].items())): float(r["value"][1])
            for r in result}


def test_prometheus_discovers_the_pods_the_gateway_and_the_kubelet(
        cluster: LocalCluster, gateway_address: str, namespace: str,
        prometheus: PrometheusServer) -> None:
    demo_app.deploy_checkout(cluster, namespace)
    url = demo_app.deploy_route(cluster, namespace)
    host = demo_app.host(namespace)
    demo_app.serving(url, set(demo_app.VERSIONS), host)
    traffic.send(url, 300, concurrency=4, headers=host)

    up = wait_for(lambda: (found := _query(
        prometheus, f'up{{job="checkout", namespace="{namespace}"}} == 1')) and len(found) == 3
        and found, "the three demo app pods scraped")
    assert all("service=checkout" in key and "version=v" in key for key in up), up
    assert wait_for(lambda: _query(prometheus, 'up{job="traefik"} == 1'), "Traefik scraped")
    assert wait_for(lambda: _query(prometheus, 'up{job="kubelet"} == 1'), "cAdvisor scraped")

    # Every request the gateway forwarded was answered, and counted, by a pod.
    def agree() -> dict[str, float] | None:
        app = _query(prometheus, f'sum by (version) (http_requests_total{{namespace='
                                 f'"{namespace}"}})')
        v1_backend = route_backend(namespace, "checkout-v1") + GATEWAY_PROVIDER
        gateway = _query(prometheus, f'sum(traefik_service_requests_total{{service=~'
                                     f'"{v1_backend}"}})')
        v1 = app.get("version=v1")
        return app if v1 and list(gateway.values()) == [v1] and "version=v2" in app else None

    wait_for(agree, "the gateway's count for checkout-v1 to equal v1's pods' count")

    memory = _query(prometheus, f'container_memory_working_set_bytes{{namespace="{namespace}"}}')
    limits = _query(prometheus, f'container_spec_memory_limit_bytes{{namespace="{namespace}"}}')
    assert len(memory) == 3 and all(0 < v < LIMIT for v in memory.values()), memory
    assert set(limits.values()) == {LIMIT}
    cpu = _query(prometheus, f'container_cpu_usage_seconds_total{{namespace="{namespace}"}}')
    assert len(cpu) == 3 and all(v > 0 for v in cpu.values()), cpu
    [disk] = _query(prometheus, 'container_fs_usage_bytes{id="/"} / container_fs_limit_bytes'
                                '{id="/"}').values()
    assert 0 < disk < 1
