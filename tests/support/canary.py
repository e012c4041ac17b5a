"""The e2e tests' side of a CanaryRollout: the example (examples/canaryrollout.yaml) in a
test's namespace — the user's Deployment and HTTPRoute applied as a GitOps tool would
(`kubectl apply --server-side`, the Deployment without replicas, the route without rules) —,
versions of the demo app rolled out by changing the Deployment's template, and a recorder
that watches the CanaryRollout and cuts the live traffic into one tally per confirmed weight."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, watch

from runbook_operator.api.common import GROUP, VERSION
from runbook_operator.demoapp import traffic
from runbook_operator.devcluster import discovery
from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.prometheus import PrometheusServer
from runbook_operator.devcluster.waiting import wait_for
from tests.support import demo_app
from tests.support.kube import kind

ROLLOUTS = kind("CanaryRollout")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "canaryrollout.yaml"
NAME = "checkout"
#: An image the runtime does not run: kwok fakes its pods (ready, never answering), for
#: rollouts that need no traffic.
FAKED_IMAGE = "registry.invalid/checkout:1"
#: After a weight is written, how long the gateway may still answer with the previous one
#: (Traefik applies configuration at most every 2 s): left out of that weight's tally.
GATEWAY_SETTLE_SECONDS = 3.0


@contextmanager
def gateway_prometheus(cluster: LocalCluster, directory: Path) -> Iterator[PrometheusServer]:
    """A Prometheus scraping what the cluster's pods and the gateway publish."""
    server = discovery.discovering_prometheus(cluster, directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def example(kind_: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
    return copy.deepcopy(next(d for d in docs if d["kind"] == kind_))


def target(version: str, error_rate: float = 0.0, image: str | None = None) -> dict[str, Any]:
    """The example Deployment running `version` of the demo app."""
    body = example("Deployment")
    template = body["spec"]["template"]
    template["metadata"]["labels"]["app.kubernetes.io/version"] = version
    container = template["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    env["VERSION"]["value"] = version
    env["ERROR_RATE"]["value"] = str(error_rate)
    if image is not None:
        container["image"] = image
    return body


def route(namespace: str) -> dict[str, Any]:
    """The example HTTPRoute, answering only the test's host name."""
    body = example("HTTPRoute")
    body["spec"]["hostnames"] = [demo_app.host(namespace)["Host"]]
    return body


def apply_as_user(cluster: LocalCluster, namespace: str, *objects: dict[str, Any]) -> None:
    """What a GitOps tool does: server-side apply under its own field manager."""
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
    cluster.kubectl("apply", "--server-side", "--field-manager=gitops", "-n", namespace,
                    "-f", "-", input=body)


def diff_as_user(cluster: LocalCluster, namespace: str, *objects: dict[str, Any]) -> str:
    """`kubectl diff --server-side` of the user's objects: empty when applying them again
    would change nothing."""
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
    result = cluster.kubectl("diff", "--server-side", "--field-manager=gitops", "-n",
                             namespace, "-f", "-", input=body, check=False)
    assert result.returncode in (0, 1), result.stderr
    return result.stdout


def deploy_app(cluster: LocalCluster, namespace: str, version: str = "v1",
               image: str | None = None) -> dict[str, Any]:
    """The Gateway, the user's Deployment and HTTPRoute; the Deployment's first version
    rolled out. Returns the Deployment as applied."""
    demo_app.apply(cluster, namespace, demo_app.example_objects("gateway.yaml"))
    deployment = target(version, image=image)
    apply_as_user(cluster, namespace, deployment, route(namespace))
    cluster.kubectl("rollout", "status", "-n", namespace, f"deployment/{NAME}",
                    "--timeout=180s", timeout=200)
    return deployment


def rollout(prometheus_url: str, **spec: Any) -> dict[str, Any]:
    """The example CanaryRollout asking `prometheus_url`, without the example's channels,
    with `spec`'s fields replaced (`analysis` merged into the example's)."""
    body = example("CanaryRollout")
    body["spec"].pop("notifications")
    analysis = {**body["spec"]["analysis"], **spec.pop("analysis", {})}
    analysis["prometheus"] = {"url": prometheus_url}
    body["spec"].update(spec, analysis=analysis)
    return body


#: A check that always passes: rollouts whose analysis is not what a test is about.
PASSING = [{"name": "always", "query": "vector(1)", "thresholdRange": {"min": 0}}]


def quick(prometheus_url: str, interval: str = "3s", **spec: Any) -> dict[str, Any]:
    """The example CanaryRollout with a passing check every `interval` and no request
    guard: for kwok-faked pods that serve no traffic."""
    analysis = {"interval": interval, "minimumRequests": 0, "metrics": PASSING,
                **spec.pop("analysis", {})}
    return rollout(prometheus_url, analysis=analysis, **spec)


def plugin(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    """`kubectl runbook ARGS` as the cluster's admin."""
    return subprocess.run([sys.executable, "-m", "runbook_operator.cli.plugin", *args],
                          env=cluster.env(), capture_output=True, text=True, timeout=300,
                          check=False)


def create(api: client.ApiClient, namespace: str, body: dict[str, Any]) -> None:
    ROLLOUTS.create(api, namespace, body)


def status(api: client.ApiClient, namespace: str, name: str = NAME) -> dict[str, Any]:
    return ROLLOUTS.status(api, namespace, name)


def wait_phase(api: client.ApiClient, namespace: str, *phases: str, timeout: float = 180,
               name: str = NAME, done: Callable[[dict[str, Any]], bool] = lambda _: True
               ) -> dict[str, Any]:
    """The status once its phase is one of `phases` (and `done` holds for it)."""
    def reached() -> dict[str, Any] | None:
        found = status(api, namespace, name)
        return found if found.get("phase") in phases and done(found) else None
    return wait_for(reached, f"CanaryRollout {namespace}/{name} in {phases}", timeout=timeout)


def rolled_back(found: dict[str, Any]) -> bool:
    return bool((found.get("rollback") or {}).get("completedAt"))


def deployment(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", "deployment", name, "-n", namespace, "-o",
                                      "json").stdout)


def version_of(deployment_body: dict[str, Any]) -> str:
    env = deployment_body["spec"]["template"]["spec"]["containers"][0]["env"]
    return next(e["value"] for e in env if e["name"] == "VERSION")


@dataclass
class Snapshot:
    """One version of the CanaryRollout's status, as the watch delivered it."""

    at: float
    resource_version: int
    phase: str | None
    weight: int
    step_index: int
    revision: str | None
    status: dict[str, Any]


@dataclass
class Recorder:
    """Watches one CanaryRollout: every status version, and — with a `load` — the answers
    of each period of one weight written to the router (or `confirmed` by it), less the
    gateway's settling time."""

    api: client.ApiClient
    namespace: str
    load: traffic.Load | None = None
    name: str = NAME
    #: Cut periods where the router confirmed a weight, not where it was written: for the
    #: replica-ratio router, whose writes take effect only as the new pods become ready.
    confirmed: bool = False
    snapshots: list[Snapshot] = field(default_factory=list)
    #: (weight written, tally of the answers while it was in effect), in order.
    periods: list[tuple[int, traffic.Tally]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _settled: threading.Timer | None = None
    _open: int | None = None
    """The weight of the period being tallied (None: none is)."""

    def __enter__(self) -> Recorder:
        self._thread = threading.Thread(target=self._watch, daemon=True, name="recorder")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._settled is not None:
            self._settled.cancel()
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._close_period()

    def _watch(self) -> None:
        custom = client.CustomObjectsApi(self.api)
        resource_version = None
        while not self._stop.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(
                        custom.list_namespaced_custom_object, GROUP, VERSION, self.namespace,
                        ROLLOUTS.plural, field_selector=f"metadata.name={self.name}",
                        resource_version=resource_version, timeout_seconds=5):
                    obj = event["object"]
                    resource_version = obj["metadata"]["resourceVersion"]
                    self._record(obj)
                    if self._stop.is_set():
                        break
            except client.ApiException as error:
                if error.status != 410:
                    raise
                resource_version = None
            finally:
                stream.stop()

    def _record(self, obj: dict[str, Any]) -> None:
        found = obj.get("status") or {}
        weight = int(found.get("weight", 0))
        self.snapshots.append(Snapshot(time.monotonic(), int(obj["metadata"]["resourceVersion"]),
                                       found.get("phase"), weight, int(found.get("stepIndex", 0)),
                                       found.get("revision"), found))
        if self.load is None:
            return
        written = self._written(found)
        if self.confirmed:
            # A period runs from a weight's confirmation to the next write: the answers
            # while pods of the next weight start belong to neither.
            if self._open is not None and (weight != written or self._open != written):
                self._close_period()
            if weight == written and self._open is None:
                self._open_period(written)
        elif written != self._open or not self.periods:
            self._close_period()
            self._open_period(written)

    def _open_period(self, weight: int) -> None:
        assert self.load is not None
        self._open = weight
        self.periods.append((weight, traffic.Tally()))
        self.load.take()
        self._settled = threading.Timer(GATEWAY_SETTLE_SECONDS, self.load.take)
        self._settled.start()

    @staticmethod
    def _written(found: dict[str, Any]) -> int:
        """The weight last written to the router (a period starts there: the gateway may
        carry it before the operator has read it back)."""
        return int((found.get("router") or {}).get("weight", found.get("weight", 0)))

    def written(self, snapshot: Snapshot) -> int:
        return self._written(snapshot.status)

    def _close_period(self) -> None:
        if self.load is None or self._open is None:
            return
        self._open = None
        if self._settled is not None:
            self._settled.cancel()
        weight, tally = self.periods[-1]
        self.periods[-1] = (weight, tally.merged(self.load.take()))

    def weights(self) -> list[int]:
        """The confirmed weights in the order they took effect (each once)."""
        found: list[int] = []
        for snapshot in self.snapshots:
            if not found or snapshot.weight != found[-1]:
                found.append(snapshot.weight)
        return found

    def phases(self) -> list[str | None]:
        found: list[str | None] = []
        for snapshot in self.snapshots:
            if not found or snapshot.phase != found[-1]:
                found.append(snapshot.phase)
        return found


def longest_failing_run(tally: traffic.Tally) -> int:
    """The most answers other than 200 in a row (a single load's answers are in order): an
    outage is a long run, a stopped pod's last requests are short ones."""
    longest = run = 0
    for answer in tally.answers:
        run = run + 1 if answer.code != 200 else 0
        longest = max(longest, run)
    return longest


def autoscaler(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", "hpa", name, "-n", namespace, "-o",
                                      "json").stdout)


@dataclass
class ObjectWatch:
    """Watches one object through `lister` (a namespaced list call of the Kubernetes client,
    e.g. `NetworkingV1Api(api).list_namespaced_ingress`): (resourceVersion, `read(object)`)
    of every version seen, to order it against a CanaryRollout's status writes
    (resourceVersions are etcd revisions, one sequence for every object)."""

    api: client.ApiClient
    namespace: str
    name: str
    lister: Callable[..., Any]
    read: Callable[[dict[str, Any]], Any]
    seen: list[tuple[int, Any]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> ObjectWatch:
        self._thread = threading.Thread(target=self._watch, daemon=True, name="object")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def values(self) -> list[Any]:
        """The values read, each change once."""
        found: list[Any] = []
        for _, value in self.seen:
            if not found or value != found[-1]:
                found.append(value)
        return found

    def _watch(self) -> None:
        while not self._stop.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(self.lister, self.namespace,
                                           field_selector=f"metadata.name={self.name}",
                                           timeout_seconds=5):
                    body = self.api.sanitize_for_serialization(event["object"])
                    self.seen.append((int(body["metadata"]["resourceVersion"]),
                                      self.read(body)))
                    if self._stop.is_set():
                        break
            finally:
                stream.stop()
