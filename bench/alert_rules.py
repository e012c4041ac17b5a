"""AlertRule evaluation benchmark: the operator against Prometheus' own rule evaluation.

One run starts, on loopback and in throw-away temp dirs:

- an in-process exporter with `--services` services x 3 series (http_requests_total as a counter,
  http_errors_ratio and latency_p95 as gauges, values moving every second);
- the Debian Prometheus scraping it every 5 s and LOADED WITH A RULE FILE holding the same
  `--rules` threshold rules as Prometheus alerting rules (one group at `--interval`): its
  `/api/v1/rules` reports the group's `evaluationTime` per evaluation, the baseline;
- the local control plane (LocalCluster), the manifests and CRDs installed as tests/e2e do
  (`kubectl apply --server-side -k hack/local-install`), the same rules as AlertRules
  (spec.prometheus.url = that Prometheus, interval = `--interval`, no channels), and the operator
  as a subprocess under its ServiceAccount (LocalOperator).

Rule i watches service i % S, metric (i // S) % 3 through expression shape i // (3 S) (raw value,
rate/increase/irate, *_over_time over 1m/5m/10m windows), so 1,000 rules over 50 services are
1,000 distinct queries (`--shared-queries`: only 3 S distinct queries, thresholds differ), and
a threshold from a short list per metric, so some rules pend and fire, most stay Normal.

The operator writes an AlertRule's status only when something lasting changes (state, instance
states and times, conditions, notifications, errors, observedGeneration) and as a heartbeat
once a period (5 minutes, longer for more rules than its write budget allows), each rule at its
own moment of the period, so heartbeats are spread evenly from the start and every window holds
its share of them; every evaluation shows in its /metrics instead. So evaluations are counted
from /metrics and status writes from a watch. The operator's /metrics is scraped at every
interval window's start and end; per rule, `runbook_alert_evaluations_total` and
`runbook_alert_last_evaluation_timestamp_seconds` (the tick's start, shared by every rule of
one tick). Measured, in the same run:

1. the operator's query phase: `runbook_alert_evaluation_seconds` sum/count deltas per interval
   window (scaled to all rules when a tick holds only the rules due then), against Prometheus'
   evaluationTime for the same rules;
2. evaluations per interval: the sum over rules of the `runbook_alert_evaluations_total`
   deltas per window; the gap between one rule's evaluations: per rule, (last-evaluation
   timestamp at the last window's end - at the first window's start) / its counter delta, an
   exact mean over the evaluations in between with no rounding to whole windows, its median
   (and max) over the rules;
3. the operator's batches (query + decide + status writes): `runbook_alert_batch_seconds`
   sum/count deltas per interval window, scaled to all rules like the query phase. A batch is
   one tick's threshold rules on one Prometheus server (or one anomaly rule); the loop does
   not wait for it, so the spacing of ticks says nothing about it any more. Beside it: the
   query phase (1.), the operator's CPU (4.), and `Evaluator.tick()` + `settle()` without
   kopf (6.);
4. status writes per interval from a watch on the AlertRules (MODIFIED events whose status
   changed), split into state changes, other lasting changes, heartbeats (only lastEvaluation,
   lastValue, evaluationDurationSeconds and instances' lastEvaluation/lastValue changed) and
   first writes; every watch event (each one a kopf handler call in the operator); the
   Prometheus /api/v1/query requests per interval (Prometheus' own counter: unions or one per
   query); the operator's CPU per interval (utime+stime from /proc/<pid>/stat) as % of one
   core (including what rendering the benchmark's scrapes of its /metrics cost it, shown
   apart), and what the API server, etcd, Prometheus and processes this benchmark did not
   start spent meanwhile;
5. time from operator start until every rule has a status.lastEvaluation (the first evaluation
   always writes status), and, after the windows, how long a spec change takes to be used:
   the threshold of 3 Normal rules is moved below their values, timed until the watch sees
   them leave Normal, and until status.observedGeneration claims the new generation (it should
   never claim it before the new threshold is used);
6. baselines without the operator: `PrometheusClient.instant_many` over the same queries (wall,
   CPU, Prometheus requests; experiments: the queries one by one through `client.instant`
   at concurrency 4 (the client's default) and 16, and all of them as one `or`-union tagged
   with label_replace), the operator's own `Evaluator.tick()` + `settle()` without kopf from
   the rules' current bodies (wall, CPU, RSS, the API requests it makes per round: the first
   round writes what changed since the operator stopped, later ones are steady ticks), and the raw
   Kubernetes client writing a minimal status merge patch to every rule (the cost floor of a
   status write). `--profile` adds where Evaluator.tick() spends its CPU.

It prints medians over the `--ticks` interval windows and ratios; it asserts nothing and exits 0.
The windows start once every rule has been evaluated, every rule Pending since then has left
Pending, and every rule has been evaluated once more after that (the operator's counters): the
start (every rule's first status write, then the wave of rules leaving Pending together after
their `for`) is reported on its own ("operator start -> every rule has lastEvaluation"), not as
steady state.
Everything it started is stopped, and every temp dir removed, also on Ctrl-C. About 4-5 minutes
with the defaults on 2 cores (longer when kopf is slow to see new rules or spec changes; the
waits are bounded at 15 and 10 minutes).

    python bench/alert_rules.py [--rules 1000] [--services 50] [--interval 15s] [--ticks 4]
        [--shared-queries] [--skip-experiments] [--profile] [--operator-workers N]
        [--operator-log FILE]
        [--save FILE] [--load FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import json
import math
import os
import random
import re
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
GROUP, VERSION, PLURAL, KIND = "runbook.dev", "v1alpha1", "alertrules", "AlertRule"
NAMESPACE = "bench-alerts"
OPERATOR_NAMESPACE, OPERATOR_ACCOUNT = "runbook-system", "runbook-operator"
SCRAPE_INTERVAL = "5s"
FOR = "1m"
CREATE_THREADS = 8
UNION_LABEL = "bench_query"
GOAL_TICK_RATIO = 2.0  # issue 15, at 5,000 rules (4.0 at 1,000 before)
GOAL_CPU_PERCENT = 5.0
GOAL_RSS_MIB = 150.0
#: A scrape of 5,000 rules' metrics took over 5 s on a machine loaded 9x over its cores.
SCRAPE_TIMEOUT = 60.0
FIRST_EVALUATION_TIMEOUT = 900.0
SPEC_CHANGE_TIMEOUT = 600.0
# How long `--restart` waits for each of the new operator's first two rounds.
RESTART_WATCH_SECONDS = 120.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
# What asyncio.to_thread (the operator's status writes) gets: the loop's default executor.
DEFAULT_EXECUTOR_THREADS = min(32, (os.cpu_count() or 1) + 4)

METRICS = ("http_requests_total", "http_errors_ratio", "latency_p95")
# Expression shapes per metric ({m} is the selector); rule i uses shape i // (3 * services).
SHAPES = {
    "http_requests_total": [
        "rate({m}[1m])", "rate({m}[5m])", "increase({m}[1m])", "increase({m}[5m])",
        "irate({m}[1m])", "rate({m}[2m])", "increase({m}[10m])", "rate({m}[10m])",
        "irate({m}[5m])", "increase({m}[2m])",
    ],
    "http_errors_ratio": [
        "{m}", "max_over_time({m}[1m])", "avg_over_time({m}[1m])", "max_over_time({m}[5m])",
        "avg_over_time({m}[5m])", "min_over_time({m}[5m])", "quantile_over_time(0.95, {m}[5m])",
        "avg_over_time({m}[10m])", "max_over_time({m}[10m])", "quantile_over_time(0.9, {m}[10m])",
    ],
}
SHAPES["latency_p95"] = SHAPES["http_errors_ratio"]
THRESHOLDS = {
    "http_requests_total": [400.0, 1000.0, 20000.0, 100000.0],
    "http_errors_ratio": [0.05, 0.1, 0.02, 0.2],
    "latency_p95": [1.0, 2.0, 1.5, 0.5],
}
SEVERITIES = ["high", "critical", "medium", "low"]


# -- the rules -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    index: int
    query: str
    threshold: float
    severity: str

    @property
    def name(self) -> str:
        return f"bench-{self.index:04d}"


def service(k: int) -> str:
    return f"svc-{k:03d}"


def make_rules(count: int, services: int, shared_queries: bool) -> list[Rule]:
    rules = []
    for i in range(count):
        metric = METRICS[(i // services) % len(METRICS)]
        variant = i // (services * len(METRICS))
        shapes = SHAPES[metric]
        shape = shapes[0] if shared_queries else shapes[variant % len(shapes)]
        selector = f'{metric}{{service="{service(i % services)}"}}'
        thresholds = THRESHOLDS[metric]
        level = variant % len(thresholds)
        rules.append(Rule(i, shape.format(m=selector), thresholds[level], SEVERITIES[level]))
    return rules


def rule_file(rules: list[Rule], interval: str) -> dict[str, Any]:
    """The same rules as one Prometheus alerting-rule group."""
    return {"groups": [{
        "name": "bench",
        "interval": interval,
        "rules": [
            {"alert": f"Bench{r.index:04d}", "expr": f"{r.query} > {r.threshold:g}", "for": FOR,
             "labels": {"severity": r.severity}}
            for r in rules
        ],
    }]}


def alert_rule(rule: Rule, prometheus_url: str, interval: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
        "metadata": {"name": rule.name, "namespace": NAMESPACE},
        "spec": {
            "query": rule.query,
            "condition": {"operator": "gt", "threshold": rule.threshold},
            "for": FOR, "interval": interval, "severity": rule.severity,
            "prometheus": {"url": prometheus_url},
        },
    }


def parse_seconds(text: str) -> float:
    from runbook_operator.api.common import parse_duration

    return parse_duration(text).total_seconds()


# -- the exporter's moving values ----------------------------------------------------------------


class Traffic:
    """Moves the exporter's series every second: request counters grow at a per-service rate,
    error ratios and latencies wobble; every 7th service has a high error ratio and latency grows
    with the service number, so a share of the rules pend and fire."""

    def __init__(self, exporter: Any, services: int) -> None:
        self.exporter = exporter
        self.services = services
        self.totals = [0.0] * services
        self.random = random.Random(4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def _step(self, seconds: float) -> None:
        for k in range(self.services):
            labels = {"service": service(k), "job": "bench", "instance": f"{service(k)}:80"}
            self.totals[k] += (50 + 10 * k) * seconds
            wobble = 1 + 0.1 * self.random.uniform(-1, 1)
            errors = (0.08 if k % 7 == 3 else 0.01) * wobble
            latency = (0.2 + 0.03 * k) * wobble
            self.exporter.set("http_requests_total", labels, self.totals[k])
            self.exporter.set("http_errors_ratio", labels, errors)
            self.exporter.set("latency_p95", labels, latency)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self._step(1.0)

    def start(self) -> None:
        self._step(0.0)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# -- CPU accounting -----------------------------------------------------------------------------


def process_cpu(pid: int) -> float:
    """utime + stime of one process, in seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return math.nan
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy() -> float:
    """CPU seconds the whole machine was busy (all cores, /proc/stat), since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / CLK_TCK


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


# -- Prometheus' own evaluations ------------------------------------------------------------------


class RuleGroupPoller:
    """Polls Prometheus' /api/v1/rules and keeps one (lastEvaluation, evaluationTime summed over
    the groups) per evaluation."""

    def __init__(self, url: str, period: float) -> None:
        self.url = url
        self.period = period
        self.evaluations: dict[str, tuple[float, float, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rules-poller", daemon=True)

    def _poll(self) -> None:
        data = httpx.get(f"{self.url}/api/v1/rules", timeout=10).json()["data"]
        groups = data["groups"]
        if not groups or any(g["lastEvaluation"].startswith("0001") for g in groups):
            return
        key = "|".join(sorted(g["lastEvaluation"] for g in groups))
        if key not in self.evaluations:
            total = sum(float(g["evaluationTime"]) for g in groups)
            self.evaluations[key] = (time.time(), total, sum(len(g["rules"]) for g in groups))

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self._poll()
            self._stop.wait(self.period)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def times(self, since: float = 0.0, until: float = math.inf) -> list[float]:
        return [s for seen, s, _ in self.evaluations.values() if since <= seen <= until]


# -- what the operator did: its /metrics -------------------------------------------------------

RULE_METRICS = {"runbook_alert_evaluations_total": "evaluations",
                "runbook_alert_last_evaluation_timestamp_seconds": "last_evaluation"}
RULE_SERIES = re.compile(r'^(\w+)\{([^}]*)\} (\S+)$')
RULE_LABELS = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass
class OperatorSample:
    """One scrape of the operator's /metrics: the query-phase and batch histograms and, per
    rule of the benchmark's namespace, its evaluation counter and last-evaluation timestamp."""

    at: float
    query_sum: float = 0.0
    query_count: float = 0.0
    batch_sum: float = 0.0
    batch_count: float = 0.0
    evaluations: dict[str, float] = field(default_factory=dict)
    last_evaluation: dict[str, float] = field(default_factory=dict)
    lines: int = 0
    seconds: float = 0.0  # how long the scrape took
    operator_cpu: float = math.nan  # the operator's CPU seconds meanwhile (rendering it)


def evaluated_again(before: dict[str, float], now: dict[str, float]) -> bool:
    """Whether every rule's evaluation counter has moved on from `before`."""
    return bool(before) and all(now.get(rule, 0.0) > count for rule, count in before.items())


def operator_sample(operator: Any) -> OperatorSample:
    started = time.perf_counter()
    text = httpx.get(f"http://127.0.0.1:{operator.metrics_port}/metrics",
                     timeout=SCRAPE_TIMEOUT).text
    sample = OperatorSample(time.time(), seconds=time.perf_counter() - started)
    for line in text.splitlines():
        sample.lines += 1
        if line.startswith("runbook_alert_evaluation_seconds_sum "):
            sample.query_sum = float(line.split()[1])
        elif line.startswith("runbook_alert_evaluation_seconds_count "):
            sample.query_count = float(line.split()[1])
        elif line.startswith("runbook_alert_batch_seconds_sum "):
            sample.batch_sum = float(line.split()[1])
        elif line.startswith("runbook_alert_batch_seconds_count "):
            sample.batch_count = float(line.split()[1])
        elif line.startswith(tuple(RULE_METRICS)):
            found = RULE_SERIES.match(line)
            if found is None or found.group(1) not in RULE_METRICS:
                continue
            labels = dict(RULE_LABELS.findall(found.group(2)))
            if labels.get("namespace") == NAMESPACE:
                into = getattr(sample, RULE_METRICS[found.group(1)])
                into[labels["rule"]] = float(found.group(3))
    return sample


def prometheus_queries(url: str) -> float:
    """Prometheus' own count of /api/v1/query requests it has answered (any status code)."""
    total = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if (line.startswith("prometheus_http_requests_total{")
                and 'handler="/api/v1/query"' in line):
            total += float(line.rsplit(None, 1)[1])
    return total


def rule_gaps(first: OperatorSample, last: OperatorSample) -> list[float]:
    """Per rule evaluated between the two scrapes: the mean seconds between its evaluations
    there, (newest evaluation's timestamp - the one before the first scrape) / evaluations."""
    gaps = []
    for rule, count in last.evaluations.items():
        before = first.evaluations.get(rule)
        if before is None or count <= before or rule not in first.last_evaluation:
            continue
        gaps.append((last.last_evaluation[rule] - first.last_evaluation[rule]) / (count - before))
    return gaps


# -- what the operator wrote: a watch on the AlertRules ------------------------------------------


WRITE_KINDS = ("state", "lasting", "heartbeat", "first")
# What the operator leaves out of its change test and refreshes only with the heartbeat
# (core/alertrule/status.py: _VOLATILE_STATUS, _VOLATILE_INSTANCE), as the API spells them.
VOLATILE_STATUS = ("lastEvaluation", "lastValue", "evaluationDurationSeconds")
VOLATILE_INSTANCE = ("lastEvaluation", "lastValue", "activeValue")


def lasting(status: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in status.items() if k not in VOLATILE_STATUS}
    kept["instances"] = [{k: v for k, v in i.items() if k not in VOLATILE_INSTANCE}
                         for i in status.get("instances") or []]
    return kept


def write_kind(old: dict[str, Any] | None, new: dict[str, Any]) -> str | None:
    """What a watch event changed in status: None (status unchanged, e.g. a spec change),
    "first" (no status before), "state", "lasting" (anything else the operator writes on
    change), or "heartbeat" (only the per-evaluation values)."""
    if old == new:
        return None
    if not old:
        return "first"
    if old.get("state") != new.get("state"):
        return "state"
    return "lasting" if lasting(old) != lasting(new) else "heartbeat"


def other_change(before: dict[str, Any], after: dict[str, Any]) -> str:
    """What a MODIFIED event that left status alone changed: spec, or which metadata."""
    if before.get("spec") != after.get("spec"):
        return "spec"
    ignored = {"resourceVersion", "managedFields", "generation"}
    old, new = before.get("metadata", {}), after.get("metadata", {})
    keys = sorted(k for k in old.keys() | new.keys()
                  if k not in ignored and old.get(k) != new.get(k))
    return f"metadata: {', '.join(keys)}" if keys else "nothing"


def api_client_files(kubeconfig: Path, into: Path) -> tuple[str, ssl.SSLContext]:
    """The API server URL and a TLS context (client certificate) from a kubeconfig."""
    config = yaml.safe_load(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    user = config["users"][0]["user"]
    for key, filename in (("client-certificate-data", "watch.crt"),
                          ("client-key-data", "watch.key")):
        path = into / filename
        path.touch(mode=0o600)
        path.write_bytes(base64.b64decode(user[key]))
    context = ssl.create_default_context(
        cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    context.load_cert_chain(str(into / "watch.crt"), str(into / "watch.key"))
    return cluster["server"], context


class RuleWatch:
    """A raw watch (httpx + json, cheap) on the AlertRules that records every event (kopf
    gets the same ones), each status write by kind, each rule's first status and its state
    transitions, and when each observedGeneration was first seen."""

    PATH = f"/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/{PLURAL}"

    def __init__(self, server: str, context: ssl.SSLContext) -> None:
        self.client = httpx.Client(base_url=server, verify=context,
                                   timeout=httpx.Timeout(60, read=None))
        # The watch starts at the listing's resourceVersion: no ADDED event per rule.
        listing = self.client.get(self.PATH).raise_for_status().json()
        self.resource_version = listing["metadata"]["resourceVersion"]
        self.lock = threading.Lock()
        self.events: list[float] = []  # arrival of every ADDED/MODIFIED/DELETED event
        self.writes: list[tuple[float, str]] = []  # (arrival, WRITE_KINDS) per status write
        self.first_seen: dict[str, float] = {}  # rule -> arrival of its first lastEvaluation
        self.states: dict[str, str] = {}
        self.state_since: dict[str, float] = {}  # rule -> arrival of its current state
        self.generation_seen: dict[tuple[str, int], float] = {}  # (rule, observedGeneration)
        self.changes: Counter[str] = Counter()  # every event by what it changed
        self._objects: dict[str, dict[str, Any]] = {
            o["metadata"]["name"]: o for o in listing.get("items", [])}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rule-watch", daemon=True)

    def _record(self, event: dict[str, Any], arrived: float) -> None:
        obj = event["object"]
        if event["type"] == "BOOKMARK":
            self.resource_version = obj["metadata"]["resourceVersion"]
            return
        if event["type"] == "ERROR":
            raise RuntimeError(f"watch error: {obj.get('message')}")
        self.resource_version = obj["metadata"]["resourceVersion"]
        name = obj["metadata"]["name"]
        status = obj.get("status") or {}
        with self.lock:
            self.events.append(arrived)
            before = self._objects.get(name)
            self._objects[name] = obj
            if event["type"] != "MODIFIED" or before is None:
                self.changes[event["type"]] += 1
                return
            if "observedGeneration" in status:
                self.generation_seen.setdefault((name, status["observedGeneration"]), arrived)
            kind = write_kind(before.get("status") or {}, status)
            self.changes[f"status: {kind}" if kind else other_change(before, obj)] += 1
            if kind is None:
                return
            self.writes.append((arrived, kind))
            if status.get("lastEvaluation"):
                self.first_seen.setdefault(name, arrived)
            state = status.get("state", "?")
            if self.states.get(name) != state:
                self.states[name] = state
                self.state_since[name] = arrived

    def pending_since(self, moment: float) -> int:
        """How many rules have been Pending since `moment` or before."""
        with self.lock:
            return sum(1 for name, state in self.states.items()
                       if state == "Pending" and self.state_since[name] <= moment)

    def _run(self) -> None:
        while not self._stop.is_set():
            params = {"watch": "1", "resourceVersion": self.resource_version,
                      "allowWatchBookmarks": "true", "timeoutSeconds": "1800"}
            try:
                with self.client.stream("GET", self.PATH, params=params) as response:
                    for line in response.iter_lines():
                        if line:
                            self._record(json.loads(line), time.time())
            except Exception:  # noqa: BLE001 - closed at stop, or a dropped connection
                if self._stop.wait(0.5):
                    return

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.client.close()
        self._thread.join(timeout=5)

    def evaluated(self) -> int:
        with self.lock:
            return len(self.first_seen)

    def writes_between(self, since: float, until: float) -> dict[str, int]:
        with self.lock:
            counts = dict.fromkeys(WRITE_KINDS, 0)
            for arrived, kind in self.writes:
                if since <= arrived < until:
                    counts[kind] += 1
            return counts

    def events_between(self, since: float, until: float) -> int:
        with self.lock:
            return sum(1 for e in self.events if since <= e < until)


# -- worker subprocesses (their CPU is theirs alone) ---------------------------------------------


def _worker_queries(args: dict[str, Any]) -> dict[str, Any]:
    """`PrometheusClient.instant_many` over the rules' queries (the operator's query path, as
    it is now), and experiments: the distinct queries one by one through `client.instant` at
    each of `concurrency`, and as `or`-unions of `union_chunks` queries. Per round: wall,
    process CPU, and Prometheus' own count of the /api/v1/query requests it answered."""
    from runbook_operator.integrations.prometheus import (
        Ok,
        PrometheusClient,
        QueryError,
    )

    distinct = list(dict.fromkeys(args["queries"]))

    def series_of(results: dict[str, Any]) -> tuple[int, int]:
        errors = sum(isinstance(r, QueryError) for r in results.values())
        return sum(len(r.samples) for r in results.values() if not isinstance(r, QueryError)), \
            errors

    async def timed(call: Callable[[], Any]) -> dict[str, Any]:
        """Rounds of `call` (the first one, warming the connections up, is not kept)."""
        rounds = []
        outcome: Any = None
        for _ in range(args["rounds"] + 1):
            requests = await asyncio.to_thread(prometheus_queries, args["url"])
            cpu, wall = time.process_time(), time.perf_counter()
            outcome = await call()
            rounds.append({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
                           "requests": await asyncio.to_thread(prometheus_queries, args["url"])
                           - requests})
        series, errors = series_of(outcome)
        return {"rounds": rounds[1:], "series": series, "errors": errors}

    async def instant_many() -> dict[str, Any]:
        async with PrometheusClient(args["url"]) as client:
            found = await timed(lambda: client.instant_many(args["queries"], datetime.now(UTC)))
            return {**found, "distinct": len(distinct), "concurrency": client.concurrency}

    async def one_by_one(concurrency: int) -> dict[str, Any]:
        async with PrometheusClient(args["url"], concurrency=concurrency) as client:
            async def each() -> dict[str, Any]:
                now = datetime.now(UTC)
                answers = await asyncio.gather(*(client.instant(q, now) for q in distinct))
                return dict(zip(distinct, answers, strict=True))

            return {**await timed(each), "concurrency": concurrency}

    async def unions(chunk: int) -> dict[str, Any]:
        """The distinct queries sent as unions of `chunk` queries, each operand tagged with its
        index by label_replace, and the answer split back per query."""
        parts = [distinct[i:i + chunk] for i in range(0, len(distinct), chunk)]
        texts = [" or ".join(f'label_replace({q}, "{UNION_LABEL}", "{i * chunk + j}", "", "")'
                             for j, q in enumerate(part)) for i, part in enumerate(parts)]
        async with PrometheusClient(args["url"]) as client:
            async def union() -> dict[str, Any]:
                now = datetime.now(UTC)
                answers = await asyncio.gather(*(client.instant(t, now) for t in texts))
                split: dict[str, Any] = {}
                for part, answer in zip(parts, answers, strict=True):
                    if isinstance(answer, QueryError):
                        split.update(dict.fromkeys(part, answer))
                        continue
                    samples: dict[str, list[Any]] = {q: [] for q in part}
                    for sample in answer.samples:
                        samples[distinct[int(sample.labels.pop(UNION_LABEL))]].append(sample)
                    split.update({q: Ok(s) for q, s in samples.items()})
                return split

            return {**await timed(union), "chunk": chunk, "unions": len(texts)}

    async def run() -> dict[str, Any]:
        default = await instant_many()
        return {**default,
                "one_by_one": [await one_by_one(c) for c in args["concurrency"]],
                "unions": [await unions(c) for c in args["union_chunks"]]}

    return asyncio.run(run())


def _worker_tick(args: dict[str, Any]) -> dict[str, Any]:
    """The operator's own `Evaluator.tick()` + `settle()` over every rule, without kopf, from
    the rules' current bodies (as the operator's cache would hold them): queries, decisions
    from the cached bodies, and a status write (one PATCH guarded by resourceVersion) only for
    the rules where something lasting changed; the bodies it wrote go back into its cache, as
    in the operator. Per round: wall, CPU, query phase, and the API requests it sent by method."""
    os.environ["KUBECONFIG"] = args["kubeconfig"]
    from prometheus_client import REGISTRY
    from runbook_operator.api.common import API_VERSION
    from runbook_operator.controllers.alertrule import Evaluator
    from runbook_operator.integrations.kubernetes import connect

    kube = connect()
    requests: Counter[str] = Counter()
    counting = threading.Lock()
    send = kube.client.request

    def counted(method: str, *a: Any, **kw: Any) -> Any:
        with counting:
            requests[method] += 1
        return send(method, *a, **kw)

    kube.client.request = counted  # type: ignore[method-assign]

    def query_seconds() -> float:
        return REGISTRY.get_sample_value("runbook_alert_evaluation_seconds_sum") or 0.0

    async def run() -> dict[str, Any]:
        evaluator = Evaluator(kube, None)
        scheduler = evaluator.scheduler
        for body in kube.list(API_VERSION, KIND, [args["namespace"]]):
            scheduler.upsert(body)
        rounds = []
        try:
            for _ in range(args["rounds"]):
                for key in scheduler.items:
                    scheduler.schedule(key, 0.0)
                requests.clear()
                cpu, wall, query = time.process_time(), time.perf_counter(), query_seconds()
                await scheduler.tick()
                await scheduler.settle()
                rounds.append({"wall": time.perf_counter() - wall,
                               "cpu": time.process_time() - cpu,
                               "query": query_seconds() - query,
                               "requests": dict(requests)})
            profile = await profiled(evaluator) if args.get("profile") else ""
        finally:
            for client in evaluator.clients.values():
                await client.close()
        return {"rounds": rounds, "rules": len(scheduler.items), "profile": profile,
                "rss": rss_mib(os.getpid())}

    async def profiled(evaluator: Evaluator) -> str:
        """One Evaluator.tick() over up to 200 rules with asyncio.to_thread and the status-write
        pool made inline (this is a throw-away process), so one cProfile sees the operator's
        whole path: queries, decisions, the status writes that are due. The timed rounds run
        them in threads, which cProfile misses."""
        import cProfile
        import io
        import pstats

        async def inline(func: Callable[..., Any], /, *a: Any, **kw: Any) -> Any:
            return func(*a, **kw)

        class Inline(Executor):
            """Runs what is submitted at once, in the caller's thread (the status writes)."""

            def submit(self, fn: Callable[..., Any], /, *a: Any, **kw: Any) -> Future[Any]:
                done: Future[Any] = Future()
                done.set_result(fn(*a, **kw))
                return done

        evaluator.writes = Inline()
        scheduler = evaluator.scheduler
        chosen = set(list(scheduler.items)[:200])
        for key in scheduler.items:
            scheduler.schedule(key, 0.0 if key in chosen else math.inf)
        original, asyncio.to_thread = asyncio.to_thread, inline  # type: ignore[assignment]
        profiler = cProfile.Profile(time.process_time)  # CPU, not waiting
        try:
            profiler.enable()
            await scheduler.tick()
            await scheduler.settle()
            profiler.disable()
        finally:
            asyncio.to_thread = original
        out = io.StringIO()
        out.write(f"Evaluator.tick() over {len(chosen)} rules, one thread, under cProfile "
                  "(process CPU time)\n")
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(45)
        return out.getvalue()

    return asyncio.run(run())


def _worker_patch(args: dict[str, Any]) -> dict[str, Any]:
    """The raw Kubernetes client writing a minimal status merge patch (lastEvaluation and
    evaluationDurationSeconds, no preceding GET) to every rule, with as many threads as the
    operator's default executor."""
    from kubernetes import client, config

    api = client.CustomObjectsApi(config.new_client_from_config(config_file=args["kubeconfig"]))

    def write(name: str) -> None:
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        api.patch_namespaced_custom_object_status(
            GROUP, VERSION, args["namespace"], PLURAL, name,
            {"status": {"lastEvaluation": now, "evaluationDurationSeconds": 0.1}})

    rounds = []
    with ThreadPoolExecutor(args["threads"]) as pool:
        for _ in range(args["rounds"]):
            cpu, wall = time.process_time(), time.perf_counter()
            list(pool.map(write, args["names"]))
            rounds.append({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu})
    return {"rounds": rounds}


WORKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "queries": _worker_queries, "tick": _worker_tick, "patch": _worker_patch,
}


def run_worker(kind: str, args: dict[str, Any], tmp: Path) -> dict[str, Any]:
    path = tmp / f"worker-{kind}.json"
    path.write_text(json.dumps(args))
    done = subprocess.run([sys.executable, __file__, "--worker", kind, str(path)],
                          capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker {kind} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the run ----------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def med(rounds: list[dict[str, float]], key: str) -> float:
    return median([r[key] for r in rounds])


@dataclass
class Window:
    start: float
    end: float
    query_sum: float
    query_count: float
    batch_sum: float
    batch_count: float
    evaluations: float  # sum over rules of runbook_alert_evaluations_total deltas
    rules_evaluated: int  # rules with at least one evaluation
    prometheus_queries: float  # /api/v1/query requests Prometheus answered meanwhile
    cpu: dict[str, float]  # CPU seconds by process (operator, apiserver, ..., this benchmark)
    machine_cpu: float
    writes: dict[str, int]  # status writes seen by the watch, by WRITE_KINDS
    events: int  # AlertRule watch events (each one a kopf handler call)

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def percent(self, cpu: float) -> float:
        return 100 * cpu / self.seconds

    @property
    def operator_cpu(self) -> float:
        return self.cpu["operator"]

    @property
    def other_load(self) -> float:
        """CPU seconds of processes this benchmark did not start (other work on the machine)."""
        return self.machine_cpu - sum(self.cpu.values())

    @property
    def status_writes(self) -> int:
        return sum(self.writes.values())


def log_problems(log_text: str) -> dict[str, int]:
    """WARNING/ERROR lines of the operator's log, counted by their first words."""
    problems: dict[str, int] = {}
    for line in log_text.splitlines():
        parts = line.split(None, 4)
        if len(parts) == 5 and parts[2] in ("WARNING", "ERROR", "CRITICAL"):
            key = f"{parts[2]} {parts[3]} {parts[4][:90]}"
            problems[key] = problems.get(key, 0) + 1
    return problems


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class SpecChange:
    """One rule's threshold moved below its value: when status.observedGeneration claimed the
    new generation, and when the new threshold actually took effect (state left Normal), both
    as the arrival of the watch event that showed it, seconds after the spec patch."""

    rule: str
    observed_generation: float = math.nan
    took_effect: float = math.nan


def change_specs(api: Any, watch: RuleWatch, count: int, timeout: float) -> list[SpecChange]:
    """Move the threshold of a few Normal rules below their value (a new generation) and time
    how long the operator takes to evaluate them with it."""
    from kubernetes import client

    custom = client.CustomObjectsApi(api)
    with watch.lock:
        names = sorted(n for n, state in watch.states.items() if state == "Normal")[:count]
    sent = {}
    for name in names:
        patched = custom.patch_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, name,
            {"spec": {"condition": {"operator": "gt", "threshold": -1e9}}})
        sent[name] = (patched["metadata"]["generation"], time.time())
    progress(f"moved the threshold of {len(names)} Normal rules below their values; waiting "
             f"until they leave Normal (up to {timeout:.0f} s)")
    changes = {name: SpecChange(name) for name in names}
    deadline = time.time() + timeout
    while time.time() < deadline:
        with watch.lock:
            for name, (generation, at) in sent.items():
                change = changes[name]
                seen = watch.generation_seen.get((name, generation))
                if seen is not None:
                    change.observed_generation = seen - at
                if math.isnan(change.took_effect) and watch.states.get(name) != "Normal":
                    change.took_effect = watch.state_since[name] - at
        if all(not math.isnan(c.took_effect) for c in changes.values()):
            break
        time.sleep(0.25)
    return list(changes.values())


def create_rules(api: Any, rules: list[Rule], url: str, interval: str) -> tuple[float, float]:
    """Create every AlertRule with the raw client (CREATE_THREADS threads): wall, CPU of this
    process."""
    from kubernetes import client

    custom = client.CustomObjectsApi(api)

    def create(rule: Rule) -> None:
        custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL,
                                               alert_rule(rule, url, interval))

    cpu, wall = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(CREATE_THREADS) as pool:
        list(pool.map(create, rules))
    return time.perf_counter() - wall, time.process_time() - cpu


@dataclass
class Results:
    args: argparse.Namespace
    rules: int
    distinct: int
    interval: float
    prom_eval: list[float] = field(default_factory=list)
    py_queries: dict[str, Any] = field(default_factory=dict)
    create: tuple[float, float] = (math.nan, math.nan)
    operator_healthy: float = math.nan
    first_full: float = math.nan
    evaluated_at_deadline: int = 0
    events_until_first_full: int = 0
    windows: list[Window] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)
    operator_rss: float = math.nan
    operator_log_bytes: int = 0
    events: int = 0
    event_changes: dict[str, int] = field(default_factory=dict)
    # The operator's heartbeat budget (writes a second; 0: none), as in files saved before it.
    heartbeat_writes: float = 0.0
    problems: dict[str, int] = field(default_factory=dict)
    operator_started: float = math.nan
    # The benchmark's scrapes of the operator's /metrics: lines, median seconds and median
    # operator CPU seconds (rendering; at the clock-tick resolution of /proc).
    metrics_scrape: tuple[int, float, float] = (0, math.nan, math.nan)
    revision: str = "?"
    spec_changes: list[SpecChange] = field(default_factory=list)
    tick_worker: dict[str, Any] = field(default_factory=dict)
    patch_worker: dict[str, Any] = field(default_factory=dict)
    # `--restart`: a new operator over the same rules: seconds until every rule was evaluated
    # by it, and the status writes by kind from its start until every rule was evaluated twice.
    restart_evaluated: float = math.nan
    restart_window: float = math.nan
    restart_writes: dict[str, int] = field(default_factory=dict)


def save(results: Results, path: Path) -> None:
    data = dataclasses.asdict(dataclasses.replace(results, args=None))
    data["args"] = vars(results.args)
    path.write_text(json.dumps(data, default=str))


def load(path: Path) -> Results:
    data = json.loads(path.read_text())
    windows = [Window(**w) for w in data.pop("windows")]
    changes = [SpecChange(**c) for c in data.pop("spec_changes")]
    return Results(args=argparse.Namespace(**data.pop("args")), windows=windows,
                   spec_changes=changes, **data)


def revision() -> str:
    """The commit the operator code comes from, marked when operator/ has local changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                              check=False).stdout.strip()

    dirty = git("status", "--porcelain", "--", "operator")
    return (git("rev-parse", "--short", "HEAD") or "?") + ("+changes" if dirty else "")


@dataclass
class Sample:
    """Everything read at one window boundary."""

    operator: OperatorSample
    cpu: dict[str, float]
    machine_cpu: float
    prometheus_queries: float

    @property
    def at(self) -> float:
        return self.operator.at


def restart(results: Results, kubeconfig: Path, tmp: Path, extra: tuple[str, ...],
            watch: RuleWatch) -> None:
    """A new operator over the rules the last one left (a restart, or a new leader): how long
    until it evaluated every rule, and which status writes it made until it had evaluated
    every rule twice (its first round, when a start's writes come, and one more)."""
    from runbook_operator.devcluster.local_operator import LocalOperator
    from runbook_operator.devcluster.waiting import wait_for

    operator = LocalOperator(kubeconfig, tmp / "restarted.log", resync_seconds=60,
                             extra_args=extra)

    def evaluated(times: int) -> bool:
        counts = operator_sample(operator).evaluations.values()
        return sum(1 for c in counts if c >= times) >= results.rules

    started = time.time()
    progress(f"restart: a new operator over the {results.rules} rules; counting its status "
             f"writes until it evaluated every rule twice (up to {RESTART_WATCH_SECONDS:.0f} s)")
    operator.start()
    try:
        for times in (1, 2):
            try:
                wait_for(lambda t=times: evaluated(t), f"every rule evaluated {times}x by the "
                         "new operator", timeout=RESTART_WATCH_SECONDS, interval=1.0)
            except AssertionError:
                progress(f"restart: not every rule was evaluated {times}x in time")
            if times == 1:
                results.restart_evaluated = time.time() - started
        results.restart_window = time.time() - started
        results.restart_writes = watch.writes_between(started, started + results.restart_window)
    finally:
        operator.stop()


def measure(args: argparse.Namespace, stack: contextlib.ExitStack) -> Results:
    from kubernetes import config
    from runbook_operator.devcluster.cluster import LocalCluster
    from runbook_operator.devcluster.local_operator import LocalOperator
    from runbook_operator.devcluster.waiting import wait_for
    from runbook_operator.devcluster.prometheus import MetricsExporter, PrometheusServer
    from runbook_operator.core.alertrule.status import HEARTBEAT_WRITES_PER_SECOND

    interval = parse_seconds(args.interval)
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-alerts-")))
    rules = make_rules(args.rules, args.services, args.shared_queries)
    queries = [r.query for r in rules]
    results = Results(args, len(rules), len(set(queries)), interval, revision=revision())

    exporter = stack.enter_context(MetricsExporter())
    traffic = Traffic(exporter, args.services)
    traffic.start()
    stack.callback(traffic.stop)
    rule_path = tmp / "rules.yml"
    rule_path.write_text(yaml.safe_dump(rule_file(rules, args.interval), sort_keys=False))
    prometheus = PrometheusServer([exporter.target], rule_files=[rule_path],
                                  scrape_interval=SCRAPE_INTERVAL,
                                  evaluation_interval=args.interval)
    stack.enter_context(prometheus)
    prometheus.wait_targets_up()
    poller = RuleGroupPoller(prometheus.url, max(1.0, interval / 3))
    poller.start()
    stack.callback(poller.stop)
    progress(f"Prometheus {prometheus.url}: {len(rules)} rules ({results.distinct} distinct "
             f"queries) over {args.services} services, evaluated every {args.interval}")

    cluster = stack.enter_context(LocalCluster())
    cluster.kubectl("apply", "--server-side", "-k", str(REPO / "hack" / "local-install"))
    cluster.wait_established("crd", "-l", "app.kubernetes.io/part-of=runbook-operator")
    cluster.kubectl("create", "namespace", NAMESPACE)
    kubeconfig = cluster.service_account_kubeconfig(
        OPERATOR_NAMESPACE, OPERATOR_ACCOUNT, tmp / "operator.kubeconfig")
    progress(f"control plane {cluster.server} up, manifests and CRDs installed")

    progress(f"baseline: PrometheusClient.instant_many over {len(queries)} queries, "
             f"{args.ticks} rounds")
    experiments = not args.skip_experiments
    results.py_queries = run_worker(
        "queries", {"url": prometheus.url, "queries": queries, "rounds": args.ticks,
                    "concurrency": [4, 16] if experiments else [],
                    "union_chunks": [len(queries)] if experiments else []}, tmp)

    api = config.new_client_from_config(config_file=str(cluster.admin_kubeconfig))
    stack.callback(api.close)
    results.create = create_rules(api, rules, prometheus.url, args.interval)
    progress(f"created {len(rules)} AlertRules in {results.create[0]:.1f} s "
             f"({CREATE_THREADS} threads)")
    server, context = api_client_files(cluster.admin_kubeconfig, tmp)
    watch = RuleWatch(server, context)
    watch.start()
    stack.callback(watch.stop)

    extra = (f"--workers={args.operator_workers}",) if args.operator_workers else ()
    results.heartbeat_writes = HEARTBEAT_WRITES_PER_SECOND
    if args.operator_heartbeat_writes is not None:
        extra += (f"--alert-heartbeat-writes={args.operator_heartbeat_writes:g}",)
        results.heartbeat_writes = args.operator_heartbeat_writes
    operator = LocalOperator(kubeconfig, tmp / "operator.log", resync_seconds=60,
                             extra_args=extra)
    stack.callback(operator.stop)
    started = results.operator_started = time.time()
    operator.start()
    assert operator.process is not None
    pid = operator.process.pid
    results.operator_healthy = time.time() - started
    progress(f"operator pid {pid} healthy after {results.operator_healthy:.1f} s; waiting for "
             f"every rule's first evaluation")
    try:
        wait_for(lambda: watch.evaluated() >= len(rules), "every rule evaluated once",
                 timeout=FIRST_EVALUATION_TIMEOUT, interval=0.5)
        results.first_full = max(watch.first_seen.values()) - started
        results.events_until_first_full = watch.events_between(0, max(watch.first_seen.values())
                                                               + 1e-3)
    except AssertionError:
        pass
    results.evaluated_at_deadline = watch.evaluated()
    first_round = time.time()
    progress(f"{results.evaluated_at_deadline}/{len(rules)} rules evaluated "
             f"{results.first_full:.1f} s after operator start; waiting until the rules Pending "
             f"since then have left Pending")
    # The rules whose condition held at their first evaluation leave Pending together after
    # their `for`, a wave of status writes that happens once, at start: not steady state.
    try:
        wait_for(lambda: watch.pending_since(first_round) == 0,
                 "every rule Pending since the first round has left Pending",
                 timeout=parse_seconds(FOR) + 4 * interval, interval=1.0)
    except AssertionError:
        progress(f"{watch.pending_since(first_round)} rules still Pending since the first "
                 f"round; measuring anyway")
    # Then one whole round of every rule after the wave, read from the operator's counters,
    # so the first window is already steady.
    settled = operator_sample(operator).evaluations
    try:
        wait_for(lambda: evaluated_again(settled, operator_sample(operator).evaluations),
                 "every rule evaluated again after the wave",
                 timeout=2 * interval + 30, interval=1.0)
    except AssertionError:
        progress("not every rule was evaluated again after the wave; measuring anyway")
    processes = {"operator": pid, "bench": os.getpid(),
                 "prometheus": prometheus.process.popen.pid,  # type: ignore[union-attr]
                 **{name.removeprefix("kube-"): p for name, p in cluster.pids.items()}}
    scrapes: list[OperatorSample] = []

    def scrape() -> OperatorSample:
        cpu = process_cpu(pid)
        found = operator_sample(operator)
        found.operator_cpu = process_cpu(pid) - cpu
        scrapes.append(found)
        return found

    def sample() -> Sample:
        return Sample(scrape(), {name: process_cpu(p) for name, p in processes.items()},
                      machine_busy(), prometheus_queries(prometheus.url))

    first = previous = sample()
    for n in range(args.ticks):
        time.sleep(max(0.0, previous.at + interval - time.time()))
        current = sample()
        o0, o1 = previous.operator, current.operator
        t0, t1 = o0.at, o1.at
        deltas = [c - o0.evaluations.get(rule, 0.0) for rule, c in o1.evaluations.items()]
        window = Window(t0, t1, o1.query_sum - o0.query_sum, o1.query_count - o0.query_count,
                        o1.batch_sum - o0.batch_sum, o1.batch_count - o0.batch_count,
                        sum(deltas), sum(1 for d in deltas if d > 0),
                        current.prometheus_queries - previous.prometheus_queries,
                        {k: current.cpu[k] - previous.cpu[k] for k in previous.cpu},
                        current.machine_cpu - previous.machine_cpu,
                        watch.writes_between(t0, t1), watch.events_between(t0, t1))
        results.windows.append(window)
        progress(f"window {n + 1}/{args.ticks}: {window.evaluations:.0f} evaluations, query "
                 f"phase {window.query_sum:.2f} s, whole {window.batch_sum:.2f} s in "
                 f"{window.batch_count:.0f} batch(es), "
                 f"{window.status_writes} status writes, operator CPU "
                 f"{window.percent(window.operator_cpu):.1f}% of a core")
        previous = current
    results.gaps = rule_gaps(first.operator, previous.operator)
    results.metrics_scrape = (scrapes[-1].lines, median([s.seconds for s in scrapes]),
                              median([s.operator_cpu for s in scrapes]))
    results.prom_eval = poller.times(first.at - interval, previous.at + interval)
    if len(results.prom_eval) < 2:
        results.prom_eval = poller.times()[1:] or poller.times()
    with watch.lock:
        for state in watch.states.values():
            results.states[state] = results.states.get(state, 0) + 1
    results.operator_rss = rss_mib(pid)
    results.spec_changes = change_specs(api, watch, 3, timeout=SPEC_CHANGE_TIMEOUT)
    operator.stop()
    log_text = operator.log_text()
    results.operator_log_bytes = len(log_text.encode())
    results.events = len(watch.events)
    results.event_changes = dict(watch.changes)
    results.problems = log_problems(log_text)
    if args.operator_log:
        Path(args.operator_log).write_text(operator.log_text())
    if args.restart:
        restart(results, kubeconfig, tmp, extra, watch)

    rounds = max(1, min(args.ticks, 3))
    progress(f"baseline: Evaluator.tick() + settle() without kopf over every rule, "
             f"{rounds} rounds")
    results.tick_worker = run_worker(
        "tick", {"kubeconfig": str(kubeconfig), "namespace": NAMESPACE, "rounds": rounds,
                 "profile": args.profile}, tmp)
    progress(f"baseline: raw client status merge patch of every rule, {rounds} rounds")
    results.patch_worker = run_worker(
        "patch", {"kubeconfig": str(kubeconfig), "namespace": NAMESPACE, "rounds": rounds,
                  "names": [r.name for r in rules], "threads": DEFAULT_EXECUTOR_THREADS}, tmp)
    return results


# -- the report --------------------------------------------------------------------------------


def fmt(value: float, unit: str = "s", digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f} {unit}".rstrip()


def ratio(a: float, b: float, goal: str = "") -> str:
    if not b or math.isnan(a) or math.isnan(b):
        return "n/a"
    return f"{a / b:.2f}x" + (f" ({goal})" if goal else "")


def seconds_list(values: list[float]) -> str:
    """'9 / 6 / >600 s'-style: each value, or '>' the timeout when it never happened."""
    if not values:
        return "n/a"
    return " / ".join(f">{SPEC_CHANGE_TIMEOUT:.0f}" if math.isnan(v) else f"{v:.0f}"
                      for v in values) + " s"


def worst(values: list[float]) -> float:
    if not values:
        return math.nan
    return SPEC_CHANGE_TIMEOUT if any(math.isnan(v) for v in values) else max(values, default=0)


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    headers = ("figure", "value", "baseline", "ratio")
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(4)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def requests_text(requests: dict[str, int]) -> str:
    return ", ".join(f"{method} {count}" for method, count in sorted(requests.items())) or "none"


def report(r: Results) -> None:
    from runbook_operator.core.alertrule.status import heartbeat_period

    n, interval, windows = r.rules, r.interval, r.windows
    prom = median(r.prom_eval)
    batches = sum(w.batch_count for w in windows)
    query_each = median([w.query_sum / w.query_count for w in windows if w.query_count])
    batch_each = median([w.batch_sum / w.batch_count for w in windows if w.batch_count])
    rules_per_batch = sum(w.evaluations for w in windows) / batches if batches else math.nan
    batches_per_window = median([w.batch_count for w in windows])
    evaluations = median([w.evaluations for w in windows])
    # Per interval, scaled to all n rules: a batch holds only the rules due in its tick (often
    # a share of them); batches that overlap each count in full.
    query_all = median([w.query_sum * n / w.evaluations for w in windows if w.evaluations])
    batch_all = median([w.batch_sum * n / w.evaluations for w in windows if w.evaluations])
    scrape_pct = 100 * r.metrics_scrape[2] / interval
    op_cpu_pct = median([w.percent(w.operator_cpu) for w in windows])
    op_cpu_mean = 100 * sum(w.operator_cpu for w in windows) / sum(w.seconds for w in windows)
    op_cpu_per_eval = (sum(w.operator_cpu for w in windows)
                       / max(1.0, sum(w.evaluations for w in windows)))
    projected = 100 * op_cpu_per_eval * n / interval
    writes = median([float(w.status_writes) for w in windows])
    kinds = {k: sum(w.writes.get(k, 0) for w in windows) for k in WRITE_KINDS}
    # Each rule beats once a period, at its own moment of it: evenly spread from the start.
    beat = heartbeat_period(n, r.heartbeat_writes).total_seconds()
    steady_beats = n * interval / beat
    events = median([float(w.events) for w in windows])
    prom_requests = median([w.prometheus_queries for w in windows])
    took_effect = [c.took_effect for c in r.spec_changes]
    claimed = [c.observed_generation for c in r.spec_changes]
    early = sum(1 for c in r.spec_changes if not math.isnan(c.observed_generation) and (
        math.isnan(c.took_effect) or c.observed_generation < c.took_effect))
    py = r.py_queries.get("rounds", [])
    py_wall, py_cpu, py_requests = med(py, "wall"), med(py, "cpu"), med(py, "requests")
    tw = r.tick_worker.get("rounds", [])
    steady = tw[1:] or tw
    nk_wall, nk_query = med(tw, "wall"), med(tw, "query")
    nk_cpu = med(steady, "cpu")
    first_requests = requests_text(tw[0]["requests"]) if tw else "n/a"
    later_requests = (" | ".join(requests_text(t["requests"]) for t in tw[1:])
                      if len(tw) > 1 else "n/a")
    pw = r.patch_worker.get("rounds", [])
    patch_wall, patch_cpu = med(pw, "wall"), med(pw, "cpu")
    goal_ratio = f"goal <= {GOAL_TICK_RATIO:g}x"
    ms = 1000.0
    every = f"interval {fmt(interval, 's', 0)}"

    def pct(name: str) -> float:
        return median([w.percent(w.cpu.get(name, math.nan)) for w in windows])

    rows = [
        ("Prometheus evaluationTime of the rule group", fmt(prom), f"{n} rules", ""),
        (f"operator query phase for all {n} rules (histogram)", fmt(query_all),
         f"Prometheus {fmt(prom)}", ratio(query_all, prom, goal_ratio)),
        (f"operator batches for all {n} rules: query+decide+write", fmt(batch_all),
         f"Prometheus {fmt(prom)}", ratio(batch_all, prom, goal_ratio)),
        ("  batches per interval / rules per batch",
         f"{batches_per_window:g} / {rules_per_batch:.0f}", "", ""),
        ("  one batch: query phase / whole (histograms)",
         f"{fmt(query_each)} / {fmt(batch_each)}", f"tick()+settle() {fmt(nk_wall)}",
         ratio(batch_each, nk_wall)),
        (f"operator CPU, % of one core at {r.args.interval}", fmt(op_cpu_pct, "%", 1),
         f"goal {GOAL_CPU_PERCENT:g}%", ratio(op_cpu_pct, GOAL_CPU_PERCENT)),
        (f"  mean over the windows (heartbeats every {beat / 60:.0f} min)",
         fmt(op_cpu_mean, "%", 1),
         f"goal {GOAL_CPU_PERCENT:g}%", ratio(op_cpu_mean, GOAL_CPU_PERCENT)),
        ("  of which rendering this benchmark's /metrics scrapes", fmt(scrape_pct, "%", 1),
         f"{fmt(ms * r.metrics_scrape[2], 'ms', 0)} x 1 per interval", ""),
        ("  same if all rules were evaluated every interval", fmt(projected, "%", 1),
         f"goal {GOAL_CPU_PERCENT:g}%", ratio(projected, GOAL_CPU_PERCENT)),
        ("rule evaluations per interval (counter)", f"{evaluations:.0f}", f"{n} rules",
         ratio(evaluations, n)),
        ("gap between one rule's evaluations: median (max)",
         f"{fmt(median(r.gaps), 's', 1)} ({fmt(max(r.gaps, default=math.nan), 's', 1)})",
         every, ratio(median(r.gaps), interval)),
        ("status writes per interval (watch)", f"{writes:.0f}",
         f"{evaluations:.0f} evaluations", ratio(writes, evaluations)),
        (f"  state / other lasting / heartbeat / first, {len(windows)} windows",
         " / ".join(str(kinds[k]) for k in WRITE_KINDS),
         f"heartbeats: {steady_beats:.1f} per interval expected",
         ratio(kinds["heartbeat"] / len(windows), steady_beats)),
        ("AlertRule watch events per interval (kopf handler calls)", f"{events:.0f}",
         f"{writes:.0f} status writes", ratio(events, writes)),
        ("Prometheus query requests per interval (operator)", f"{prom_requests:.0f}",
         f"{evaluations:.0f} evaluations", ratio(prom_requests, evaluations)),
        ("operator start -> every rule has lastEvaluation", fmt(r.first_full, "s", 0),
         every, ratio(r.first_full, interval)),
        ("spec change -> evaluated with the new threshold", seconds_list(took_effect),
         every, ratio(worst(took_effect), interval)),
        ("  -> status.observedGeneration says so", seconds_list(claimed),
         f"claimed before used: {early}/{len(r.spec_changes)}", ""),
        (f"instant_many, {r.py_queries.get('distinct', '?')} queries: wall", fmt(py_wall),
         f"Prometheus {fmt(prom)}", ratio(py_wall, prom, goal_ratio)),
        ("  CPU; Prometheus requests; series (errors)", (
            f"{fmt(py_cpu)}; {py_requests:.0f}; {r.py_queries.get('series', '?')} "
            f"({r.py_queries.get('errors', '?')})"), "", ""),
    ]
    if r.restart_writes:
        beats = r.restart_writes.get("heartbeat", 0)
        expected = n * r.restart_window / beat
        rows += [
            ("restart: new operator -> every rule evaluated", fmt(r.restart_evaluated), every,
             ratio(r.restart_evaluated, interval)),
            (f"  its status writes in its first {r.restart_window:.0f} s (two rounds): state / "
             "other lasting / heartbeat / first",
             " / ".join(str(r.restart_writes.get(k, 0)) for k in WRITE_KINDS),
             f"heartbeats: {expected:.0f} expected", ratio(beats, expected)),
        ]
    for experiment in r.py_queries.get("one_by_one", []):
        wall = med(experiment["rounds"], "wall")
        rows.append((f"  experiment: one by one, concurrency {experiment['concurrency']}: wall",
                     fmt(wall), f"instant_many {fmt(py_wall)}", ratio(wall, py_wall)))
        cpu = med(experiment["rounds"], "cpu")
        rows.append(("    CPU; series (errors)",
                     f"{fmt(cpu)}; {experiment['series']} ({experiment['errors']})",
                     f"instant_many {fmt(py_cpu)}", ratio(cpu, py_cpu)))
    for union in r.py_queries.get("unions", []):
        wall = med(union["rounds"], "wall")
        rows.append((f"  experiment: {union['unions']} union(s) of {union['chunk']}: wall",
                     fmt(wall), f"instant_many {fmt(py_wall)}", ratio(wall, py_wall)))
    rows += [
        ("Evaluator.tick()+settle() without kopf, all rules: wall", fmt(nk_wall),
         f"Prometheus {fmt(prom)}", ratio(nk_wall, prom, goal_ratio)),
        ("  of which query phase", fmt(nk_query), f"instant_many {fmt(py_wall)}",
         ratio(nk_query, py_wall)),
        ("  API requests: first round / later rounds", f"{first_requests} / {later_requests}",
         f"{n} rules", ""),
        ("operator CPU per rule evaluation", fmt(ms * op_cpu_per_eval, "ms", 2),
         f"Evaluator.tick() {fmt(ms * nk_cpu / n, 'ms', 2)}", ratio(op_cpu_per_eval, nk_cpu / n)),
        ("Evaluator.tick() CPU per rule, later rounds", fmt(ms * nk_cpu / n, "ms", 2),
         f"raw patch {fmt(ms * patch_cpu / n, 'ms', 2)}", ratio(nk_cpu, patch_cpu)),
        (f"raw client status patch x{n}, {DEFAULT_EXECUTOR_THREADS} threads: wall",
         fmt(patch_wall), every, ratio(patch_wall, interval)),
        (f"create {n} AlertRules, {CREATE_THREADS} threads", fmt(r.create[0]),
         f"{fmt(ms * r.create[0] / n, 'ms', 1)} per CR", ""),
        ("operator start -> /healthz", fmt(r.operator_healthy), "", ""),
        ("operator RSS at the end", fmt(r.operator_rss, "MiB", 0),
         f"goal {GOAL_RSS_MIB:g} MiB; Evaluator.tick() process "
         f"{fmt(r.tick_worker.get('rss', math.nan), 'MiB', 0)}",
         ratio(r.operator_rss, GOAL_RSS_MIB)),
        ("CPU % of a core: apiserver / etcd / Prometheus",
         f"{pct('apiserver'):.0f} / {pct('etcd'):.0f} / {pct('prometheus'):.0f} %", "", ""),
        ("CPU % of a core: this benchmark process", fmt(pct("bench"), "%", 0), "", ""),
        ("CPU % of a core: processes not started here",
         fmt(median([w.percent(w.other_load) for w in windows]), "%", 0),
         f"{os.cpu_count()} cores", ""),
    ]
    print()
    workers = f" --workers={r.args.operator_workers}" if r.args.operator_workers else ""
    since = (f"{windows[0].start - r.operator_started:.0f}-"
             f"{windows[-1].end - r.operator_started:.0f} s after operator start"
             if windows else "")
    print(f"AlertRule evaluation: {n} rules ({r.distinct} distinct queries) over "
          f"{r.args.services} services at {r.args.interval}, {os.cpu_count()} CPUs, operator "
          f"{r.revision}{workers}"
          f"; medians over {len(windows)} interval windows {since} ({batches:.0f} operator "
          f"batches, {len(r.prom_eval)} Prometheus evaluations)")
    print_table(rows)
    print()
    print("per window: evaluations (rules) | query s (batches) | whole batches s (batches) | "
          "Prometheus requests | status writes state/lasting/heartbeat/first | watch events | "
          "CPU % operator apiserver etcd prometheus other-load")
    for i, w in enumerate(windows, 1):
        print(f"  {i}: {w.evaluations:.0f} ({w.rules_evaluated}) | {w.query_sum:.2f} "
              f"({w.query_count:.0f}) | {w.batch_sum:.2f} ({w.batch_count:.0f}) | "
              f"{w.prometheus_queries:.0f} | "
              f"{'/'.join(str(w.writes.get(k, 0)) for k in WRITE_KINDS)} | {w.events} | "
              f"{w.percent(w.operator_cpu):.1f} {w.percent(w.cpu['apiserver']):.0f} "
              f"{w.percent(w.cpu['etcd']):.0f} {w.percent(w.cpu['prometheus']):.0f} "
              f"{w.percent(w.other_load):.0f}")
    print(f"Prometheus evaluationTime samples (s): "
          f"{', '.join(f'{s:.3f}' for s in r.prom_eval) or 'none'}")
    print(f"rule states at the end: {dict(sorted(r.states.items()))}; operator log "
          f"{r.operator_log_bytes / 1024:.0f} KiB; operator /metrics scraped "
          f"{len(windows) + 1} times, {r.metrics_scrape[0]} lines, "
          f"{fmt(ms * r.metrics_scrape[1], 'ms', 0)} each")
    print(f"AlertRule watch events (= kopf handler calls) until every rule was evaluated once: "
          f"{r.events_until_first_full}, in all {r.events}: "
          + ", ".join(f"{k} {v}" for k, v in sorted(r.event_changes.items(), key=lambda c: -c[1])))
    for problem, count in sorted(r.problems.items(), key=lambda p: -p[1])[:6]:
        print(f"operator log: {count} x {problem}")
    if r.evaluated_at_deadline < n:
        print(f"only {r.evaluated_at_deadline}/{n} rules were evaluated within "
              f"{FIRST_EVALUATION_TIMEOUT:.0f} s of operator start")
    print(f"goals: query phase / Prometheus {ratio(query_all, prom)}, whole batches / "
          f"Prometheus {ratio(batch_all, prom)} (<= {GOAL_TICK_RATIO:g}x); operator CPU "
          f"{fmt(op_cpu_pct, '%', 1)} of a core in the median window, "
          f"{fmt(op_cpu_mean, '%', 1)} over all of them (<= {GOAL_CPU_PERCENT:g}%); RSS "
          f"{fmt(r.operator_rss, 'MiB', 0)} (<= {GOAL_RSS_MIB:g} MiB). Nothing is asserted.")
    if r.tick_worker.get("profile"):
        print()
        print(r.tick_worker["profile"])


class StopOnSignals:
    """The first Ctrl-C/SIGTERM/SIGHUP unwinds (stopping everything); later ones must not
    interrupt that clean-up half-way."""

    def __init__(self) -> None:
        self.stopping = False

    def arm(self) -> StopOnSignals:
        # Explicitly, also for SIGINT: a shell starting us in the background may have ignored it.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._interrupted)
        return self

    def _interrupted(self, signum: int, _frame: object) -> None:
        if self.stopping:
            print("already stopping everything this benchmark started", file=sys.stderr)
            return
        self.stopping = True
        raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--interval", default="15s", help="rule interval (Go duration)")
    parser.add_argument("--ticks", type=int, default=4, help="interval windows measured")
    parser.add_argument("--shared-queries", action="store_true",
                        help="rules share 3 x services queries (only thresholds differ)")
    parser.add_argument("--operator-heartbeat-writes", type=float,
                        help="pass --alert-heartbeat-writes X to the operator; 0 gives every "
                             "rule a 5-minute heartbeat, to compare the CPU of its writes "
                             "(default: the operator's own budget)")
    parser.add_argument("--restart", action="store_true",
                        help="after the windows, start a new operator over the same rules and "
                             "count its status writes until it evaluated every rule twice")
    parser.add_argument("--operator-workers", type=int,
                        help="experiment: pass --workers N (kopf's handler threads) to the "
                             "operator (default: its own)")
    parser.add_argument("--skip-experiments", action="store_true",
                        help="no one-by-one and single-union query experiments (minutes at "
                        "5,000 rules)")
    parser.add_argument("--profile", action="store_true",
                        help="print where Evaluator.tick() spends CPU (cProfile, 200 rules)")
    parser.add_argument("--operator-log", help="copy the operator's log to this file")
    parser.add_argument("--save", type=Path, help="also write the measurements as JSON")
    parser.add_argument("--load", type=Path, help="print the report of a --save file, no run")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, path = args.worker
        print(json.dumps(WORKERS[kind](json.loads(Path(path).read_text()))), flush=True)
        return 0

    if args.load:
        report(load(args.load))
        return 0

    from runbook_operator.devcluster import network
    from runbook_operator.devcluster.cluster import build_scripts

    network.enter(prepare=build_scripts())  # before any thread: the cluster lives inside
    signals = StopOnSignals().arm()
    try:
        with contextlib.ExitStack() as stack:
            results = measure(args, stack)
            signals.stopping = True
            progress("stopping everything")
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130
    report(results)
    if args.save:
        save(results, args.save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
