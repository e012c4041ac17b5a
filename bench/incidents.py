"""Incident escalation benchmark: 1,000 open Incidents climbing one EscalationPolicy whose levels
are 30 s apart, against the AlertRule loop's figures.

One run starts, on loopback and in throw-away temp dirs, the local control plane with the
manifests and CRDs (`kubectl apply --server-side -k hack/local-install`, as tests/e2e do), an
in-process PagerDuty receiver (202) that records when each page arrives, one PagerDuty
NotificationChannel per level pointing at it, one EscalationPolicy (L1 0 s, L2 30 s, L3 60 s,
L4 90 s by default) and the operator as a subprocess under its ServiceAccount (LocalOperator).
Each round (`--rounds`, a fresh namespace each) creates `--incidents` Incidents with the raw
client (8 threads) and waits until every level of every incident was paged. Measured per round:

1. lateness of each page: its arrival at the receiver minus its deadline (`status.openedAt`,
   whole seconds as the operator reads it, plus the level's delay) — L2 and later separately
   (driven by the deadlines in status alone), and L1 (opening → first page: it includes the watch
   delivering the new Incident); p50, p99, max;
2. exactly once: pages per (incident, level), missing and duplicated;
3. the operator's CPU (utime + stime from /proc) from the first create to the last page, as % of
   a core and per page; the API server's and etcd's; the operator's RSS;
4. baselines in the same run: the raw Kubernetes client doing the status writes a page costs
   (GET the Incident, merge-patch its status, 16 threads like the operator's pool) for every
   incident; the AlertRule loop's figures on the same scheduler, from a file saved by
   `python bench/alert_rules.py --save FILE` (`--alert-rules FILE`), else those recorded in
   bench/README.md.

It prints medians over the rounds and ratios; it asserts nothing and exits 0.

    python bench/incidents.py [--incidents 1000] [--level-gap 30s] [--levels 4] [--rounds 1]
        [--alert-rules FILE] [--operator-log FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from alert_rules import (  # noqa: E402 - bench/ is not a package
    load,
    machine_busy,
    median,
    process_cpu,
    progress,
    rss_mib,
)

REPO = Path(__file__).resolve().parents[1]
GROUP, VERSION = "runbook.dev", "v1alpha1"
OPERATOR_NAMESPACE, OPERATOR_ACCOUNT = "runbook-system", "runbook-operator"
CREATE_THREADS = 8
PATCH_THREADS = 16  # controllers.incident.timers.RECONCILE_THREADS
#: bench/README.md, "AlertRule evaluation", commit 6cbee35: 1,000 rules at a 15 s interval on
#: the same shared scheduler (1 s tick).
README_ALERT_RULES = {"source": "bench/README.md (commit 6cbee35)", "interval": 15.0,
                      "batch_all": 0.40, "gap_median": 15.1, "gap_max": 15.1,
                      "cpu_percent": 2.3, "cpu_per_evaluation": 0.47e-3,
                      "spec_change_used": 1.0}
STEP = re.compile(r"\(step (\d+)")


class Receiver:
    """A PagerDuty endpoint on 127.0.0.1: answers 202 and records (incident, step, action,
    arrival) for every event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, str, float]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                arrived = time.time()
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                payload = body.get("payload") or {}
                step = STEP.search((payload.get("custom_details") or {}).get("level", ""))
                with receiver.lock:
                    receiver.events.append((payload.get("component", ""),
                                            int(step.group(1)) if step else 0,
                                            body["event_action"], arrived))
                answer = b'{"status":"success","message":"Event processed"}'
                self.send_response(202)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v2/enqueue"

    def triggers(self) -> list[tuple[str, int, float]]:
        with self.lock:
            return [(name, step, at) for name, step, action, at in self.events
                    if action == "trigger"]

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Round:
    namespace: str
    created_in: float = math.nan
    lateness_first: list[float] = field(default_factory=list)
    lateness_later: list[float] = field(default_factory=list)
    expected: int = 0
    missing: int = 0
    duplicated: int = 0
    seconds: float = math.nan
    cpu: dict[str, float] = field(default_factory=dict)
    other_load: float = math.nan
    raw_wall: float = math.nan
    raw_cpu: float = math.nan


def seconds_of(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h)", duration))


def policy(gap: str, levels: int) -> dict[str, Any]:
    gap_seconds = int(seconds_of(gap))
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "EscalationPolicy",
            "metadata": {"name": "bench"},
            "spec": {"levels": [{"after": f"{i * gap_seconds}s", "channels": [f"l{i + 1}"]}
                                for i in range(levels)]}}


def setup_namespace(api: Any, namespace: str, url: str, gap: str, levels: int) -> None:
    from kubernetes import client

    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="pd"), string_data={"key": "R0UT1NGKEY"}))
    for level in range(1, levels + 1):
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "notificationchannels", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "NotificationChannel",
            "metadata": {"name": f"l{level}"},
            "spec": {"pagerduty": {"routingKeySecretRef": {"name": "pd", "key": "key"},
                                   "endpoint": url}}})
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "escalationpolicies",
                                           policy(gap, levels))


def policy_ready(api: Any, namespace: str) -> bool:
    from kubernetes import client

    body = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "escalationpolicies", "bench")
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in (body.get("status") or {}).get("conditions") or [])


def create_incidents(api: Any, namespace: str, count: int) -> None:
    from kubernetes import client

    custom = client.CustomObjectsApi(api)

    def create(i: int) -> None:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "Incident",
            "metadata": {"name": f"inc-{i:04d}"},
            "spec": {"title": f"bench incident {i}", "severity": "P1",
                     "escalationPolicyRef": {"name": "bench"}}})

    with ThreadPoolExecutor(CREATE_THREADS) as pool:
        list(pool.map(create, range(count)))


def incidents(api: Any, namespace: str) -> list[dict[str, Any]]:
    from kubernetes import client

    return client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "incidents")["items"]


def opened(items: list[dict[str, Any]]) -> dict[str, float]:
    return {i["metadata"]["name"]: datetime.fromisoformat(
        i["status"]["openedAt"].replace("Z", "+00:00")).timestamp() for i in items}


def settled(items: list[dict[str, Any]], levels: int) -> bool:
    """Every incident's status records its last level: the operator writes nothing more."""
    return all(((i.get("status") or {}).get("escalation") or {}).get("step") == levels
               for i in items)


def raw_writes(api: Any, namespace: str, names: list[str]) -> tuple[float, float]:
    """What a page costs in status writes, by the raw client: GET, then a merge patch of status
    guarded by the resourceVersion read (wall, this process' CPU)."""
    from kubernetes import client

    custom = client.CustomObjectsApi(api)

    def write(name: str) -> None:
        body = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", name)
        flip = 1 - (body.get("status") or {}).get("truncatedAlerts", 0)
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, "incidents", name,
            {"metadata": {"resourceVersion": body["metadata"]["resourceVersion"]},
             "status": {"truncatedAlerts": flip}})

    cpu, wall = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(PATCH_THREADS) as pool:
        list(pool.map(write, names))
    return time.perf_counter() - wall, time.process_time() - cpu


def measure_round(api: Any, receiver: Receiver, processes: dict[str, int],
                  args: argparse.Namespace) -> Round:
    from runbook_operator.devcluster.waiting import wait_for

    result = Round(f"bench-incidents-{uuid.uuid4().hex[:5]}")
    setup_namespace(api, result.namespace, receiver.url, args.level_gap, args.levels)
    wait_for(lambda: policy_ready(api, result.namespace), "the EscalationPolicy Ready",
             timeout=120)
    before = len(receiver.triggers())
    result.expected = args.incidents * args.levels
    cpu = {name: process_cpu(pid) for name, pid in processes.items()}
    busy, started = machine_busy(), time.time()
    create_incidents(api, result.namespace, args.incidents)
    result.created_in = time.time() - started
    progress(f"{args.incidents} Incidents created in {result.created_in:.1f} s "
             f"({CREATE_THREADS} threads); waiting for {result.expected} pages")
    last_deadline = (args.levels - 1) * seconds_of(args.level_gap)
    with contextlib.suppress(AssertionError):
        wait_for(lambda: len(receiver.triggers()) - before >= result.expected,
                 "every level of every incident paged", timeout=last_deadline + 600,
                 interval=0.5)
    ended = time.time()
    result.seconds = ended - started
    result.cpu = {name: process_cpu(pid) - cpu[name] for name, pid in processes.items()}
    result.other_load = machine_busy() - busy - sum(result.cpu.values())
    with contextlib.suppress(AssertionError):
        wait_for(lambda: settled(incidents(api, result.namespace), args.levels),
                 "every incident's last level recorded", timeout=120, interval=1)
    deadlines = opened(incidents(api, result.namespace))
    gap = seconds_of(args.level_gap)
    pages = Counter()
    for name, step, at in receiver.triggers()[before:]:
        if name not in deadlines:
            continue
        pages[(name, step)] += 1
        late = at - (deadlines[name] + (step - 1) * gap)
        (result.lateness_first if step == 1 else result.lateness_later).append(late)
    wanted = {(name, step) for name in deadlines for step in range(1, args.levels + 1)}
    result.missing = len(wanted - set(pages))
    result.duplicated = sum(n - 1 for n in pages.values() if n > 1)
    progress(f"round {result.namespace}: {sum(pages.values())} pages in {result.seconds:.0f} s, "
             f"{result.missing} missing, {result.duplicated} duplicated")
    result.raw_wall, result.raw_cpu = raw_writes(api, result.namespace, sorted(deadlines))
    return result


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def alert_rule_figures(path: Path | None) -> dict[str, Any]:
    """The AlertRule loop's figures: how long the batch of all rules due in one tick takes
    (query, decide, status writes), the gap between a rule's evaluations (median, max), the
    operator's CPU (% and per evaluation), and how soon a spec change is used."""
    if path is None:
        return README_ALERT_RULES
    saved = load(path)
    windows, n = saved.windows, saved.rules
    return {
        "source": f"{path} (bench/alert_rules.py, {saved.revision})",
        "interval": saved.interval,
        "batch_all": median([w.batch_sum * n / w.evaluations for w in windows
                             if w.evaluations]),
        "gap_median": median(saved.gaps), "gap_max": max(saved.gaps),
        "cpu_percent": median([w.percent(w.operator_cpu) for w in windows]),
        "cpu_per_evaluation": (sum(w.operator_cpu for w in windows)
                               / max(1.0, sum(w.evaluations for w in windows))),
        "spec_change_used": median([c.took_effect for c in saved.spec_changes]),
    }


def fmt(value: float, unit: str = "s", digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f} {unit}".strip()


def ratio(value: float, base: float) -> str:
    if math.isnan(value) or math.isnan(base) or base == 0:
        return "n/a"
    return f"{value / base:.2f}x"


def report(rounds: list[Round], alert: dict[str, Any], args: argparse.Namespace,
           rss: float) -> None:
    def med(get) -> float:
        return median([get(r) for r in rounds])

    later, first = (lambda r: r.lateness_later), (lambda r: r.lateness_first)
    p50, p99 = med(lambda r: percentile(later(r), 0.5)), med(lambda r: percentile(later(r), 0.99))
    worst = max((max(later(r), default=math.nan) for r in rounds), default=math.nan)
    f50, f99 = med(lambda r: percentile(first(r), 0.5)), med(lambda r: percentile(first(r), 0.99))
    pages = med(lambda r: float(len(later(r)) + len(first(r))))
    cpu = med(lambda r: r.cpu["operator"])
    percent = med(lambda r: 100 * r.cpu["operator"] / r.seconds)
    per_page = med(lambda r: r.cpu["operator"] / max(1, len(later(r)) + len(first(r))))
    raw_per_write = med(lambda r: r.raw_cpu / args.incidents)
    interval = alert["interval"]
    raw_wall = med(lambda r: r.raw_wall)
    rows = [
        ("L2+ pages: deadline -> arrived, p50", fmt(p50),
         f"AlertRule: all {args.incidents} rules of a tick done {fmt(alert['batch_all'])}",
         ratio(p50, alert["batch_all"])),
        ("L2+ pages: deadline -> arrived, p99 (max)", f"{fmt(p99)} ({fmt(worst)})",
         f"AlertRule: all {args.incidents} rules of a tick done {fmt(alert['batch_all'])}",
         ratio(p99, alert["batch_all"])),
        (f"  {args.incidents} pages due at once: the last one (max)", fmt(worst),
         f"raw GET + status patch of {args.incidents} Incidents {fmt(raw_wall)}",
         ratio(worst, raw_wall)),
        ("  schedule: AlertRule gap between evaluations, median (max)", "",
         f"{fmt(alert['gap_median'])} ({fmt(alert['gap_max'])}) at {interval:g} s", ""),
        ("L1 pages: opened -> arrived, p50 / p99", f"{fmt(f50)} / {fmt(f99)}",
         f"AlertRule: spec change -> used {fmt(alert['spec_change_used'])}",
         ratio(f50, alert["spec_change_used"])),
        ("pages expected / missing / duplicated",
         f"{med(lambda r: r.expected):.0f} / {med(lambda r: r.missing):.0f} / "
         f"{med(lambda r: r.duplicated):.0f}", "", ""),
        ("operator CPU while climbing, % of one core", fmt(percent, "%", 1),
         f"AlertRule {fmt(alert['cpu_percent'], '%', 1)} at {interval:g} s",
         ratio(percent, alert["cpu_percent"])),
        ("operator CPU per page", fmt(per_page * 1000, "ms"),
         f"AlertRule {fmt(alert['cpu_per_evaluation'] * 1000, 'ms')} per evaluation",
         ratio(per_page, alert["cpu_per_evaluation"])),
        ("operator CPU per page vs raw GET + status patch", fmt(per_page * 1000, "ms"),
         f"raw client {fmt(raw_per_write * 1000, 'ms')} per write",
         ratio(per_page, raw_per_write)),
        (f"raw GET + status patch of {args.incidents} Incidents ({PATCH_THREADS} threads)",
         fmt(raw_wall), "", ""),
        ("operator CPU over the round / round length",
         f"{fmt(cpu)} / {fmt(med(lambda r: r.seconds), 's', 0)}", f"{pages:.0f} pages", ""),
        ("API server / etcd CPU, % of one core",
         f"{fmt(med(lambda r: 100 * r.cpu['apiserver'] / r.seconds), '%', 1)} / "
         f"{fmt(med(lambda r: 100 * r.cpu['etcd'] / r.seconds), '%', 1)}", "", ""),
        ("other load on the machine, cores",
         fmt(med(lambda r: r.other_load / r.seconds), "", 2), "", ""),
        (f"{args.incidents} Incidents created in", fmt(med(lambda r: r.created_in)),
         f"{CREATE_THREADS} threads", ""),
        ("operator RSS at the end", fmt(rss, "MiB", 0), "", ""),
    ]
    print(f"\n{args.incidents} Incidents, {args.levels} levels {args.level_gap} apart, "
          f"{len(rounds)} round(s); AlertRule figures from {alert['source']}\n")
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    header = ("figure", "value", "baseline", "ratio")
    for row in (header, tuple("-" * w for w in widths), *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    if len(rounds) > 1:
        print("\nper round, L2+ p50 / p99: " + ", ".join(
            f"{fmt(percentile(later(r), 0.5))} / {fmt(percentile(later(r), 0.99))}"
            for r in rounds))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=1000)
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--level-gap", default="30s", help="delay between levels (Go duration)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--alert-rules", type=Path,
                        help="a file saved by `bench/alert_rules.py --save` (same machine)")
    parser.add_argument("--operator-log", type=Path, help="copy the operator's log here")
    args = parser.parse_args(argv)

    from kubernetes import config
    from runbook_operator.devcluster import network
    from runbook_operator.devcluster.cluster import LocalCluster, build_scripts
    from runbook_operator.devcluster.local_operator import LocalOperator

    network.enter(prepare=build_scripts())  # before any thread: the cluster lives inside

    alert = alert_rule_figures(args.alert_rules)
    rounds: list[Round] = []
    try:
        with contextlib.ExitStack() as stack:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-inc-")))
            cluster = stack.enter_context(LocalCluster(workdir=tmp / "cluster"))
            cluster.kubectl("apply", "--server-side", "-k", str(REPO / "hack" / "local-install"))
            cluster.wait_established("crd", "-l", "app.kubernetes.io/part-of=runbook-operator")
            kubeconfig = cluster.service_account_kubeconfig(
                OPERATOR_NAMESPACE, OPERATOR_ACCOUNT, tmp / "operator.kubeconfig")
            api = config.new_client_from_config(config_file=str(cluster.admin_kubeconfig))
            stack.callback(api.close)
            receiver = stack.enter_context(Receiver())
            operator = LocalOperator(kubeconfig, tmp / "operator.log", resync_seconds=60)
            stack.callback(operator.stop)
            operator.start()
            assert operator.process is not None
            pid = operator.process.pid
            progress(f"control plane {cluster.server}, operator pid {pid}")
            processes = {"operator": pid,
                         **{name.removeprefix("kube-"): p for name, p in cluster.pids.items()}}
            for number in range(args.rounds):
                progress(f"round {number + 1}/{args.rounds}")
                rounds.append(measure_round(api, receiver, processes, args))
            rss = rss_mib(pid)
            if args.operator_log:
                args.operator_log.write_text(operator.log_text())
            progress("stopping everything")
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130
    report(rounds, alert, args, rss)
    return 0


if __name__ == "__main__":
    sys.exit(main())
