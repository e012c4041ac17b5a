"""The local cluster's gateway: Traefik as the Gateway API implementation (and the NGINX
Ingress annotations' server), deployed as a cluster would run it — a Deployment under its own
ServiceAccount and ClusterRole, a GatewayClass, an IngressClass — whose pod the runtime runs
from the binary ``hack/build-traefik.sh`` built.

Flags, and why:

``--providers.kubernetesGateway``
  HTTPRoute backend weights (weighted round robin over the backends' ready endpoints, from
  their EndpointSlices). ``statusAddress.ip=$(POD_IP)``: no load balancer gives the Gateway an
  address, so Traefik publishes its own pod's, where the traffic generator sends requests.
``--providers.kubernetesIngressNGINX``
  Ingresses of class ``nginx`` with ingress-nginx's annotations, canary weights included. No
  longer experimental since v3.6.2 (the ``--experimental.kubernetesIngressNGINX`` flag only
  logs a deprecation in v3.6.12).
``--entryPoints.web.address=$(POD_IP):8000``
  A Gateway listener on port 8000 binds to the entryPoint with that port. The pod's own
  address, not ``:8000``: every pod of the local cluster shares one network namespace, where
  a wildcard bind would also answer on every other pod's address.
``--entryPoints.traefik.address=$(POD_IP):8080``
  ``/ping`` (the readiness probe) and ``/metrics`` (``--metrics.prometheus``), which
  Prometheus finds through the pod's ``prometheus.io/*`` annotations.
``--global.checkNewVersion=false --global.sendAnonymousUsage=false``
  Without them Traefik tries to reach the internet.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from runbook_operator.devcluster.cluster import GATEWAY_API_CRDS, ClusterError, LocalCluster
from runbook_operator.devcluster.runtime.images import GATEWAY_REPOSITORY

NAMESPACE = "traefik"
NAME = "traefik"
GATEWAY_CLASS = "traefik"
CONTROLLER_NAME = "traefik.io/gateway-controller"
#: Ingress-nginx's names, which Traefik's NGINX provider answers to by default.
INGRESS_CLASS = "nginx"
INGRESS_CONTROLLER = "k8s.io/ingress-nginx"
WEB_PORT = 8000
ADMIN_PORT = 8080
_NONROOT = 65532


def traefik_args() -> list[str]:
    return [
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
        f"--entryPoints.web.address=$(POD_IP):{WEB_PORT}",
        f"--entryPoints.traefik.address=$(POD_IP):{ADMIN_PORT}",
        "--ping=true",
        "--metrics.prometheus=true",
        "--providers.kubernetesGateway=true",
        "--providers.kubernetesGateway.statusAddress.ip=$(POD_IP)",
        "--providers.kubernetesIngressNGINX=true",
        "--providers.kubernetesIngressNGINX.publishStatusAddress=$(POD_IP)",
        "--log.level=INFO",
    ]


def _cluster_role() -> dict[str, Any]:
    """Traefik's documented rules for its Gateway API and Ingress NGINX providers
    (docs/content/reference/dynamic-configuration/kubernetes-{gateway,ingress-nginx}-rbac.yml
    in its module), merged."""
    gateway_kinds = ["gatewayclasses", "gateways", "httproutes", "grpcroutes", "tcproutes",
                     "tlsroutes", "referencegrants", "backendtlspolicies"]
    read = ["get", "list", "watch"]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": NAME},
        "rules": [
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["services", "secrets", "configmaps"],
             "verbs": read},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
             "verbs": ["list", "watch"]},
            {"apiGroups": ["gateway.networking.k8s.io"], "resources": gateway_kinds,
             "verbs": read},
            {"apiGroups": ["gateway.networking.k8s.io"],
             "resources": [f"{k}/status" for k in gateway_kinds], "verbs": ["update"]},
            {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingressclasses"],
             "verbs": ["list", "watch"]},
            {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"],
             "verbs": ["update"]},
        ],
    }


def traefik_objects(version: str) -> list[dict[str, Any]]:
    """Everything a cluster needs to run Traefik `version` as its gateway."""
    labels = {"app.kubernetes.io/name": NAME}
    container = {
        "name": NAME,
        "image": f"{GATEWAY_REPOSITORY}:{version}",
        "args": traefik_args(),
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "ports": [{"name": "web", "containerPort": WEB_PORT},
                  {"name": "admin", "containerPort": ADMIN_PORT}],
        "readinessProbe": {"httpGet": {"path": "/ping", "port": "admin"},
                           "periodSeconds": 1, "failureThreshold": 2},
        "securityContext": {"runAsUser": _NONROOT, "runAsGroup": _NONROOT,
                            "runAsNonRoot": True, "allowPrivilegeEscalation": False},
    }
    template = {
        "metadata": {"labels": labels, "annotations": {
            "prometheus.io/scrape": "true", "prometheus.io/port": str(ADMIN_PORT),
            "prometheus.io/path": "/metrics"}},
        "spec": {"serviceAccountName": NAME, "containers": [container]},
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": NAME, "namespace": NAMESPACE}},
        _cluster_role(),
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": NAME},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": NAME},
         "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}]},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": template}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
         "metadata": {"name": GATEWAY_CLASS}, "spec": {"controllerName": CONTROLLER_NAME}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
         "metadata": {"name": INGRESS_CLASS}, "spec": {"controller": INGRESS_CONTROLLER}},
    ]


def traefik_version(cluster: LocalCluster) -> str:
    """The version built (the cache directory is named ``<version>-<build revision>``)."""
    return cluster.gateway_dir.name.rsplit("-", 1)[0]


def install(cluster: LocalCluster, timeout: float = 180) -> str:
    """Install the Gateway API standard bundle (its CRDs, and since v1.5 the
    ValidatingAdmissionPolicy that guards their upgrades) and Traefik, wait until its pod is
    ready and the GatewayClass accepted; return Traefik's pod IP (its entrypoints' address)."""
    if not cluster.isolated:
        raise ClusterError("the gateway needs the cluster's network namespace, where pods "
                           "have addresses it can reach")
    wait = f"--timeout={int(timeout)}s"
    crds = cluster.gateway_dir / GATEWAY_API_CRDS
    cluster.kubectl("apply", "--server-side", "-f", str(crds))
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(crds.read_text())
             if d and d["kind"] == "CustomResourceDefinition"]
    cluster.wait_established(*(f"crd/{n}" for n in names), timeout=timeout)
    objects = {"apiVersion": "v1", "kind": "List", "items": traefik_objects(
        traefik_version(cluster))}
    cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(objects))
    cluster.kubectl("rollout", "status", "-n", NAMESPACE, f"deployment/{NAME}", wait,
                    timeout=timeout + 10)
    cluster.kubectl("wait", "--for=condition=Accepted", wait, f"gatewayclass/{GATEWAY_CLASS}",
                    timeout=timeout + 10)
    return address(cluster)


def address(cluster: LocalCluster) -> str:
    """Traefik's pod IP."""
    return cluster.kubectl("get", "pods", "-n", NAMESPACE, "-l", f"app.kubernetes.io/name={NAME}",
                           "-o", "jsonpath={.items[0].status.podIP}").stdout.strip()


def gateway_url(cluster: LocalCluster, namespace: str, gateway: str, timeout: float = 120) -> str:
    """``http://<address>:<port>`` of a Gateway once Programmed: the address its status
    publishes and its first listener's port."""
    cluster.kubectl("wait", "--for=condition=Programmed", f"--timeout={int(timeout)}s",
                    "-n", namespace, f"gateway/{gateway}", timeout=timeout + 10)
    found = json.loads(cluster.kubectl("get", "gateway", gateway, "-n", namespace, "-o",
                                       "json").stdout)
    host = found["status"]["addresses"][0]["value"]
    return f"http://{host}:{found['spec']['listeners'][0]['port']}"
