"""Load benchmark: BackupPolicies, AlertRules, CanaryRollouts and Incidents created at once,
time to all Ready against the raw client doing the same writes, the operator's memory, and a
restart with everything in place.

One run starts, on loopback and in throw-away temp dirs, the local control plane with the
manifests and CRDs (`kubectl apply --server-side -k hack/local-install`, as tests/e2e do), a
local Prometheus (no targets: every AlertRule asks `vector(0)` every `--rule-interval`, so all
rules evaluate and none fires), and measures, in this order:

1. the floor: the API server's plain write rate, ConfigMap creates from `--threads` threads, as
   many as the raw client's writes below;
2. the baseline: the raw Kubernetes client (dynamic client, `--threads` threads) creating the
   same objects and making the writes the operator makes for them — BackupPolicy: server-side
   apply of its CronJob; CanaryRollout: apply of the primary Deployment and of the primary and
   canary Services, the target scaled to 0 (merge patch); every object: one merge patch of
   status with its Ready condition — then waiting for the primaries' (kwok) pods to be
   available;
3. the operator: `runbook-operator run` under its ServiceAccount (LocalOperator), started once
   the baseline's namespaces are deleted (their objects are not its work), the same objects
   created by the same threads in a fresh namespace, then the time until every one has a
   Ready=True condition of its generation (kstatus; listed every second). Meanwhile its VmRSS
   is read from /proc every 100 ms (and VmHWM at the end); handler errors are counted in its
   log (tracebacks, "Handler ... failed");
4. a restart with all objects in place, once with the operator's default client QPS limit and
   once without (`--api-qps=0`): time until every BackupPolicy and Incident was reconciled
   (the operator's `runbook_operator_reconcile_total`: the first resync pass, after
   `--resync-interval`, 60 s), the API server's peak request rate
   (`apiserver_request_total`, read every second; WATCH excluded) and requests in all.

CanaryRollouts split traffic by replica ratio (no router object needed) between Deployments
whose pods kwok fakes (an image the runtime does not run); the user's Service over both
versions is headless, since the local control plane's Service range (a /24) holds only the
operator's primary and canary Services of 100 rollouts. Incidents follow one
EscalationPolicy whose only level is 24 h away, so none pages during the run.

It prints a table with ratios; it asserts nothing and exits 0. `--profile` runs the operator
under tracemalloc and prints the allocation sites that grew most during the load.

    python bench/load.py [--backup-policies 1000] [--alert-rules 500] [--canary-rollouts 100]
        [--incidents 200] [--threads 16] [--operator-log FILE] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import re
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from alert_rules import progress  # noqa: E402 - bench/ is not a package

from runbook_operator.devcluster.waiting import Timeout, wait_for  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GROUP, VERSION = "runbook.dev", "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
OPERATOR_NAMESPACE, OPERATOR_ACCOUNT = "runbook-system", "runbook-operator"
FIELD_MANAGER = "runbook-operator"
#: An image the runtime does not run: kwok fakes its pods (ready at once, serving nothing).
FAKED_IMAGE = "registry.invalid/checkout:1"
PLURALS = {"BackupPolicy": "backuppolicies", "AlertRule": "alertrules",
           "CanaryRollout": "canaryrollouts", "Incident": "incidents"}
PART_OF = "app.kubernetes.io/part-of"
LABEL = re.compile(r'(\w+)="([^"]*)"')
HANDLER_FAILED = re.compile(r"Handler '[^']+' failed")
WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "APPLY"}
SNAPSHOT_SIGNAL = signal.SIGUSR1
#: Put on the operator's PYTHONPATH with --profile: the first SIGUSR1 starts tracemalloc (so
#: start-up is not slowed), the second dumps a snapshot to $RUNBOOK_BENCH_SNAPSHOT: what was
#: allocated in between and is still held.
SITECUSTOMIZE = """\
import os, signal, tracemalloc
def _profile(*_):
    if tracemalloc.is_tracing():
        path = os.environ["RUNBOOK_BENCH_SNAPSHOT"]
        tracemalloc.take_snapshot().dump(path + ".part")
        os.rename(path + ".part", path)
    else:
        tracemalloc.start(12)
signal.signal(signal.SIGUSR1, _profile)
"""


# -- the objects ----------------------------------------------------------------------------


def setup_objects(prometheus_url: str) -> list[dict[str, Any]]:
    """What every namespace of the run holds before the load: the PagerDuty channel the
    AlertRules and the policy name (never paged: its endpoint is unreachable and 24 h away)."""
    return [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pd"},
         "stringData": {"key": "R0UT1NGKEY"}},
        {"apiVersion": API_VERSION, "kind": "NotificationChannel", "metadata": {"name": "oncall"},
         "spec": {"pagerduty": {"routingKeySecretRef": {"name": "pd", "key": "key"},
                                "endpoint": "http://127.0.0.1:9/v2/enqueue"}}},
        {"apiVersion": API_VERSION, "kind": "EscalationPolicy", "metadata": {"name": "bench"},
         "spec": {"levels": [{"after": "24h", "channels": ["oncall"]}]}},
    ]


def target(name: str, app: str) -> dict[str, Any]:
    """A CanaryRollout's target: the user's Deployment, without replicas (the operator scales
    it), its pod faked by kwok and labelled part of `app`, which the user's Service selects
    (the replica-ratio router's Service over both versions)."""
    labels = {"app.kubernetes.io/name": name}
    pod_labels = {**labels, PART_OF: app, "app.kubernetes.io/version": "v1"}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": labels},
            "spec": {"selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": pod_labels},
                                  "spec": {"containers": [{
                                      "name": "app", "image": FAKED_IMAGE,
                                      "ports": [{"name": "http", "containerPort": 8080}]}]}}}}


def load_objects(args: argparse.Namespace, prometheus_url: str) -> list[dict[str, Any]]:
    """The load, kinds interleaved as a GitOps sync of many applications would create them."""
    kinds: list[list[dict[str, Any]]] = [
        [{"apiVersion": API_VERSION, "kind": "BackupPolicy", "metadata": {"name": f"bp-{i:04d}"},
          "spec": {"schedule": f"{i % 60} 2 * * *",
                   "source": {"command": {"image": "busybox:1.36", "command": ["true"]}}}}
         for i in range(args.backup_policies)],
        [{"apiVersion": API_VERSION, "kind": "AlertRule", "metadata": {"name": f"ar-{i:04d}"},
          "spec": {"query": f"vector({i % 7}) * 0", "interval": args.rule_interval,
                   "condition": {"operator": "gt", "threshold": 1}, "severity": "warning",
                   "prometheus": {"url": prometheus_url}, "channels": [{"name": "oncall"}]}}
         for i in range(args.alert_rules)],
        [{"apiVersion": API_VERSION, "kind": "CanaryRollout", "metadata": {"name": f"app-{i:03d}"},
          "spec": {"targetRef": {"name": f"app-{i:03d}"},
                   "service": {"port": 80, "targetPort": "http"},
                   "router": {"replicaRatio": {}},
                   "canary": {"initialWeight": 5, "stepWeight": 25, "maxWeight": 80},
                   "analysis": {"interval": "1m", "minimumRequests": 0,
                                "prometheus": {"url": prometheus_url},
                                "metrics": [{"name": "always", "query": "vector(1)",
                                             "thresholdRange": {"min": 0}}]}}}
         for i in range(args.canary_rollouts)],
        [{"apiVersion": API_VERSION, "kind": "Incident", "metadata": {"name": f"inc-{i:04d}"},
          "spec": {"title": f"bench incident {i}", "severity": "P3",
                   "escalationPolicyRef": {"name": "bench"}}}
         for i in range(args.incidents)],
    ]
    longest = max(len(k) for k in kinds)
    return [k[i] for i in range(longest) for k in kinds if i < len(k)]


# -- the API --------------------------------------------------------------------------------


class Api:
    """The admin's dynamic client, as the operator's Kube makes its calls."""

    def __init__(self, kubeconfig: Path) -> None:
        from kubernetes import config
        from kubernetes.dynamic import DynamicClient

        self.client = config.new_client_from_config(config_file=str(kubeconfig))
        self.client.configuration.connection_pool_maxsize = 64
        self.dynamic = DynamicClient(self.client)

    def resource(self, api_version: str, kind: str) -> Any:
        return self.dynamic.resources.get(api_version=api_version, kind=kind)

    def create(self, namespace: str, body: dict[str, Any]) -> None:
        self.resource(body["apiVersion"], body["kind"]).create(body=body, namespace=namespace)

    def apply(self, namespace: str, body: dict[str, Any]) -> None:
        self.dynamic.server_side_apply(self.resource(body["apiVersion"], body["kind"]),
                                       body=body, namespace=namespace,
                                       field_manager=FIELD_MANAGER, force_conflicts=True)

    def merge_patch(self, namespace: str, api_version: str, kind: str, name: str,
                    patch: dict[str, Any], status: bool = False) -> None:
        resource = self.resource(api_version, kind)
        (resource.status if status else resource).patch(
            body=patch, name=name, namespace=namespace,
            content_type="application/merge-patch+json", field_manager=FIELD_MANAGER)

    def items(self, namespace: str, api_version: str, kind: str) -> list[dict[str, Any]]:
        return self.resource(api_version, kind).get(namespace=namespace).to_dict()["items"]

    def namespace(self, name: str) -> None:
        self.create("", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def request_counts(self) -> tuple[float, float]:
        """The API server's requests so far (WATCH excluded) and its writes among them."""
        return totals(self.requests_by_kind())

    def requests_by_kind(self) -> Counter[tuple[str, str]]:
        """The API server's requests so far by resource (with its subresource) and verb, WATCH
        and CONNECT excluded: `apiserver_request_total` summed over codes and scopes."""
        response = self.client.rest_client.request(
            "GET", f"{self.client.configuration.host}/metrics")
        response.read()
        counts: Counter[tuple[str, str]] = Counter()
        for line in response.data.decode().splitlines():
            if not line.startswith("apiserver_request_total{"):
                continue
            labels = dict(LABEL.findall(line))
            verb = labels.get("verb", "")
            if verb in ("WATCH", "CONNECT"):
                continue
            resource = "/".join(filter(None, (labels.get("resource"),
                                               labels.get("subresource"))))
            counts[resource, verb] += float(line.rsplit(" ", 1)[1])
        return counts


def totals(counts: Counter[tuple[str, str]]) -> tuple[float, float]:
    """All requests and the writes among them."""
    return (sum(counts.values()),
            sum(n for (_, verb), n in counts.items() if verb in WRITE_VERBS))


def in_parallel(threads: int, work: Any, items: list[Any]) -> float:
    """Seconds to run `work` on every item from `threads` threads."""
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, items))
    return time.perf_counter() - started


def ready(body: dict[str, Any]) -> bool:
    """kstatus: a Ready=True condition of the object's current generation."""
    generation = body["metadata"].get("generation")
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               and c.get("observedGeneration", generation) == generation
               for c in (body.get("status") or {}).get("conditions") or [])


def available(deployment: dict[str, Any]) -> bool:
    wanted = deployment["spec"].get("replicas", 1)
    return (deployment.get("status") or {}).get("availableReplicas", 0) >= wanted


def prepare(api: Api, namespace: str, prometheus_url: str, targets: int) -> None:
    """The namespace, its channel and policy, and the rollouts' targets running with the
    Service over them."""
    api.namespace(namespace)
    for body in setup_objects(prometheus_url):
        api.create(namespace, body)
    def user_objects(i: int) -> None:
        name = f"app-{i:03d}"
        api.create(namespace, target(name, name))
        api.create(namespace, {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"clusterIP": "None", "selector": {PART_OF: name},
                     "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})

    in_parallel(8, user_objects, list(range(targets)))
    wait_for(lambda: sum(available(d) for d in api.items(namespace, "apps/v1", "Deployment"))
             >= targets, f"{targets} target Deployments available", timeout=300, interval=1)


# -- floor and baseline ---------------------------------------------------------------------


def raw_status(generation: int = 1) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"status": {"observedGeneration": generation, "conditions": [{
        "type": "Ready", "status": "True", "reason": "Raw", "message": "the raw client",
        "lastTransitionTime": now, "observedGeneration": generation}]}}


def cronjob(policy: dict[str, Any]) -> dict[str, Any]:
    name = policy["metadata"]["name"]
    command = policy["spec"]["source"]["command"]
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": f"{name}-backup", "labels": {"runbook.dev/policy": name}},
            "spec": {"schedule": policy["spec"]["schedule"], "concurrencyPolicy": "Forbid",
                     "jobTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": {
                         "restartPolicy": "Never",
                         "containers": [{"name": "backup", "image": command["image"],
                                         "command": command["command"]}]}}}}}}


def primary_and_services(rollout: dict[str, Any]) -> list[dict[str, Any]]:
    name = rollout["metadata"]["name"]
    primary = target(f"{name}-primary", name)
    primary["spec"]["replicas"] = 1
    services = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"{name}-{role}"},
                 "spec": {"selector": {"app.kubernetes.io/name": f"{name}-{selector}"},
                          "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
                for role, selector in (("primary", "primary"), ("canary", ""))]
    services[1]["spec"]["selector"] = {"app.kubernetes.io/name": name}
    return [primary, *services]


def raw_writes(api: Api, namespace: str, body: dict[str, Any]) -> None:
    """One object as the raw client: create it, write what the operator would, its status."""
    kind, name = body["kind"], body["metadata"]["name"]
    api.create(namespace, body)
    if kind == "BackupPolicy":
        api.apply(namespace, cronjob(body))
    elif kind == "CanaryRollout":
        for owned in primary_and_services(body):
            api.apply(namespace, owned)
        api.merge_patch(namespace, "apps/v1", "Deployment", name, {"spec": {"replicas": 0}})
    api.merge_patch(namespace, API_VERSION, kind, name, raw_status(), status=True)


def writes_per_object(body: dict[str, Any]) -> int:
    return {"BackupPolicy": 3, "CanaryRollout": 6}.get(body["kind"], 2)


@dataclass
class Baseline:
    floor_writes: int = 0
    floor_seconds: float = 0.0
    raw_writes_seconds: float = 0.0
    raw_seconds: float = 0.0
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)


def measure_baseline(api: Api, objects: list[dict[str, Any]], args: argparse.Namespace,
                     prometheus_url: str) -> Baseline:
    result = Baseline(floor_writes=sum(writes_per_object(o) for o in objects))
    api.namespace("bench-floor")
    result.floor_seconds = in_parallel(args.threads, lambda i: api.create("bench-floor", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i:05d}"},
        "data": {"n": str(i)}}), list(range(result.floor_writes)))
    progress(f"floor: {result.floor_writes} ConfigMap creates in {result.floor_seconds:.1f} s")
    prepare(api, "bench-raw", prometheus_url, args.canary_rollouts)
    before = api.requests_by_kind()
    started = time.perf_counter()
    result.raw_writes_seconds = in_parallel(
        args.threads, lambda body: raw_writes(api, "bench-raw", body), copy.deepcopy(objects))
    primaries = args.canary_rollouts
    wait_for(lambda: sum(available(d) for d in api.items("bench-raw", "apps/v1", "Deployment")
                         if d["metadata"]["name"].endswith("-primary")) >= primaries,
             "the raw client's primaries available", timeout=300, interval=0.5)
    result.raw_seconds = time.perf_counter() - started
    result.requests = api.requests_by_kind() - before
    progress(f"raw client: writes in {result.raw_writes_seconds:.1f} s, primaries available "
             f"after {result.raw_seconds:.1f} s")
    return result


# -- the operator ---------------------------------------------------------------------------


class RssSampler:
    """VmRSS of a process every 100 ms, on a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop_flag.wait(0.1):
            rss = proc_status_mib(self.pid, "VmRSS")
            if rss is not None:
                self.samples.append((time.time(), rss))

    def __enter__(self) -> RssSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_flag.set()
        self.thread.join()

    def peak(self) -> float:
        return max((rss for _, rss in self.samples), default=float("nan"))


def proc_status_mib(pid: int, field_name: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def handler_errors(log_text: str) -> dict[str, int]:
    return {"tracebacks": log_text.count("Traceback (most recent call last)"),
            "handler failures": len(HANDLER_FAILED.findall(log_text)),
            "ERROR lines": sum(" ERROR " in line for line in log_text.splitlines())}


def not_ready(api: Api, namespace: str, counts: dict[str, int]) -> dict[str, int]:
    left = {}
    for kind in PLURALS:
        if counts.get(kind):
            items = api.items(namespace, API_VERSION, kind)
            left[kind] = counts[kind] - sum(ready(i) for i in items)
    return left


def first_not_ready(api: Api, namespace: str, kind: str) -> str:
    """Why one object of `kind` is not Ready: its Ready condition, or that it has none."""
    for item in api.items(namespace, API_VERSION, kind):
        if not ready(item):
            conditions = (item.get("status") or {}).get("conditions") or []
            found = [c for c in conditions if c.get("type") == "Ready"]
            return f"{kind} {item['metadata']['name']}: {found[0] if found else 'no Ready'}"
    return f"{kind}: all Ready"


@dataclass
class Load:
    created_seconds: float = 0.0
    ready_seconds: dict[str, float] = field(default_factory=dict)
    all_ready_seconds: float = float("nan")
    rss_idle: float = float("nan")
    rss_peak: float = float("nan")
    rss_after: float = float("nan")
    hwm: float = float("nan")
    errors: dict[str, int] = field(default_factory=dict)
    left: dict[str, int] = field(default_factory=dict)
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)


def measure_load(api: Api, operator: Any, objects: list[dict[str, Any]],
                 args: argparse.Namespace) -> Load:
    result = Load()
    counts = {kind: sum(o["kind"] == kind for o in objects) for kind in PLURALS}
    pid = operator.process.pid
    result.rss_idle = proc_status_mib(pid, "VmRSS") or float("nan")
    if args.profile:
        os.kill(pid, SNAPSHOT_SIGNAL)
    before = api.requests_by_kind()
    with RssSampler(pid) as sampler:
        started = time.perf_counter()
        result.created_seconds = in_parallel(
            args.threads, lambda body: api.create("bench-load", body), copy.deepcopy(objects))
        progress(f"operator: {len(objects)} objects created in {result.created_seconds:.1f} s")

        def all_ready() -> bool:
            """Note when each kind is all Ready; True once every kind is."""
            result.left = not_ready(api, "bench-load", counts)
            elapsed = time.perf_counter() - started
            for kind, left in result.left.items():
                if left == 0 and kind not in result.ready_seconds:
                    result.ready_seconds[kind] = elapsed
            return not any(result.left.values())

        with contextlib.suppress(Timeout):
            wait_for(all_ready, "every object Ready", timeout=args.timeout, interval=1.0)
            result.all_ready_seconds = time.perf_counter() - started
            result.requests = api.requests_by_kind() - before
        progress(f"operator: all Ready after {result.all_ready_seconds:.1f} s "
                 f"(not Ready: {result.left})")
        for kind, left in result.left.items():
            if left:
                progress(first_not_ready(api, "bench-load", kind))
        time.sleep(args.settle)  # a measurement window: the RSS sampler runs meanwhile
    result.rss_peak = sampler.peak()
    result.rss_after = proc_status_mib(pid, "VmRSS") or float("nan")
    result.hwm = proc_status_mib(pid, "VmHWM") or float("nan")
    if args.profile:
        os.kill(pid, SNAPSHOT_SIGNAL)
    result.errors = handler_errors(operator.log_text())
    return result


def reconciled(metrics_text: str, kinds: tuple[str, ...]) -> dict[str, float]:
    found = dict.fromkeys(kinds, 0.0)
    for line in metrics_text.splitlines():
        if line.startswith("runbook_operator_reconcile_total{"):
            kind = re.search(r'kind="([^"]+)"', line)
            if kind and kind.group(1) in found:
                found[kind.group(1)] += float(line.rsplit(" ", 1)[1])
    return found


@dataclass
class Restart:
    label: str
    handled_seconds: float = float("nan")
    peak_rate: float = 0.0
    peak_write_rate: float = 0.0
    requests: float = 0.0
    rss_peak: float = float("nan")


def measure_restart(api: Api, make_operator: Any, label: str, extra: tuple[str, ...],
                    counts: dict[str, int], timeout: float) -> Restart:
    """Start the operator with every object in place; until it reconciled every
    BackupPolicy and Incident, read the API server's request counters every second."""
    result = Restart(label)
    wanted = {k: counts[k] for k in ("BackupPolicy", "Incident") if counts[k]}
    operator = make_operator(extra)
    before = last = api.request_counts()
    last_at = started = time.perf_counter()
    operator.start()
    with RssSampler(operator.process.pid) as sampler:

        def handled() -> bool:
            """Read the request counters (one sample per poll); True once every BackupPolicy
            and Incident was reconciled again."""
            nonlocal last, last_at
            now, counters = time.perf_counter(), api.request_counts()
            if now > last_at:
                result.peak_rate = max(result.peak_rate,
                                       (counters[0] - last[0]) / (now - last_at))
                result.peak_write_rate = max(result.peak_write_rate,
                                             (counters[1] - last[1]) / (now - last_at))
            last, last_at = counters, now
            done = reconciled(operator.metrics(), tuple(wanted))
            return all(done[k] >= n for k, n in wanted.items())

        with contextlib.suppress(Timeout):
            wait_for(handled, "every BackupPolicy and Incident reconciled", timeout=timeout,
                     interval=1.0)
            result.handled_seconds = last_at - started
    result.requests = last[0] - before[0]
    result.rss_peak = sampler.peak()
    operator.stop()
    progress(f"restart ({label}): all handled after {result.handled_seconds:.1f} s, peak "
             f"{result.peak_rate:.0f} requests/s")
    return result


# -- memory profile -------------------------------------------------------------------------


def profile_report(snapshot_path: Path, top: int = 25) -> None:
    import tracemalloc

    snapshot = tracemalloc.Snapshot.load(str(snapshot_path))
    total = sum(stat.size for stat in snapshot.statistics("filename"))
    print(f"\nAllocated during the load and still held (tracemalloc): {total / 2**20:.1f} MiB")
    print("By file:")
    for stat in snapshot.statistics("filename")[:top]:
        print(f"  {stat.size / 2**20:8.1f} MiB  {stat.count:9d} blocks  "
              f"{stat.traceback[0].filename}")
    print("By line:")
    for stat in snapshot.statistics("lineno")[:top]:
        frame = stat.traceback[0]
        print(f"  {stat.size / 2**20:8.1f} MiB  {frame.filename}:{frame.lineno}")
    print("Largest by call stack (innermost 6 frames):")
    for stat in snapshot.statistics("traceback")[:5]:
        print(f"  {stat.size / 2**20:8.1f} MiB")
        for line in stat.traceback.format(limit=6):
            print(f"    {line}")


# -- report ---------------------------------------------------------------------------------


def ratio(value: float, base: float) -> str:
    if base != base or value != value or base == 0:
        return "n/a"
    return f"{value / base:.2f}x"


def report(args: argparse.Namespace, objects: list[dict[str, Any]], base: Baseline,
           load: Load, restarts: list[Restart]) -> None:
    floor_rate = base.floor_writes / base.floor_seconds
    rows = [
        ("objects created at once", f"{len(objects)}", "", ""),
        ("floor: ConfigMap creates (writes/s)", f"{floor_rate:.0f}/s",
         f"{base.floor_writes} in {base.floor_seconds:.1f} s", ""),
        ("raw client: the same writes", f"{base.raw_writes_seconds:.1f} s",
         f"floor {base.floor_seconds:.1f} s", ratio(base.raw_writes_seconds, base.floor_seconds)),
        ("raw client: + primaries available", f"{base.raw_seconds:.1f} s", "", ""),
        ("operator: creates by the client", f"{load.created_seconds:.1f} s", "", ""),
    ]
    for kind, seconds in load.ready_seconds.items():
        rows.append((f"operator: all {kind} Ready", f"{seconds:.1f} s", "", ""))
    rows += [
        ("operator: all Ready (goal <= 1.5x raw)", f"{load.all_ready_seconds:.1f} s",
         f"raw {base.raw_seconds:.1f} s", ratio(load.all_ready_seconds, base.raw_seconds)),
        ("operator: all Ready vs the floor", f"{load.all_ready_seconds:.1f} s",
         f"floor {base.floor_seconds:.1f} s", ratio(load.all_ready_seconds, base.floor_seconds)),
        ("API requests until all Ready (writes), all clients",
         "{:.0f} ({:.0f})".format(*totals(load.requests)),
         f"the load's creates {len(objects)}", ""),
        ("operator RSS idle -> peak (100 ms samples)",
         f"{load.rss_idle:.0f} -> {load.rss_peak:.0f} MiB", "goal 120 MiB",
         ratio(load.rss_peak, 120)),
        ("operator RSS after settling / VmHWM",
         f"{load.rss_after:.0f} / {load.hwm:.0f} MiB", "", ""),
    ]
    rows += [(f"operator log: {name}", str(n), "goal 0", "") for name, n in load.errors.items()]
    for restart in restarts:
        rows += [
            (f"restart, {restart.label}: BP+Incident reconciled (resync pass)",
             f"{restart.handled_seconds:.1f} s", "", ""),
            (f"restart, {restart.label}: peak API requests/s (writes/s)",
             f"{restart.peak_rate:.0f} ({restart.peak_write_rate:.0f})",
             f"floor {floor_rate:.0f}/s", ratio(restart.peak_rate, floor_rate)),
            (f"restart, {restart.label}: requests / peak RSS",
             f"{restart.requests:.0f} / {restart.rss_peak:.0f} MiB", "", ""),
        ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print()
    print("  ".join(h.ljust(w) for h, w in zip(("figure", "value", "baseline", "ratio"), widths,
                                               strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    print_requests(base.requests, load.requests)
    if load.left and any(load.left.values()):
        print(f"\nnot Ready at the deadline: {load.left}")


def print_requests(raw: Counter[tuple[str, str]], operator: Counter[tuple[str, str]]) -> None:
    """The API server's requests by resource and verb (WATCH excluded): the raw client's
    writes until its primaries were available, the operator's run until all were Ready (both
    with the bench's own creates and listings)."""
    keys = sorted(set(raw) | set(operator), key=lambda k: (-operator[k], -raw[k], k))
    print("\nAPI requests by resource and verb (all clients, WATCH excluded)")
    print(f"{'resource':36}  {'verb':6}  {'raw client':>10}  {'operator run':>12}")
    for resource, verb in keys:
        print(f"{resource:36}  {verb:6}  {raw[resource, verb]:10.0f}  "
              f"{operator[resource, verb]:12.0f}")
    print("{:36}  {:6}  {:10.0f}  {:12.0f}".format("all", "", totals(raw)[0],
                                                  totals(operator)[0]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backup-policies", type=int, default=1000)
    parser.add_argument("--alert-rules", type=int, default=500)
    parser.add_argument("--canary-rollouts", type=int, default=100)
    parser.add_argument("--incidents", type=int, default=200)
    parser.add_argument("--threads", type=int, default=16, help="the clients' threads")
    parser.add_argument("--rule-interval", default="30s", help="the AlertRules' interval")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to all Ready")
    parser.add_argument("--settle", type=float, default=10,
                        help="seconds of RSS sampling after all are Ready")
    parser.add_argument("--operator-args", default="",
                        help="extra flags of `runbook-operator run`, e.g. '--api-qps=100'")
    parser.add_argument("--restart-timeout", type=float, default=180,
                        help="seconds a restart may take to reconcile everything")
    parser.add_argument("--no-restart", action="store_true", help="skip the restarts")
    parser.add_argument("--profile", action="store_true",
                        help="the operator under tracemalloc (slower, more memory): prints "
                        "what grew during the load")
    parser.add_argument("--operator-log", type=Path, help="copy the operator's log here")
    args = parser.parse_args(argv)

    from runbook_operator.devcluster import network
    from runbook_operator.devcluster.cluster import LocalCluster, build_scripts
    from runbook_operator.devcluster.local_operator import LocalOperator
    from runbook_operator.devcluster.prometheus import PrometheusServer
    network.enter(prepare=build_scripts())  # before any thread: the cluster lives inside

    restarts: list[Restart] = []
    try:
        with contextlib.ExitStack() as stack:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-load-")))
            prometheus = stack.enter_context(PrometheusServer([]))
            cluster = stack.enter_context(LocalCluster(workdir=tmp / "cluster"))
            cluster.kubectl("apply", "--server-side", "-k", str(REPO / "hack" / "local-install"))
            cluster.wait_established("crd", "-l", "app.kubernetes.io/part-of=runbook-operator")
            kubeconfig = cluster.service_account_kubeconfig(
                OPERATOR_NAMESPACE, OPERATOR_ACCOUNT, tmp / "operator.kubeconfig")
            api = Api(cluster.admin_kubeconfig)
            stack.callback(api.client.close)
            objects = load_objects(args, prometheus.url)
            progress(f"control plane {cluster.server}, Prometheus {prometheus.url}")

            base = measure_baseline(api, objects, args, prometheus.url)
            for namespace in ("bench-floor", "bench-raw"):
                api.resource("v1", "Namespace").delete(name=namespace)
            wait_for(lambda: not {"bench-floor", "bench-raw"} & {
                n["metadata"]["name"] for n in api.items("", "v1", "Namespace")},
                "the baseline's namespaces gone", timeout=600, interval=1)
            progress("the baseline's namespaces are gone")

            prepare(api, "bench-load", prometheus.url, args.canary_rollouts)
            snapshot = tmp / "snapshot"
            if args.profile:
                (tmp / "profile").mkdir()
                (tmp / "profile" / "sitecustomize.py").write_text(SITECUSTOMIZE)
                os.environ["PYTHONPATH"] = os.pathsep.join(
                    [str(tmp / "profile"), os.environ.get("PYTHONPATH", "")])
                os.environ["RUNBOOK_BENCH_SNAPSHOT"] = str(snapshot)
            log_path = tmp / "operator.log"

            def make_operator(extra: tuple[str, ...]) -> Any:
                operator = LocalOperator(
                    kubeconfig, log_path, resync_seconds=60,
                    extra_args=(*args.operator_args.split(), *extra))
                stack.callback(operator.stop)
                return operator

            operator = make_operator(())
            operator.start()
            progress(f"operator pid {operator.process.pid}")
            load = measure_load(api, operator, objects, args)
            if args.profile:
                wait_for(snapshot.exists, "the operator's tracemalloc snapshot", timeout=300)
            operator.stop()
            if args.profile:
                profile_report(snapshot)
            elif not args.no_restart:
                counts = {kind: sum(o["kind"] == kind for o in objects) for kind in PLURALS}
                for label, extra in (("default QPS limit", ()), ("no limit", ("--api-qps=0",))):
                    restarts.append(measure_restart(api, make_operator, label, extra, counts,
                                                    args.restart_timeout))
            if args.operator_log:
                args.operator_log.write_text(log_path.read_text(errors="replace"))
            progress("stopping everything")
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130
    report(args, objects, base, load, restarts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
