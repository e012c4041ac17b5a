"""``make demo``'s live part: the gateway, the demo app under steady traffic, Prometheus
finding both through the API server, and the example AlertRules' queries answered by the
series those pods, the kubelet and the gateway really expose.

Everything here needs the cluster's network namespace (pods with reachable addresses); without
one, ``make demo`` says why and leaves it out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from runbook_operator.core.canary.analysis import GATEWAY_PROVIDER, route_backend
from runbook_operator.demoapp import traffic
from runbook_operator.devcluster import gateway
from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.prometheus import PrometheusServer
from runbook_operator.devcluster.waiting import wait_for

DEMO_APP = Path("examples") / "demo-app"
ROUTE = "checkout"
GATEWAY = "web"
VERSIONS = ("v1", "v2")
TRAFFIC_PER_SECOND = 20
SAMPLE_REQUESTS = 1000
REPORT_CRONJOB = "nightly-report"
#: The anomaly rule's demo-sized training (see :func:`anomaly_for_the_demo`).
ANOMALY_RULE = "checkout-anomaly"


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("   ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def anomaly_for_the_demo(spec: dict[str, Any]) -> dict[str, Any]:
    """The example's IsolationForest rule learns from 7 days at 5-minute steps and waits for
    288 rows (a day) before it may fire: no demo lasts that long. The demo trains the same
    queries on 1-second steps over the last 2 minutes, once 30 rows exist, evaluated every
    10 s, and says so; everything else stays as written."""
    anomaly = {**spec["anomaly"], "trainingWindow": "2m", "step": "1s", "minSamples": 30,
               "retrainInterval": "1m"}
    return {**spec, "interval": "10s", "anomaly": anomaly}


def rule_queries(docs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(label, PromQL) of every example AlertRule: its query, or each anomaly feature's."""
    found = []
    for doc in docs:
        if doc["kind"] != "AlertRule":
            continue
        name, spec = doc["metadata"]["name"], doc["spec"]
        if "query" in spec:
            found.append((name, spec["query"]))
        for feature in (spec.get("anomaly") or {}).get("queries", []):
            found.append((f"{name}: {feature['name']}", feature["query"]))
    return found


def _number(value: str) -> str:
    number = float(value)
    return f"{number:.4g}" if abs(number) < 1e6 else f"{number:.4e}"


class LiveApp:
    def __init__(self, cluster: LocalCluster, say: Callable[[str], None], repo: Path,
                 namespace: str) -> None:
        self.cluster = cluster
        self.say = say
        self.repo = repo
        self.namespace = namespace
        self.url = ""
        self.load: traffic.Load | None = None
        self.started = 0.0

    def kubectl(self, *args: str, **kwargs: Any) -> str:
        return self.cluster.kubectl(*args, **kwargs).stdout

    def install_gateway(self) -> None:
        version = gateway.traefik_version(self.cluster)
        self.say(f"installing the gateway: the Gateway API standard CRDs and Traefik {version} "
                 "(built from its Go module) as a Deployment the runtime runs, with the "
                 "kubernetesGateway and kubernetesIngressNGINX providers")
        address = gateway.install(self.cluster)
        port = self.cluster.relay_to_host("gateway", address, gateway.WEB_PORT)
        print(f"traefik pod {address}: entrypoint web :{gateway.WEB_PORT}, metrics and ping "
              f":{gateway.ADMIN_PORT}; relayed to the host's 127.0.0.1:{port}")

    def deploy(self) -> None:
        self.say(f"deploying the demo app ({DEMO_APP}/): checkout v1 (2 pods) and v2 (1 pod), "
                 f"a Service each, Gateway {GATEWAY!r}, HTTPRoute {ROUTE!r} at 80/20, and a "
                 f"run of the {REPORT_CRONJOB} CronJob")
        print(self.kubectl("apply", "-n", self.namespace, "-f", str(self.repo / DEMO_APP)))
        for version in VERSIONS:
            self.kubectl("rollout", "status", "-n", self.namespace,
                         f"deployment/checkout-{version}", "--timeout=180s", timeout=200)
        self.kubectl("create", "job", f"{REPORT_CRONJOB}-demo",
                     f"--from=cronjob/{REPORT_CRONJOB}", "-n", self.namespace)
        self.url = gateway.gateway_url(self.cluster, self.namespace, GATEWAY)
        wait_for(lambda: set(traffic.send(self.url, 20).by_version()) == set(VERSIONS),
                 f"answers from both versions through {self.url}", timeout=120)
        print(self.kubectl("get", "pods,endpointslices", "-n", self.namespace, "-o", "wide"))
        print(f"the gateway answers at {self.url} (Gateway {GATEWAY!r} status address)")

    def start_traffic(self, stack: ExitStack) -> None:
        self.say(f"sending steady traffic through the gateway: {TRAFFIC_PER_SECOND} requests/s "
                 "in the background for the rest of the demo")
        self.load = traffic.Load(self.url, TRAFFIC_PER_SECOND).start()
        self.started = time.monotonic()
        stack.callback(self.load.stop)

    def wait_for_series(self, prometheus: PrometheusServer, docs: list[dict[str, Any]]) -> None:
        """Until every example rule's query returns numbers; then show them and the targets
        Prometheus discovered."""
        self.say("waiting until Prometheus, discovering its targets through the API server, "
                 "answers every example AlertRule's query with real numbers")
        queries = rule_queries(docs)

        def answers() -> list[tuple[str, list[dict[str, Any]]]] | None:
            results = [(label, _query(prometheus, query)) for label, query in queries]
            numbers = all(r and all(s["value"][1] not in ("NaN", "+Inf", "-Inf") for s in r)
                          for _, r in results)
            return results if numbers else None

        results = wait_for(answers, "every example rule's query to return numbers",
                           timeout=180)
        targets = httpx.get(f"{prometheus.url}/api/v1/targets", timeout=5).json()
        rows = [("JOB", "TARGET", "POD", "HEALTH")]
        for target in sorted(targets["data"]["activeTargets"],
                             key=lambda t: (t["labels"]["job"], t["scrapeUrl"])):
            labels = target["labels"]
            if target["scrapePool"] != "exporter":
                rows.append((labels["job"], target["scrapeUrl"], labels.get("pod", "-"),
                             target["health"]))
        print_table(rows)
        print()
        rows = [("RULE", "SERIES", "VALUES NOW")]
        for label, result in results:
            values = ", ".join(_number(s["value"][1]) for s in result[:3])
            rows.append((label, str(len(result)), values + (", …" if len(result) > 3 else "")))
        print_table(rows)

    def show_traffic(self, prometheus: PrometheusServer) -> None:
        assert self.load is not None
        self.say(f"{SAMPLE_REQUESTS} requests through the gateway at {self.url} (HTTPRoute "
                 f"{ROUTE!r}: v1 weight 80, v2 weight 20)")
        tally = traffic.send(self.url, SAMPLE_REQUESTS, concurrency=8)
        rows = [("VERSION", "WEIGHT", "ANSWERS", "SHARE", "5XX", "PODS")]
        weights = {"v1": "80", "v2": "20"}
        counts = tally.by_version()
        for version, share in tally.shares().items():
            pods = {a.pod for a in tally.answers if a.version == version and a.pod}
            rows.append((version, weights.get(version, "-"), str(counts[version]),
                         f"{share:.1%}", f"{tally.error_rate(version):.1%}", str(len(pods))))
        print_table(rows)
        live = self.load.take()
        print(f"\nlive traffic over the last {time.monotonic() - self.started:.0f}s: "
              f"{live.summary()}")
        self.started = time.monotonic()
        backend = route_backend(self.namespace, "(checkout-v[0-9]+)") + GATEWAY_PROVIDER
        counted = _query(prometheus, 'sum by (backend) (label_replace('
                         f'traefik_service_requests_total{{service=~"{backend}"}}, '
                         f'"backend", "$1", "service", "{backend}"))')
        print("the gateway's own count since it started (traefik_service_requests_total, "
              "scraped from Traefik's pod, by the route's backend Service):")
        for sample in sorted(counted, key=lambda s: s["metric"]["backend"]):
            print(f"  Service {sample['metric']['backend']}: {_number(sample['value'][1])}")
        self.shift_weights({"v1": 0, "v2": 100}, "v2")
        self.shift_weights({"v1": 80, "v2": 20}, "v1", consecutive=1)

    def shift_weights(self, weights: dict[str, int], expect: str, consecutive: int = 30) -> None:
        """Patch the route's weights and time how long until the gateway answers as asked."""
        route = json.loads(self.kubectl("get", "httproute", ROUTE, "-n", self.namespace,
                                        "-o", "json"))
        backends = route["spec"]["rules"][0]["backendRefs"]
        for backend in backends:
            backend["weight"] = weights[backend["name"].removeprefix("checkout-")]
        patch = json.dumps({"spec": {"rules": route["spec"]["rules"]}})
        patched = time.monotonic()
        self.kubectl("patch", "httproute", ROUTE, "-n", self.namespace, "--type=merge",
                     "-p", patch)
        first, sent = traffic.until_only(self.url, expect, consecutive=consecutive)
        shown = "/".join(str(weights[v]) for v in VERSIONS)
        what = (f"every answer from {expect} ({consecutive} in a row)" if consecutive > 1
                else f"{expect} answers again")
        print(f"weights v1/v2 → {shown}: {what} {first - patched:.2f}s after the patch "
              f"({sent} requests)")

    def wait_for_anomaly_model(self) -> None:
        self.say(f"{ANOMALY_RULE}: the IsolationForest rule warming up on the demo's traffic "
                 "(trained on 1 s steps of the last 2 minutes once 30 rows exist; the example "
                 "itself learns from 7 days at 5 minutes, 288 rows)")
        seen: list[int] = []

        def trained() -> dict[str, Any] | None:
            rule = json.loads(self.kubectl("get", "alertrule", ANOMALY_RULE, "-n",
                                           self.namespace, "-o", "json"))
            anomaly = (rule.get("status") or {}).get("anomaly") or {}
            samples = anomaly.get("samples", 0)
            if not seen or samples != seen[-1]:
                seen.append(samples)
                print(f"  {samples} complete rows so far" if not anomaly.get("trainedAt")
                      else f"  trained at {anomaly['trainedAt']} on {samples} rows")
            return anomaly if anomaly.get("trainedAt") else None

        model = wait_for(trained, f"{ANOMALY_RULE}'s model", timeout=240, interval=1.0)
        print(f"last score {model.get('lastScore')} (anomalous above {model.get('threshold')})")


def _query(prometheus: PrometheusServer, query: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": query}, timeout=10)
    answer.raise_for_status()
    return answer.json()["data"]["result"]
