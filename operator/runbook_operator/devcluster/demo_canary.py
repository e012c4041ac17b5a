"""``make demo``'s canary part: examples/canaryrollout.yaml in a namespace of its own, under
live traffic through the gateway — a healthy v1 → v2 walks 5 → 30 → 55 → 80 → 100 % and is
promoted, then a v3 answering 5 % errors is rolled back — with the share of answers each
version gave at every weight, as the traffic generator saw them.

The Deployment and the HTTPRoute are applied as a GitOps tool would (server-side, the
Deployment without replicas, the route without rules); the demo shortens the analysis
interval to 10 s and leaves out the example's channels (they live in the other namespace).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from runbook_operator.demoapp import traffic
from runbook_operator.devcluster import gateway
from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.demo_live import print_table
from runbook_operator.devcluster.waiting import wait_for

NAMESPACE = "runbook-canary"
NAME = "checkout"
HOST = "canary.demo"
EXAMPLE = Path("examples") / "canaryrollout.yaml"
GATEWAY = Path("examples") / "demo-app" / "gateway.yaml"
INTERVAL = "10s"
MINIMUM_REQUESTS = 5
TRAFFIC_PER_SECOND = 50
#: After a weight is written, how long the gateway may still answer with the previous one:
#: those answers count for neither weight.
SETTLE_SECONDS = 3.0
POLL_SECONDS = 0.2
TIMEOUT_SECONDS = 300


class CanaryDemo:
    def __init__(self, cluster: LocalCluster, say: Callable[[str], None], repo: Path) -> None:
        self.cluster = cluster
        self.say = say
        docs = [d for d in yaml.safe_load_all((repo / EXAMPLE).read_text()) if d]
        self.examples = {d["kind"]: d for d in docs}
        self.gateway = repo / GATEWAY
        self.url = ""

    def kubectl(self, *args: str, **kwargs: Any) -> str:
        return self.cluster.kubectl(*args, **kwargs).stdout

    def apply_as_gitops(self, *objects: dict[str, Any]) -> None:
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
        self.kubectl("apply", "--server-side", "--field-manager=gitops", "-n", NAMESPACE,
                     "-f", "-", input=body)

    def target(self, version: str, error_rate: float = 0.0) -> dict[str, Any]:
        body = copy.deepcopy(self.examples["Deployment"])
        template = body["spec"]["template"]
        template["metadata"]["labels"]["app.kubernetes.io/version"] = version
        env = {e["name"]: e for e in template["spec"]["containers"][0]["env"]}
        env["VERSION"]["value"], env["ERROR_RATE"]["value"] = version, str(error_rate)
        return body

    def status(self) -> dict[str, Any]:
        found = json.loads(self.kubectl("get", "canaryrollout", NAME, "-n", NAMESPACE,
                                        "-o", "json"))
        return found.get("status") or {}

    def deploy(self) -> None:
        self.say(f"a CanaryRollout ({EXAMPLE}) in namespace {NAMESPACE}: the Deployment and "
                 "the HTTPRoute applied as GitOps would (no replicas, no rules), analysis "
                 f"every {INTERVAL} for the demo")
        self.kubectl("create", "namespace", NAMESPACE)
        self.kubectl("apply", "-n", NAMESPACE, "-f", str(self.gateway))
        route = copy.deepcopy(self.examples["HTTPRoute"])
        route["spec"]["hostnames"] = [HOST]
        self.apply_as_gitops(self.target("v1"), route)
        self.kubectl("rollout", "status", "-n", NAMESPACE, f"deployment/{NAME}",
                     "--timeout=180s", timeout=200)
        rollout = copy.deepcopy(self.examples["CanaryRollout"])
        rollout["spec"].pop("notifications")
        rollout["spec"]["analysis"].update(interval=INTERVAL, minimumRequests=MINIMUM_REQUESTS)
        self.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(rollout))
        self.kubectl("wait", "-n", NAMESPACE, f"canaryrollout/{NAME}", "--timeout=180s",
                     "--for=jsonpath={.status.phase}=Initialized", timeout=190)
        self.url = gateway.gateway_url(self.cluster, NAMESPACE, "web")
        wait_for(lambda: traffic.send(self.url, 20, headers={"Host": HOST}).by_version()
                 .keys() == {"v1"}, "checkout-primary answering through the gateway",
                 timeout=120)
        print(self.kubectl("get", "deployments,services", "-n", NAMESPACE))

    def release(self, version: str, error_rate: float, title: str) -> dict[str, Any]:
        """Apply `version` to the target and follow the rollout to its end under live
        traffic: one row per weight written with the share of answers from `version`."""
        self.say(title)
        rows = [("WEIGHT", "ANSWERS", f"{version.upper()} SHARE", "5xx")]
        started = time.monotonic()
        before = self.status().get("revision")
        with traffic.Load(self.url, TRAFFIC_PER_SECOND, headers={"Host": HOST}) as load:
            self.apply_as_gitops(self.target(version, error_rate))
            status = self._follow(load, version, before, rows)
        print_table(rows)
        return {**status, "seconds": time.monotonic() - started}

    def _follow(self, load: traffic.Load, version: str, before: str | None,
                rows: list[tuple[str, ...]]) -> dict[str, Any]:
        """Rows until the rollout of the revision after `before` has ended."""
        written: int | None = None
        settled_at = 0.0
        tally = traffic.Tally()
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            status = self.status()
            weight = (status.get("router") or {}).get("weight")
            if weight != written:
                if written is not None:
                    tally = tally.merged(load.take())
                    rows.append(self._row(written, tally, version))
                written, settled_at, tally = weight, time.monotonic() + SETTLE_SECONDS, \
                    traffic.Tally()
                load.take()
            elif settled_at and time.monotonic() >= settled_at:
                load.take()
                settled_at = 0.0
            rollback = status.get("rollback") or {}
            ended = status.get("phase") == "Succeeded" or rollback.get("completedAt")
            if status.get("revision") != before and ended:
                return status
            time.sleep(POLL_SECONDS)
        raise TimeoutError(f"the rollout of {version} did not end within {TIMEOUT_SECONDS}s")

    @staticmethod
    def _row(weight: int, tally: traffic.Tally, version: str) -> tuple[str, ...]:
        share = tally.shares().get(version, 0.0)
        return (f"{weight}%", str(tally.total), f"{100 * share:.1f}%",
                f"{100 * tally.error_rate():.1f}%")

    def run(self) -> None:
        self.deploy()
        promoted = self.release("v2", 0.0, "canary v1 → v2 (healthy): 5 % of the live traffic, "
                                "then 25 % more every interval while the checks pass")
        primary = json.loads(self.kubectl("get", "deployment", f"{NAME}-primary", "-n",
                                          NAMESPACE, "-o", "json"))
        env = primary["spec"]["template"]["spec"]["containers"][0]["env"]
        running = next(e["value"] for e in env if e["name"] == "VERSION")
        print(f"{promoted['phase']} in {promoted['seconds']:.0f}s: {NAME}-primary runs "
              f"{running}, {NAME} scaled to 0")
        failed = self.release("v3", 0.05, "canary v2 → v3 (answers 5 % errors): rolled back "
                              "after the failure limit")
        rollback = failed["rollback"]
        failing = [m for m in failed.get("measurements", []) if m["verdict"] == "Fail"][:2]
        print(f"rolled back ({rollback['reason']}) in {failed['seconds']:.0f}s: "
              + "; ".join(f"{m['metric']} = {m.get('value')} ({m['message']})"
                          for m in failing))
        after = traffic.send(self.url, 200, concurrency=4, headers={"Host": HOST})
        print(f"then 200 requests: {after.summary()}")
        print(self.kubectl("get", "canaryrollout", "-n", NAMESPACE, "-o", "wide"))
