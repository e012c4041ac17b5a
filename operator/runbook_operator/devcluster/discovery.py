"""Prometheus finds its targets as in a cluster: ``kubernetes_sd_configs`` against the API
server, under a ServiceAccount of its own with read access to nodes and pods.

Two jobs, the usual ones:

``kubernetes-pods``
  Pods annotated ``prometheus.io/scrape: "true"`` (the demo app, Traefik), scraped at their
  pod IP on ``prometheus.io/port`` and ``prometheus.io/path``. ``job`` and ``service`` are the
  pod's ``app.kubernetes.io/name`` label (so ``up{job="checkout"}`` and
  ``http_requests_total{service="checkout"}`` mean what the example rules expect), ``version``
  its ``app.kubernetes.io/version``; ``namespace`` and ``pod`` as usual. Pods that are not
  running are dropped. A pod with several container ports yields one target per port, all
  rewritten to the annotated one: Prometheus keeps one target per label set.
  ``honor_labels``: a series' own label wins over the target's, so Traefik's
  ``traefik_service_requests_total{service=...}`` keeps its backend in ``service``.
``kubelet``
  Each node's cAdvisor endpoint (``/metrics/cadvisor``): the devcluster runtime serves it on
  the port its Node names in an annotation, on the node's InternalIP.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runbook_operator.devcluster.cluster import (
    RUNTIME_METRICS_PORT_ANNOTATION,
    LocalCluster,
    run_build,
)
from runbook_operator.devcluster.prometheus import PrometheusServer

NAMESPACE = "monitoring"
ACCOUNT = "prometheus"


def _meta(name: str) -> str:
    """A Kubernetes label or annotation name as Prometheus spells its meta label suffix."""
    return "".join(c if c.isalnum() else "_" for c in name)


def scrape_configs(kubeconfig: Path) -> list[dict[str, Any]]:
    pod = "__meta_kubernetes_pod_"
    app_name = f"{pod}label_{_meta('app.kubernetes.io/name')}"

    def annotation(name: str) -> str:
        return f"{pod}annotation_{_meta(name)}"

    pods = {
        "job_name": "kubernetes-pods",
        "honor_labels": True,
        "kubernetes_sd_configs": [{"role": "pod", "kubeconfig_file": str(kubeconfig)}],
        "relabel_configs": [
            {"source_labels": [annotation("prometheus.io/scrape")], "action": "keep",
             "regex": "true"},
            {"source_labels": [f"{pod}phase"], "action": "drop",
             "regex": "Pending|Succeeded|Failed|Unknown"},
            {"source_labels": [annotation("prometheus.io/path")], "regex": "(.+)",
             "target_label": "__metrics_path__"},
            {"source_labels": [f"{pod}ip", annotation("prometheus.io/port")],
             "regex": r"(.+);(\d+)", "replacement": "$1:$2", "target_label": "__address__"},
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": [f"{pod}name"], "target_label": "pod"},
            {"source_labels": [app_name], "regex": "(.+)", "target_label": "job"},
            {"source_labels": [app_name], "regex": "(.+)", "target_label": "service"},
            {"source_labels": [f"{pod}label_{_meta('app.kubernetes.io/version')}"],
             "regex": "(.+)", "target_label": "version"},
        ],
    }
    port = f"__meta_kubernetes_node_annotation_{_meta(RUNTIME_METRICS_PORT_ANNOTATION)}"
    kubelet = {
        "job_name": "kubelet",
        "metrics_path": "/metrics/cadvisor",
        "kubernetes_sd_configs": [{"role": "node", "kubeconfig_file": str(kubeconfig)}],
        "relabel_configs": [
            {"source_labels": [port], "action": "keep", "regex": r"\d+"},
            {"source_labels": ["__meta_kubernetes_node_address_InternalIP", port],
             "regex": r"(.+);(\d+)", "replacement": "$1:$2", "target_label": "__address__"},
            {"source_labels": ["__meta_kubernetes_node_name"], "target_label": "node"},
        ],
    }
    return [pods, kubelet]


def rbac_objects() -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": ACCOUNT, "namespace": NAMESPACE}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": ACCOUNT},
         "rules": [{"apiGroups": [""], "resources": ["nodes", "pods"],
                    "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": ACCOUNT},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": ACCOUNT},
         "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": NAMESPACE}]},
    ]


def discovering_prometheus(cluster: LocalCluster, directory: Path) -> PrometheusServer:
    """A Prometheus (not started) that finds its targets in `cluster`: built by
    ``hack/build-prometheus.sh``, as Debian's has no Kubernetes discovery."""
    binary = run_build("build-prometheus.sh").resolve()
    return PrometheusServer([], scrape_configs=kubernetes_scrape_configs(cluster, directory),
                            binary=binary)


def kubernetes_scrape_configs(cluster: LocalCluster, directory: Path) -> list[dict[str, Any]]:
    """Create Prometheus' ServiceAccount and RBAC, write its kubeconfig into `directory`,
    and return the scrape configs that discover through it."""
    cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": rbac_objects()}))
    cluster.kubectl("wait", "--for=create", "--timeout=60s", "-n", NAMESPACE,
                    f"serviceaccount/{ACCOUNT}")
    kubeconfig = cluster.service_account_kubeconfig(NAMESPACE, ACCOUNT,
                                                    directory / "prometheus.kubeconfig")
    return scrape_configs(kubeconfig)
