"""CanaryRollouts through the routers other than the Gateway API's, driven by the operator:
the replica-ratio router with real traffic (the demo app's versions as real pods behind the
user's one Service, reached through Traefik, judged on the app's own series), and the NGINX
router (the canary Ingress it maintains, served by Traefik's NGINX provider), both with real
traffic."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from runbook_operator.demoapp import traffic
from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.prometheus import PrometheusServer
from runbook_operator.integrations.routers.replica_ratio import split
from tests.support import canary, demo_app

RATE = 50
#: A second, slower load that keeps every answer (the recorder leaves out settling time).
PROBE_RATE = 10
#: A pod stopped by a scale-down gets requests until Traefik drops its endpoint (it reloads
#: at most every 2 s). The example's pods answer for 3 s after SIGTERM, so few answers should
#: fail, but one that outlasts that drain fails, one pod's share at a time. Traffic never
#: stops: no half second passes without a good answer.
MOST_FAILED = 0.05
LONGEST_FAILING_RUN = PROBE_RATE // 2
TOLERANCE = 0.05
TOTAL = 4
PART_OF = "app.kubernetes.io/part-of"
#: The demo app's own series for the target's pods (Prometheus' job is their
#: app.kubernetes.io/name: the primary's pods are `checkout-primary`).
_CANARY = 'namespace="{{ namespace }}",job="{{ target }}"'
REQUEST_COUNT = f"sum(increase(http_requests_total{{{_CANARY}}}[{{{{ interval }}}}]))"
SUCCESS_RATE = (f'100 * (sum(rate(http_requests_total{{{_CANARY},code!~"5.."}}'
                f"[{{{{ interval }}}}])) or vector(0)) / sum(rate(http_requests_total"
                f"{{{_CANARY}}}[{{{{ interval }}}}]))")
ANALYSIS = {"interval": "10s", "failureLimit": 2, "minimumRequests": 5,
            "requestCountQuery": REQUEST_COUNT,
            "metrics": [{"name": "success-rate", "query": SUCCESS_RATE,
                         "thresholdRange": {"min": 99}}]}
STEPS = {"steps": [{"setWeight": 25}, {"analysis": {}}, {"setWeight": 50}, {"analysis": {}}]}


def _shared(version: str, error_rate: float = 0.0) -> dict[str, Any]:
    """The target at `version`, its pods carrying the label the user's one Service selects
    (the primary's copy keeps it: only the selector's values are suffixed)."""
    body = canary.target(version, error_rate)
    body["spec"]["template"]["metadata"]["labels"][PART_OF] = canary.NAME
    return body


def _one_service(namespace: str) -> list[dict[str, Any]]:
    """The user's Service over both versions' pods and the route to it."""
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": canary.NAME},
               "spec": {"selector": {PART_OF: canary.NAME},
                        "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
    route = canary.route(namespace)
    route["spec"]["rules"] = [{"backendRefs": [{"name": canary.NAME, "port": 80}]}]
    return [service, route]


def _shares(recorder: canary.Recorder, weights: tuple[int, ...]) -> dict[int, traffic.Tally]:
    """The live traffic of each of `weights`' first periods."""
    found: dict[int, traffic.Tally] = {}
    for weight, tally in recorder.periods:
        if weight in weights and weight not in found:
            found[weight] = tally
    return found


def _in_rotation(tally: traffic.Tally) -> tuple[traffic.Tally, int]:
    """A period's answers from when the gateway sent requests only to the weight's pods, and
    how many came before. The Deployments report a scaling done a few seconds before Traefik
    has dropped the stopped pod's endpoint or added the new one (more on a loaded machine),
    so a period may open on the previous weight's pods. The weight's pods are those answering
    at its end; the period counts from after the last answer of any other pod and from the
    first answer of the last of them to join."""
    answers = sorted(tally.answers, key=lambda a: a.sent_at)
    serving = {a.pod for a in answers[-4 * TOTAL:] if a.pod}
    start = 0
    for index, answer in enumerate(answers):
        if answer.pod and answer.pod not in serving:
            start = index + 1
    first: dict[str, int] = {}
    for index, answer in enumerate(answers):
        if answer.pod:
            first.setdefault(answer.pod, index)
    start = max([start, *(first[pod] for pod in serving)])
    return traffic.Tally(answers[start:]), start


def _settled_shares(recorder: canary.Recorder, weights: tuple[int, ...],
                    figures: dict[str, list[float]],
                    beside: traffic.Tally | None = None) -> dict[int, traffic.Tally]:
    """`_shares`, each from when the gateway carried the weight's pods (the answers left
    out are reported), with the answers `beside` got in the same time. Traefik deals requests
    to the pods in turn, whichever load sent them: two loads at fixed rates fall into step
    with the turns (the probe's 1 in 6 requests took the same two pods' turns), so each load
    alone sees a share off by points, while all the answers show the pods' split."""
    found = {}
    for weight, tally in _shares(recorder, weights).items():
        if beside is not None and tally.answers:
            sent = [a.sent_at for a in tally.answers]
            tally = tally.merged(traffic.Tally(
                [a for a in beside.answers if min(sent) <= a.sent_at <= max(sent)]))
        found[weight], before = _in_rotation(tally)
        figures.setdefault("replica ratio: answers of a period before the gateway carried "
                           "its pods", []).append(before)
    return found


def test_the_replica_ratio_router_walks_and_rolls_back_with_the_pods_share_of_traffic(
        api: client.ApiClient, cluster: LocalCluster, gateway_address: str, namespace: str,
        running_operator: LocalOperator, gateway_prometheus: PrometheusServer,
        figures: dict[str, list[float]]) -> None:
    demo_app.apply(cluster, namespace, demo_app.example_objects("gateway.yaml"))
    canary.apply_as_user(cluster, namespace, _shared("v1"), *_one_service(namespace))
    canary.create(api, namespace, canary.rollout(
        gateway_prometheus.url, router={"replicaRatio": {"totalReplicas": TOTAL}}, canary=STEPS,
        analysis=ANALYSIS))
    canary.wait_phase(api, namespace, "Initialized", timeout=240)
    assert canary.deployment(cluster, namespace, "checkout-primary")["spec"]["replicas"] == TOTAL
    url, host = f"http://{gateway_address}:8000", demo_app.host(namespace)
    demo_app.serving(url, {"v1"}, host)

    with traffic.Load(url, RATE, headers=host) as load, \
            traffic.Load(url, PROBE_RATE, headers=host) as probe, \
            canary.Recorder(api, namespace, load, confirmed=True) as recorder:
        canary.apply_as_user(cluster, namespace, _shared("v2"))
        canary.wait_phase(api, namespace, "Succeeded", timeout=360)
        walk = probe.take()
    assert recorder.weights() == [0, 25, 50, 100, 50, 0], recorder.weights()
    for weight, tally in _settled_shares(recorder, (25, 50), figures, beside=walk).items():
        expected = split(TOTAL, weight)[1] / TOTAL
        share = tally.shares().get("v2", 0.0)
        figures.setdefault(f"replica ratio through the operator: canary share at {weight}% "
                           "(%)", []).append(100 * share)
        assert tally.total >= 30 and abs(share - expected) <= TOLERANCE, (
            weight, tally.summary(), tally.by_pod())
    failed, longest = walk.total - walk.codes()[200], canary.longest_failing_run(walk)
    figures.setdefault("replica ratio healthy walk: answers other than 200 (%)", []).append(
        100 * failed / max(walk.total, 1))
    figures.setdefault("replica ratio healthy walk: longest run of them", []).append(longest)
    assert walk.total >= 100 and failed <= MOST_FAILED * walk.total, walk.codes()
    assert longest <= LONGEST_FAILING_RUN, walk.codes()
    primary = canary.deployment(cluster, namespace, "checkout-primary")
    assert canary.version_of(primary) == "v2" and primary["spec"]["replicas"] == TOTAL
    assert canary.deployment(cluster, namespace, "checkout")["spec"]["replicas"] == 0

    with traffic.Load(url, RATE, headers=host) as load, \
            canary.Recorder(api, namespace, load, confirmed=True) as recorder:
        canary.apply_as_user(cluster, namespace, _shared("v3", error_rate=0.2))
        final = canary.wait_phase(api, namespace, "Failed", done=canary.rolled_back,
                                  timeout=240)
    assert final["rollback"]["reason"] == "FailureLimit", final["rollback"]
    assert recorder.weights() == [0, 25, 0], recorder.weights()
    at_25 = _settled_shares(recorder, (25,), figures)[25]
    assert at_25.total >= 30 and abs(at_25.shares().get("v3", 0.0) - 0.25) <= TOLERANCE, (
        at_25.summary())
    assert canary.deployment(cluster, namespace, "checkout")["spec"]["replicas"] == 0
    assert canary.deployment(cluster, namespace, "checkout-primary")["spec"]["replicas"] == TOTAL
    traffic.until_only(url, "v2", headers=host, timeout=60)
    assert traffic.send(url, 100, concurrency=4, headers=host).shares() == {"v2": 1.0}


WEIGHT_ANNOTATION = "nginx.ingress.kubernetes.io/canary-weight"
NGINX_STEPS = {"steps": [{"setWeight": 20}, {"analysis": {}}, {"setWeight": 60},
                         {"analysis": {}}]}


def _nginx_host(namespace: str) -> dict[str, str]:
    """Not the HTTPRoute's host: the Ingress and a route for one host would compete."""
    return {"Host": f"shop.{namespace}.test"}


def _users_ingress(namespace: str) -> dict[str, Any]:
    """The user's Ingress: its backend is the primary Service, in the user's manifest."""
    backend = {"service": {"name": f"{canary.NAME}-primary", "port": {"number": 80}}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web"},
            "spec": {"ingressClassName": "nginx", "rules": [{
                "host": _nginx_host(namespace)["Host"], "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": backend}]}}]}}


def _canary_weight(ingress: dict[str, Any]) -> int | None:
    value = (ingress["metadata"].get("annotations") or {}).get(WEIGHT_ANNOTATION)
    return None if value is None else int(value)


def test_the_nginx_router_walks_and_rolls_back_with_the_canary_ingress_share_of_traffic(
        api: client.ApiClient, cluster: LocalCluster, gateway_address: str, namespace: str,
        running_operator: LocalOperator, gateway_prometheus: PrometheusServer,
        figures: dict[str, list[float]]) -> None:
    """The canary Ingress the operator maintains, served by Traefik's NGINX provider (which
    reads ingress-nginx's `canary`/`canary-weight` annotations), carries the weight's share
    of the requests to the user's one host; a version answering errors is rolled back on the
    app's own series and every request reaches the primary again."""
    canary.apply_as_user(cluster, namespace, canary.target("v1"))
    cluster.kubectl("rollout", "status", "-n", namespace, f"deployment/{canary.NAME}",
                    "--timeout=180s", timeout=200)
    users = _users_ingress(namespace)
    canary.apply_as_user(cluster, namespace, users)
    canary.create(api, namespace, canary.rollout(
        gateway_prometheus.url, router={"nginx": {"ingress": "web"}}, canary=NGINX_STEPS,
        analysis=ANALYSIS))
    canary.wait_phase(api, namespace, "Initialized", timeout=240)
    url, host = f"http://{gateway_address}:8000", _nginx_host(namespace)
    demo_app.serving(url, {"v1"}, host)
    ingresses = client.NetworkingV1Api(api).list_namespaced_ingress

    with traffic.Load(url, RATE, headers=host) as load, \
            canary.ObjectWatch(api, namespace, "web-canary", ingresses, _canary_weight) as copy_, \
            canary.Recorder(api, namespace, load) as recorder:
        canary.apply_as_user(cluster, namespace, canary.target("v2"))
        canary.wait_phase(api, namespace, "Succeeded", timeout=360)
    assert recorder.weights() == [0, 20, 60, 100, 0], recorder.weights()
    assert copy_.values() == [0, 20, 60, 100, 0], copy_.values()
    for weight, tally in _shares(recorder, (20, 60)).items():
        share = tally.shares().get("v2", 0.0)
        figures.setdefault(f"nginx canary Ingress: canary share at {weight}% (%)", []).append(
            100 * share)
        assert tally.total >= 30 and abs(share - weight / 100) <= TOLERANCE, (
            weight, tally.summary())
    assert canary.version_of(canary.deployment(cluster, namespace, "checkout-primary")) == "v2"
    assert canary.deployment(cluster, namespace, "checkout")["spec"]["replicas"] == 0
    assert traffic.send(url, 100, concurrency=4, headers=host).shares() == {"v2": 1.0}
    assert canary.diff_as_user(cluster, namespace, users) == ""

    with traffic.Load(url, RATE, headers=host) as load, \
            canary.ObjectWatch(api, namespace, "web-canary", ingresses, _canary_weight) as copy_, \
            canary.Recorder(api, namespace, load) as recorder:
        canary.apply_as_user(cluster, namespace, canary.target("v3", error_rate=0.2))
        final = canary.wait_phase(api, namespace, "Failed", done=canary.rolled_back,
                                  timeout=240)
    assert final["rollback"]["reason"] == "FailureLimit", final["rollback"]
    assert recorder.weights() == [0, 20, 0], recorder.weights()
    assert copy_.values() == [0, 20, 0], copy_.values()
    at_20 = _shares(recorder, (20,))[20]
    assert abs(at_20.shares().get("v3", 0.0) - 0.20) <= TOLERANCE, at_20.summary()
    assert canary.version_of(canary.deployment(cluster, namespace, "checkout-primary")) == "v2"
    assert canary.deployment(cluster, namespace, "checkout")["spec"]["replicas"] == 0
    traffic.until_only(url, "v2", headers=host, timeout=60)
    assert traffic.send(url, 100, concurrency=4, headers=host).shares() == {"v2": 1.0}
    assert canary.diff_as_user(cluster, namespace, users) == ""
