from __future__ import annotations

from pathlib import Path

from runbook_operator.devcluster.gateway import (
    CONTROLLER_NAME,
    WEB_PORT,
    traefik_args,
    traefik_objects,
)
from runbook_operator.devcluster.runtime.images import gateway_image, is_runtime_image
from runbook_operator.devcluster.runtime.spec import (
    PodFacts,
    Sources,
    container_argv,
    container_env,
)


def _by_kind(version: str = "v3.7.13") -> dict[str, dict]:
    return {o["kind"]: o for o in traefik_objects(version)}


def test_traefik_never_calls_home_and_serves_both_providers() -> None:
    args = traefik_args()
    assert "--global.checkNewVersion=false" in args
    assert "--global.sendAnonymousUsage=false" in args
    assert "--providers.kubernetesGateway=true" in args
    assert "--providers.kubernetesIngressNGINX=true" in args
    assert not any(a.startswith("--experimental") for a in args)


def test_the_entrypoints_bind_the_pods_own_address_which_the_runtime_expands() -> None:
    objects = _by_kind()
    pod = {"metadata": {"name": "traefik-1", "namespace": "traefik", "uid": "u"},
           "spec": {"nodeName": "n", **objects["Deployment"]["spec"]["template"]["spec"]}}
    [container] = pod["spec"]["containers"]
    image = gateway_image(Path("/cache/traefik/v3.7.13-1/traefik"))
    facts = PodFacts(pod_ip="10.244.32.9", host_ip="127.0.0.1", node_name="n")
    env = container_env(pod, container, image, facts, Sources({}, {}, ""), {})
    argv = container_argv(container, image, env)
    assert argv[0] == "/cache/traefik/v3.7.13-1/traefik"
    assert f"--entryPoints.web.address=10.244.32.9:{WEB_PORT}" in argv
    assert "--providers.kubernetesGateway.statusAddress.ip=10.244.32.9" in argv
    assert is_runtime_image(container["image"])


def test_the_gateway_class_and_ingress_class_name_traefik_as_their_controller() -> None:
    objects = _by_kind()
    assert objects["GatewayClass"]["spec"]["controllerName"] == CONTROLLER_NAME
    assert objects["IngressClass"]["metadata"]["name"] == "nginx"
    template = objects["Deployment"]["spec"]["template"]
    assert template["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert template["spec"]["serviceAccountName"] == objects["ServiceAccount"]["metadata"]["name"]


def test_traefik_may_write_route_status_and_read_endpointslices_but_not_write_pods() -> None:
    rules = _by_kind()["ClusterRole"]["rules"]
    allowed = {(g, r, v) for rule in rules for g in rule["apiGroups"]
               for r in rule["resources"] for v in rule["verbs"]}
    assert ("gateway.networking.k8s.io", "httproutes/status", "update") in allowed
    assert ("discovery.k8s.io", "endpointslices", "watch") in allowed
    assert ("networking.k8s.io", "ingresses", "watch") in allowed
    assert not any(r == "pods" and v != "get" for _, r, v in allowed)
