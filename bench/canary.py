"""CanaryRollout benchmark: how fast a failing canary is rolled back (the operator's part and
what the traffic sees through the real gateway), and what 200 rollouts in flight cost the
operator per rollout per analysis interval against the AlertRule loop's cost per rule.

One run starts, on loopback and in throw-away temp dirs, the local control plane with the
manifests and CRDs (`kubectl apply --server-side -k hack/local-install`, as tests/e2e do),
Traefik as the Gateway, a Prometheus discovering the pods and the gateway (scrape every 1 s), and
the operator as a subprocess under its ServiceAccount (LocalOperator); each part below gets an
operator of its own, started fresh.

1. Rollback latency (`--rollbacks`, default 5). The canary demo's app (`make demo`'s
   CanaryDemo: v1 of the demo app as real pods of the process runtime, the HTTPRoute and
   Deployment applied as GitOps would), its analysis every `--interval` with `failureLimit: 1`,
   `initialWeight: 20`, traffic from the traffic generator through Traefik at `--rate`. Each
   round applies a new version answering `--error-rate` errors; the rollout starts, its analysis
   fails, it rolls back. Per round, in Unix time:
   (a0) the scrape: the newest sample, at the failing measurement's time, of the gateway series
        its query reads (`max(timestamp(...))` asked of Prometheus at that time);
   (a)  the failing measurement's time (`status.measurements[].time`: the query's evaluation
        time);
   (w)  the route written with the primary at 100 %: the arrival of that version of the
        HTTPRoute on a watch (and of the version carrying Traefik's status for it);
   (b)  the route read back and confirmed by the operator (`status.router.confirmedAt`);
   (c)  the first request after which every answer, for `SETTLED_SECONDS`, came from the
        primary's version with 200 (the traffic generator's send times).
   Reported, median and max: a0 -> a (Prometheus), a -> w, w -> b, a0 -> w and a0 -> b (the
   operator's part; goal under 1 s), w -> c and b -> c (the gateway's propagation), a0 -> c
   (end to end). Baseline in the same run: a server-side apply of an HTTPRoute's weights and a
   GET back with the operator's Kubernetes adapter, timed alone.
2. CPU per rollout per interval. `--rollouts` (200) CanaryRollouts in one namespace, each with
   its Deployment on kwok pods (an image the runtime does not run: kwok fakes them ready), its
   HTTPRoute on the Gateway and one analysis query of its own (`vector(i)`, passing) every
   `--cpu-interval` (15 s), no request guard; stepWeight 1 so they stay Progressing, one weight
   written and read back per interval. Once all are Progressing, `--windows` windows of one
   interval each: the operator's CPU (utime + stime, /proc/<pid>/stat) / rollouts / windows.
   Baseline in the same run, the same way, with an operator of its own: `--rollouts`
   AlertRules at the same interval (`vector(i) > 1e9`, never firing) against the same
   Prometheus: CPU / rules / windows. Also the analysis runs and evaluations per window (the
   operator's /metrics), and the machine's other load (CPU of processes this benchmark did not
   start).

It prints a table of figures, baselines and ratios; it asserts nothing and exits 0. Ctrl-C
stops and removes everything it started.

    python bench/canary.py [--rollbacks 5] [--interval 5s] [--rollouts 200]
        [--cpu-interval 15s] [--windows 4] [--operator-log DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from alert_rules import (  # noqa: E402 - bench/ is not a package
    StopOnSignals,
    machine_busy,
    median,
    process_cpu,
    progress,
)
from incidents import fmt, ratio  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GROUP, VERSION = "runbook.dev", "v1alpha1"
OPERATOR_NAMESPACE, OPERATOR_ACCOUNT = "runbook-system", "runbook-operator"
CPU_NAMESPACE, ALERT_NAMESPACE = "bench-canary-cpu", "bench-canary-alerts"
#: An image the process runtime does not run: kwok fakes its pods (ready, never answering).
FAKED_IMAGE = "registry.invalid/checkout:1"
PRIMARY_VERSION = "v1"
#: How long every answer must come from the primary before (c) counts as reached.
SETTLED_SECONDS = 3.0
ROLLBACK_TIMEOUT = 240
GOAL_OPERATOR_SECONDS = 1.0
RAW_ROUTE_WRITES = 20
#: The canary Service's label in the gateway series a failing query reads.
SERVICE_LABEL = re.compile(r'service=~?"[^"]*"')


def when(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def tree_cpu() -> float:
    """CPU seconds of this process and every process under it (the cluster, its pods, the
    operator, Prometheus): the machine's busy time minus this is other engineers' load."""
    parents, cpu = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        parents[int(entry.name)] = int(fields[1])
        cpu[int(entry.name)] = process_cpu(int(entry.name))
    ours, total = {os.getpid()}, 0.0
    for pid in sorted(parents):
        chain, seen = pid, set()
        while chain in parents and chain not in ours and chain not in seen:
            seen.add(chain)
            chain = parents[chain]
        if chain in ours:
            ours |= seen
    for pid in ours:
        value = cpu.get(pid, math.nan)
        total += 0.0 if math.isnan(value) else value
    return total


# -- part 1: rollback latency ---------------------------------------------------------------


@dataclass
class Rollback:
    version: str
    scrape: float = math.nan  # a0
    measured: float = math.nan  # a
    written: float = math.nan  # w: the route's watch event with the canary at 0 %
    accepted: float = math.nan  # the route's watch event with Traefik's status for it
    confirmed: float = math.nan  # b
    primary_only: float = math.nan  # c
    started: float = math.nan  # status.rollback.startedAt
    completed: float = math.nan  # status.rollback.completedAt
    canary_answers: int = 0
    answers: int = 0
    note: str = ""


def newest_sample(prometheus_url: str, query: str, at: float) -> float:
    """Unix time of the newest sample, at `at`, of the gateway series `query` reads (every
    series of one scrape has its time)."""
    found = SERVICE_LABEL.search(query)
    if found is None:
        return math.nan
    promql = f"max(timestamp(traefik_service_requests_total{{{found.group(0)}}}))"
    answer = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": promql, "time": at},
                       timeout=10).json()
    result = answer.get("data", {}).get("result") or []
    return float(result[0]["value"][1]) if result else math.nan


class RouteWatch:
    """Watches the demo's HTTPRoute: (arrival, the canary's share, whether the gateway
    published its status for that generation) of every version of it."""

    def __init__(self, api: Any, namespace: str, name: str) -> None:
        from runbook_operator.integrations.routers import Backends

        self.api, self.namespace, self.name = api, namespace, name
        self.backends = Backends(namespace, name, 80, "http")
        self.seen: list[tuple[float, int | str, bool | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="route-watch", daemon=True)

    def __enter__(self) -> RouteWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _run(self) -> None:
        from kubernetes import client, watch

        from runbook_operator.integrations.routers.gatewayapi import canary_share, processed

        custom = client.CustomObjectsApi(self.api)
        while not self._stop.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(
                        custom.list_namespaced_custom_object, "gateway.networking.k8s.io", "v1",
                        self.namespace, "httproutes", timeout_seconds=5,
                        field_selector=f"metadata.name={self.name}"):
                    route = event["object"]
                    self.seen.append((time.time(), canary_share(route, self.backends),
                                      processed(route)[0]))
                    if self._stop.is_set():
                        break
            finally:
                stream.stop()

    def back_on_primary(self, after: float) -> tuple[float, float]:
        """When, after `after`, the route first sent the canary 0 %, and when the gateway
        first published its status for that version."""
        written = accepted = math.nan
        for at, share, done in list(self.seen):
            if at < after or share != 0:
                continue
            if math.isnan(written):
                written = at
            if done:
                accepted = at
                break
        return written, accepted


def primary_from(answers: list[Any], after: float) -> float | None:
    """The send time of the first answer after which every answer came from the primary
    with 200, once answers were sent SETTLED_SECONDS past both it and `after`."""
    start = None
    for answer in answers:
        if answer.version != PRIMARY_VERSION or answer.code != 200:
            start = None
        elif start is None:
            start = answer.sent_at
    if start is None or answers[-1].sent_at < max(start, after) + SETTLED_SECONDS:
        return None
    return start


def rolled_back(status: dict[str, Any], before: str | None) -> bool:
    router = status.get("router") or {}
    return (status.get("revision") != before
            and bool((status.get("rollback") or {}).get("completedAt"))
            and router.get("weight") == 0 and bool(router.get("confirmedAt")))


def one_rollback(demo: Any, load: Any, routes: RouteWatch, prometheus_url: str, version: str,
                 error_rate: float) -> Rollback:
    from runbook_operator.devcluster.waiting import wait_for

    result = Rollback(version)
    before = demo.status().get("revision")

    def done() -> dict[str, Any] | None:
        found = demo.status()
        return found if rolled_back(found, before) else None

    answers = load.take().answers
    demo.apply_as_gitops(demo.target(version, error_rate))
    status = wait_for(done, f"{version} rolled back", timeout=ROLLBACK_TIMEOUT, interval=0.2)
    revision = status["revision"]
    failed = [m for m in status.get("measurements", [])
              if m["verdict"] == "Fail" and m["revision"] == revision]
    rollback = status["rollback"]
    result.started, result.completed = when(rollback["startedAt"]), when(rollback["completedAt"])
    result.confirmed = when(status["router"]["confirmedAt"])
    if failed:
        newest = max(failed, key=lambda m: when(m["time"]))
        result.measured = when(newest["time"])
        result.scrape = newest_sample(prometheus_url, newest.get("query", ""), result.measured)
        result.written, result.accepted = routes.back_on_primary(result.measured)
    else:
        result.note = f"rolled back without a failed measurement ({rollback['reason']})"

    def settled() -> bool:
        answers.extend(load.take().answers)
        found = primary_from(answers, result.confirmed)
        if found is not None:
            result.primary_only = found
        return found is not None

    with contextlib.suppress(AssertionError):
        wait_for(settled, "every answer from the primary", timeout=60, interval=0.2)
    result.answers = len(answers)
    result.canary_answers = sum(1 for a in answers if a.version == version)
    if not result.canary_answers:
        result.note += " no answer came from the canary"
    return result


def raw_route_writes(cluster: Any, namespace: str, count: int) -> list[float]:
    """Seconds of one server-side apply of an HTTPRoute's weights and a GET reading them back,
    with the operator's Kubernetes adapter (a route of its own, for a host nobody asks)."""
    from runbook_operator.integrations.kubernetes import connect

    kube, times = connect(kubeconfig=str(cluster.admin_kubeconfig)), []
    for i in range(count):
        weight = 100 - (i % 2) * 20
        body = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": {"name": "bench-raw", "namespace": namespace},
                "spec": {"parentRefs": [{"name": "web"}], "hostnames": ["raw.invalid"],
                         "rules": [{"backendRefs": [
                             {"name": "checkout-primary", "port": 80, "weight": weight},
                             {"name": "checkout-canary", "port": 80,
                              "weight": 100 - weight}]}]}}
        started = time.perf_counter()
        kube.apply(body)
        kube.get(body["apiVersion"], body["kind"], "bench-raw", namespace)
        times.append(time.perf_counter() - started)
    cluster.kubectl("delete", "httproute", "bench-raw", "-n", namespace)
    return times


def measure_rollbacks(cluster: Any, prometheus_url: str,
                      args: argparse.Namespace) -> tuple[list[Rollback], list[float]]:
    from kubernetes import config

    from runbook_operator.demoapp import traffic
    from runbook_operator.devcluster import demo_canary

    demo = demo_canary.CanaryDemo(cluster, progress, REPO)
    demo.deploy()
    analysis = {"interval": args.interval, "failureLimit": 1,
                "minimumRequests": args.minimum_requests, "prometheus": {"url": prometheus_url}}
    cluster.kubectl("patch", "canaryrollout", demo_canary.NAME, "-n", demo_canary.NAMESPACE,
                    "--type=merge", "-p", json.dumps({"spec": {
                        "analysis": analysis, "canary": {"initialWeight": 20}}}))
    raw = raw_route_writes(cluster, demo_canary.NAMESPACE, RAW_ROUTE_WRITES)
    rounds = []
    api = config.new_client_from_config(config_file=str(cluster.admin_kubeconfig))
    with contextlib.closing(api), \
            RouteWatch(api, demo_canary.NAMESPACE, demo_canary.NAME) as routes, \
            traffic.Load(demo.url, args.rate, headers={"Host": demo_canary.HOST}) as load:
        for number in range(args.rollbacks):
            version = f"bad{number + 1}"
            progress(f"rollback {number + 1}/{args.rollbacks}: {version} answering "
                     f"{args.error_rate:.0%} errors")
            found = one_rollback(demo, load, routes, prometheus_url, version, args.error_rate)
            rounds.append(found)
            progress(f"  a0->w {found.written - found.scrape:.2f} s, a0->b "
                     f"{found.confirmed - found.scrape:.2f} s, w->c "
                     f"{found.primary_only - found.written:.2f} s, canary answers "
                     f"{found.canary_answers}/{found.answers} {found.note}")
    cluster.kubectl("delete", "canaryrollout", demo_canary.NAME, "-n", demo_canary.NAMESPACE,
                    "--wait=true", "--timeout=120s", timeout=130)
    cluster.kubectl("delete", "namespace", demo_canary.NAMESPACE, "--wait=false")
    return rounds, raw


# -- part 2: CPU per rollout per interval --------------------------------------------------


@dataclass
class CpuWindow:
    seconds: float
    operator: float
    ours: float
    machine: float
    work: float  # analysis measurements or rule evaluations in the window

    @property
    def other_load(self) -> float:
        return self.machine - self.ours


@dataclass
class CpuPart:
    what: str
    count: int
    windows: list[CpuWindow] = field(default_factory=list)
    ready_in: float = math.nan
    note: str = ""

    def per_item_interval(self) -> float:
        cpu = sum(w.operator for w in self.windows)
        return cpu / self.count / len(self.windows) if self.windows else math.nan

    def percent(self) -> float:
        return median([100 * w.operator / w.seconds for w in self.windows])


def counter_sum(metrics_text: str, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(s.value for family in text_string_to_metric_families(metrics_text)
               for s in family.samples if s.name == name)


def measure_windows(part: CpuPart, operator: Any, counter: str, interval: float,
                    windows: int) -> None:
    pid = operator.process.pid
    for number in range(windows):
        cpu, ours, machine = process_cpu(pid), tree_cpu(), machine_busy()
        work, started = counter_sum(operator.metrics(), counter), time.time()
        time.sleep(interval)
        part.windows.append(CpuWindow(
            time.time() - started, process_cpu(pid) - cpu, tree_cpu() - ours,
            machine_busy() - machine, counter_sum(operator.metrics(), counter) - work))
        w = part.windows[-1]
        progress(f"  {part.what} window {number + 1}/{windows}: operator "
                 f"{100 * w.operator / w.seconds:.1f} % of a core, {w.work:.0f} runs")


def kube_list(cluster: Any, namespace: str, objects: list[dict[str, Any]]) -> None:
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    cluster.kubectl("apply", "--server-side", "--field-manager=gitops", "-n", namespace,
                    "-f", "-", input=body, timeout=300)


def items(cluster: Any, kind: str, namespace: str) -> list[dict[str, Any]]:
    return json.loads(cluster.kubectl("get", kind, "-n", namespace, "-o", "json",
                                      timeout=120).stdout)["items"]


def alert_rule_part(cluster: Any, start_operator: Any, prometheus_url: str,
                    args: argparse.Namespace) -> CpuPart:
    from runbook_operator.devcluster.waiting import wait_for

    part = CpuPart("AlertRule", args.rollouts)
    cluster.kubectl("create", "namespace", ALERT_NAMESPACE)
    kube_list(cluster, ALERT_NAMESPACE, [
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AlertRule",
         "metadata": {"name": f"rule-{i:03d}"},
         "spec": {"query": f"vector({i})", "condition": {"operator": "gt", "threshold": 1e9},
                  "for": "1m", "interval": args.cpu_interval, "severity": "warning",
                  "prometheus": {"url": prometheus_url}}}
        for i in range(args.rollouts)])
    started = time.time()
    operator = start_operator("alertrules")
    wait_for(lambda: all((r.get("status") or {}).get("lastEvaluation")
                         for r in items(cluster, "alertrules", ALERT_NAMESPACE)),
             "every AlertRule evaluated", timeout=300, interval=2)
    part.ready_in = time.time() - started
    progress(f"{args.rollouts} AlertRules evaluated {part.ready_in:.0f} s after the operator "
             f"started; measuring")
    measure_windows(part, operator, "runbook_alert_evaluations_total",
                    seconds_of(args.cpu_interval), args.windows)
    cluster.kubectl("delete", "namespace", ALERT_NAMESPACE, "--wait=true", "--timeout=180s",
                    timeout=190)
    operator.stop()
    return part


def canary_objects(demo: Any, prometheus_url: str, i: int, version: str,
                   interval: str) -> list[dict[str, Any]]:
    """App i's Deployment (kwok pods), HTTPRoute and CanaryRollout, from the example."""
    name = f"app-{i:03d}"
    labels = {"app.kubernetes.io/name": name}
    deployment = demo.target(version)
    deployment["metadata"] = {"name": name, "labels": dict(labels)}
    deployment["spec"]["selector"] = {"matchLabels": dict(labels)}
    template = deployment["spec"]["template"]
    template["metadata"]["labels"]["app.kubernetes.io/name"] = name
    template["spec"]["containers"][0]["image"] = FAKED_IMAGE
    route = copy.deepcopy(demo.examples["HTTPRoute"])
    route["metadata"] = {"name": name}
    route["spec"]["hostnames"] = [f"{name}.bench.invalid"]
    rollout = copy.deepcopy(demo.examples["CanaryRollout"])
    rollout["metadata"] = {"name": name}
    spec = rollout["spec"]
    spec.pop("notifications")
    spec.update(targetRef={"name": name}, router={"gatewayAPI": {"httpRoute": name}},
                canary={"initialWeight": 1, "stepWeight": 1, "maxWeight": 99},
                progressDeadline="1h")
    spec["analysis"] = {"interval": interval, "failureLimit": 2, "minimumRequests": 0,
                        "prometheus": {"url": prometheus_url},
                        "metrics": [{"name": "bench", "query": f"vector({i})",
                                     "thresholdRange": {"min": 0}}]}
    return [deployment, route, rollout]


def phases(cluster: Any) -> dict[str, int]:
    found: dict[str, int] = {}
    for rollout in items(cluster, "canaryrollouts", CPU_NAMESPACE):
        status = rollout.get("status") or {}
        key = status.get("phase") or "none"
        if key == "Progressing" and not status.get("weight"):
            key = "Progressing at 0"
        found[key] = found.get(key, 0) + 1
    return found


def canary_part(cluster: Any, start_operator: Any, prometheus_url: str,
                args: argparse.Namespace) -> CpuPart:
    from runbook_operator.devcluster import demo_canary
    from runbook_operator.devcluster.waiting import wait_for

    part = CpuPart("CanaryRollout", args.rollouts)
    demo = demo_canary.CanaryDemo(cluster, progress, REPO)
    cluster.kubectl("create", "namespace", CPU_NAMESPACE)
    cluster.kubectl("apply", "-n", CPU_NAMESPACE, "-f", str(demo.gateway))

    def objects(version: str) -> list[dict[str, Any]]:
        return [o for i in range(args.rollouts) for o in canary_objects(
            demo, prometheus_url, i, version, args.cpu_interval)]

    kube_list(cluster, CPU_NAMESPACE, objects("v1"))
    operator = start_operator("canaryrollouts")
    wait_for(lambda: phases(cluster) == {"Initialized": args.rollouts},
             f"{args.rollouts} CanaryRollouts Initialized", timeout=1200, interval=5)
    progress(f"{args.rollouts} CanaryRollouts Initialized; v2 applied to every target")
    started = time.time()
    kube_list(cluster, CPU_NAMESPACE, objects("v2"))
    wait_for(lambda: phases(cluster) == {"Progressing": args.rollouts},
             f"{args.rollouts} CanaryRollouts Progressing with weight", timeout=1200,
             interval=5)
    part.ready_in = time.time() - started
    progress(f"all Progressing {part.ready_in:.0f} s after v2; measuring")
    measure_windows(part, operator, "runbook_canary_analysis_results_total",
                    seconds_of(args.cpu_interval), args.windows)
    part.note = str(phases(cluster))
    operator.stop()
    return part


def seconds_of(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h)", duration))


# -- report --------------------------------------------------------------------------------


def spread(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if not math.isnan(v)]
    return median(values), max(values, default=math.nan)


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    header = ("figure", "value", "baseline", "ratio")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    for row in (header, tuple("-" * w for w in widths), *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def report(rounds: list[Rollback], raw: list[float], parts: list[CpuPart],
           args: argparse.Namespace, load_before: str) -> None:
    raw_median = median(raw)
    goal = f"goal {GOAL_OPERATOR_SECONDS:g} s"

    def row(name: str, values: list[float], baseline: str = "",
            base: float = math.nan) -> tuple[str, str, str, str]:
        mid, top = spread(values)
        return (name, f"{fmt(mid)} ({fmt(top)})", baseline, ratio(mid, base))

    rows = [
        row("a0->a scrape -> failing measurement (Prometheus)",
            [r.measured - r.scrape for r in rounds], "scrape interval 1 s", 1.0),
        row("a->w failing measurement -> route at 0 % (watch)",
            [r.written - r.measured for r in rounds],
            f"raw apply + GET {fmt(raw_median)}", raw_median),
        row("w->b route at 0 % -> read back, confirmed", [r.confirmed - r.written
                                                           for r in rounds]),
        row("  w->route status from Traefik (watch)", [r.accepted - r.written for r in rounds]),
        row("operator part: a0->w scrape -> route written", [r.written - r.scrape
                                                              for r in rounds],
            goal, GOAL_OPERATOR_SECONDS),
        row("operator part: a0->b scrape -> route read back", [r.confirmed - r.scrape
                                                                for r in rounds],
            goal, GOAL_OPERATOR_SECONDS),
        row("gateway: w->c route at 0 % -> 100 % on the primary",
            [r.primary_only - r.written for r in rounds]),
        row("  b->c read back -> 100 % on the primary",
            [r.primary_only - r.confirmed for r in rounds]),
        row("end to end: a0->c scrape -> 100 % on the primary",
            [r.primary_only - r.scrape for r in rounds]),
        row("  status: rollback startedAt -> completedAt", [r.completed - r.started
                                                             for r in rounds]),
        ("  canary's answers / all answers per round (median)",
         f"{median([float(r.canary_answers) for r in rounds]):.0f} / "
         f"{median([float(r.answers) for r in rounds]):.0f}", f"{args.rate:g} requests/s asked",
         ""),
    ]
    alert = next((p for p in parts if p.what == "AlertRule"), None)
    base = alert.per_item_interval() if alert else math.nan
    for part in parts:
        per = part.per_item_interval()
        rows.append((f"{part.what}: operator CPU per object per {args.cpu_interval} interval",
                     fmt(1000 * per, "ms", 2),
                     f"AlertRule {fmt(1000 * base, 'ms', 2)}" if part is not alert else "",
                     ratio(per, base) if part is not alert else "1.00x"))
        rows.append((f"  {part.what}: operator CPU, % of one core ({part.count} objects)",
                     fmt(part.percent(), "%", 1), "", ""))
        rows.append((f"  {part.what}: analysis runs / evaluations per window",
                     f"{median([w.work for w in part.windows]):.0f}", f"{part.count} objects",
                     ratio(median([w.work for w in part.windows]), part.count)))
        rows.append((f"  {part.what}: other load on the machine, cores",
                     fmt(median([w.other_load / w.seconds for w in part.windows]), "", 2),
                     f"{os.cpu_count()} cores", ""))
    print(f"\nCanaryRollout: {len(rounds)} rollbacks (analysis every {args.interval}, "
          f"failureLimit 1, {args.error_rate:.0%} errors, {args.rate:g} requests/s); "
          f"{args.rollouts} rollouts vs {args.rollouts} AlertRules at {args.cpu_interval}, "
          f"{args.windows} windows each; {os.cpu_count()} CPUs; load average before: "
          f"{load_before}\n")
    print_table(rows)
    print("\nper rollback, s: a0->a | a->w | w->b | w->c | canary answers/all")
    for r in rounds:
        print(f"  {r.version}: {r.measured - r.scrape:.2f} | {r.written - r.measured:.2f} | "
              f"{r.confirmed - r.written:.2f} | {r.primary_only - r.written:.2f} | "
              f"{r.canary_answers}/{r.answers} {r.note}")
    for part in parts:
        print(f"{part.what}: ready {fmt(part.ready_in, 's', 0)} after start; "
              + "; ".join(f"{100 * w.operator / w.seconds:.1f}% {w.work:.0f} runs "
                          f"other {w.other_load / w.seconds:.2f}" for w in part.windows)
              + (f"; phases at the end {part.note}" if part.note else ""))
    print("Nothing is asserted.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollbacks", type=int, default=5)
    parser.add_argument("--interval", default="5s", help="analysis interval, rollback part")
    parser.add_argument("--error-rate", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=50, help="requests/s asked")
    parser.add_argument("--minimum-requests", type=int, default=5)
    parser.add_argument("--rollouts", type=int, default=200)
    parser.add_argument("--cpu-interval", default="15s", help="analysis and rule interval")
    parser.add_argument("--windows", type=int, default=4)
    parser.add_argument("--operator-log", type=Path, help="copy the operators' logs here")
    args = parser.parse_args(argv)

    from runbook_operator.devcluster import discovery, gateway, network
    from runbook_operator.devcluster.cluster import LocalCluster, build_scripts
    from runbook_operator.devcluster.local_operator import LocalOperator

    network.enter(prepare=build_scripts())  # before any thread: the cluster lives inside
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    signals = StopOnSignals().arm()
    try:
        with contextlib.ExitStack() as stack:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-canary-")))
            cluster = stack.enter_context(LocalCluster(workdir=tmp / "cluster"))
            cluster.kubectl("apply", "--server-side", "-k", str(REPO / "hack" / "local-install"))
            cluster.wait_established("crd", "-l", "app.kubernetes.io/part-of=runbook-operator")
            gateway.install(cluster)
            prometheus = discovery.discovering_prometheus(cluster, tmp)
            prometheus.start()
            stack.callback(prometheus.stop)
            kubeconfig = cluster.service_account_kubeconfig(
                OPERATOR_NAMESPACE, OPERATOR_ACCOUNT, tmp / "operator.kubeconfig")

            def start_operator(name: str) -> LocalOperator:
                operator = LocalOperator(kubeconfig, tmp / f"operator-{name}.log",
                                         resync_seconds=60)
                stack.callback(operator.stop)
                if args.operator_log:
                    args.operator_log.mkdir(parents=True, exist_ok=True)
                    stack.callback(lambda: (args.operator_log / f"operator-{name}.log")
                                   .write_text(operator.log_text()))
                operator.start()
                return operator

            progress(f"control plane {cluster.server}, Traefik, Prometheus {prometheus.url}")
            operator = start_operator("rollbacks")
            rounds, raw = measure_rollbacks(cluster, prometheus.url, args)
            operator.stop()
            parts = [alert_rule_part(cluster, start_operator, prometheus.url, args),
                     canary_part(cluster, start_operator, prometheus.url, args)]
            signals.stopping = True
            progress("stopping everything")
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130
    report(rounds, raw, parts, args, load_before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
