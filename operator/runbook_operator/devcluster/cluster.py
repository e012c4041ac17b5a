"""A real Kubernetes control plane as local processes, for e2e tests and ``make demo``.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (fake nodes and pods) run
on free loopback ports, from the binaries ``hack/build-control-plane.sh`` builds and caches. No
containers, no kubelet: kwok plays the kubelet's part by patching Node and Pod status, except
for pods of the project's own images and the gateway's (Traefik), which the devcluster runtime
(:mod:`.runtime`, a sixth component) runs as real processes on the same node.

Everything runs inside the network namespace the calling process entered
(:func:`.network.enter`), where the pod network is local: each cluster of a process takes a
slice of it (:class:`.network.PodNetwork`), pods bind their own addresses, and EndpointSlices
list addresses that answer. Chosen services are relayed to the loopback outside
(:meth:`LocalCluster.relay_to_host`): the API server always, when the process opened a
listener for it, with a kubeconfig for the user's shell (:attr:`LocalCluster.host_kubeconfig`).

Flags that mattered, and why:

etcd
  ``--listen-peer-urls`` / ``--initial-cluster`` on a free port: the defaults (2380) would collide
  with any other etcd on the machine. ``--unsafe-no-fsync``: the data is throw-away, and fsync
  dominates write latency on CI disks.
kube-apiserver
  ``--authorization-mode=RBAC`` so the operator's own ServiceAccount is held to its Role, as in
  production. ``--service-account-issuer`` + ``--service-account-key-file`` +
  ``--service-account-signing-key-file`` enable the TokenRequest API (``kubectl create token``,
  :meth:`LocalCluster.service_account_kubeconfig`, and the controller-manager's per-controller
  credentials). ``--advertise-address=127.0.0.1``: otherwise the apiserver picks a host
  interface address. ``--endpoint-reconciler-type=none``: Endpoints and EndpointSlices may not
  hold a loopback address, so reconciling the ``kubernetes`` Service's only logs errors.
  ``--kubelet-preferred-address-types=InternalIP`` with kwok's node IP 127.0.0.1: any
  apiserver-to-"kubelet" call (``kubectl logs``) lands on kwok's loopback server, never on a
  made-up address. The ServiceAccount admission plugin stays on (unlike envtest) because the
  controller-manager creates the ``default`` ServiceAccounts.
kube-controller-manager
  ``--use-service-account-credentials`` (each controller under its own RBAC identity, as upstream),
  ``--service-account-private-key-file`` (token signing), ``--root-ca-file`` (``kube-root-ca.crt``
  ConfigMaps), ``--leader-elect=false`` (single instance, no lease wait at start).
  ``--secure-port`` on a free port: its default 10257 would collide between parallel clusters.
  ``--pvclaimbinder-sync-period=1s``: a claim created with its volume is often bound only at
  the PV controller's next resync (default 15 s), and pods wait for bound claims.
  No ``--authentication-kubeconfig``: with it, both components keep logging that the apiserver
  publishes no request-header CA (there is no front proxy); anonymous ``/healthz`` still works.
kube-scheduler
  ``--leader-elect=false`` and a free ``--secure-port`` for the same reasons.
kwok v0.8.0 (standalone)
  The standalone binary has **no built-in stages**: without Stage objects in ``--config`` it exits
  with "no stages found" (only ``kwokctl`` injects defaults). The harness writes
  :func:`kwok_stages` to a config file: the upstream "fast" node stages, the node lease
  (``--node-lease-duration-seconds=40``; otherwise the node only heartbeats by status and the
  node-lifecycle controller's 50 s grace period is tight on a busy machine), the upstream pod-ready
  and pod-delete stages, and a deterministic pod-complete stage whose outcome pods choose with
  annotations (:data:`EXIT_CODE_ANNOTATION`, ...). ``HOME`` points into the work dir so a
  developer's ``~/.kwok/kwok.yaml`` is never merged in. Every pod stage excludes pods with a
  project image (a Stage selector on the containers' image repositories), so kwok never fakes
  what the runtime runs. ``--enable-crds=Logs``: kwok's server answers ``kubectl logs`` from
  the files its Logs objects name; the runtime writes one per pod (the CRD is installed first).
  ``--cidr`` is the lower half of the cluster's slice of the pod network, the runtime takes
  the upper half.
runtime
  Chosen over a node of its own: the scheduler would need every runner pod steered to that node
  (a nodeSelector or toleration the operator's pods do not carry, or a mutating webhook), while
  one node with kwok excluding the project's images by Stage selector needs nothing from the
  pods, and keeps kwok's kubelet endpoint serving their logs. It serves its containers'
  cAdvisor metrics on a port the Node's :data:`RUNTIME_METRICS_PORT_ANNOTATION` names, where
  Prometheus' node discovery finds it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from base64 import b64encode
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import yaml

from runbook_operator.devcluster import network
from runbook_operator.devcluster.certs import PKI, generate_pki
from runbook_operator.devcluster.network import PodNetwork
from runbook_operator.devcluster.runtime.images import kwok_exclusion
from runbook_operator.devcluster.waiting import free_ports, wait_for

log = logging.getLogger(__name__)

NODE_NAME = "kwok-node-0"
#: Room for 65,534 Services: envtest's /24 (254) ran out at 127 CanaryRollouts (two Services
#: each) in bench/canary.py, which then could not initialize the rest.
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/16"
#: On the Node: the port of the runtime's cAdvisor metrics (on the node's InternalIP).
RUNTIME_METRICS_PORT_ANNOTATION = "devcluster.runbook.dev/runtime-metrics-port"
#: kwok's Logs CRD, copied beside the binaries by hack/build-control-plane.sh.
KWOK_LOGS_CRD = "kwok-logs-crd.yaml"
#: The Gateway API standard CRDs, beside Traefik's binary (hack/build-traefik.sh).
GATEWAY_API_CRDS = "gateway-api-standard-crds.yaml"

#: Pod annotations read by the harness's pod-complete stage (Job-owned pods only).
EXIT_CODE_ANNOTATION = "devcluster.runbook.dev/exit-code"
TERMINATION_MESSAGE_ANNOTATION = "devcluster.runbook.dev/termination-message"
REASON_ANNOTATION = "devcluster.runbook.dev/reason"
RUN_DURATION_ANNOTATION = "devcluster.runbook.dev/run-duration"

DEFAULT_START_TIMEOUT = 180.0
STOP_GRACE_SECONDS = 15.0
STATE_FILE = "state.json"
_POLL_INTERVAL = 0.25
_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok",
             "kubectl")
_PR_SET_PDEATHSIG = 1
# Everything start() may create in a work dir; a dir holding anything else is not ours to wipe.
_WORKDIR_ENTRIES = frozenset(
    {"pki", "etcd", "logs", "kubeconfigs", "kwok", "kubectl-cache", "runtime", STATE_FILE,
     STATE_FILE + ".tmp"}
)


class ClusterError(RuntimeError):
    """The local control plane could not be started, reached or stopped."""


class KubectlError(subprocess.CalledProcessError):
    """A kubectl call failed; unlike CalledProcessError its message includes kubectl's stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {(self.stderr or '').strip()}"


def repo_root() -> Path:
    """The source checkout holding ``hack/``: ``$RUNBOOK_REPO_ROOT``, else found from this file.

    The package is installed editable, so ``__file__`` lives inside the checkout.
    """
    override = os.environ.get("RUNBOOK_REPO_ROOT")
    root = Path(override) if override else Path(__file__).resolve().parents[3]
    if not (root / "hack" / "build-control-plane.sh").is_file():
        raise ClusterError(
            f"{root} has no hack/build-control-plane.sh; set RUNBOOK_REPO_ROOT to the repo checkout"
        )
    return root


def run_build(script_name: str, expected: Sequence[str] = ()) -> Path:
    """Run a (cached) build script of ``hack/`` and return the path it prints last, which
    must hold `expected`. The script's progress on stderr passes through, so a first, slow
    build is visibly alive."""
    script = repo_root() / "hack" / script_name
    proc = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise ClusterError(f"{script} failed with exit code {proc.returncode}")
    built = Path(lines[-1])
    missing = [c for c in expected if not (built / c).is_file()]
    if missing:
        raise ClusterError(f"{script} printed {built}, which lacks {', '.join(missing)}")
    return built


def build_control_plane() -> Path:
    """The control plane's binary directory."""
    return run_build("build-control-plane.sh", (*_BINARIES, KWOK_LOGS_CRD))


def build_gateway() -> Path:
    """The directory holding Traefik's binary and the Gateway API CRDs."""
    return run_build("build-traefik.sh", ("traefik", GATEWAY_API_CRDS))


def build_scripts() -> list[Path]:
    """The cached builds a cluster and its services use: run before entering the network
    namespace (:func:`.network.enter`), which has no way out to download anything."""
    hack = repo_root() / "hack"
    return [hack / "build-control-plane.sh", hack / "build-traefik.sh",
            hack / "build-prometheus.sh", hack / "build-minio.sh",
            hack / "build-istio-crds.sh"]


#: The Stage objects, a data file beside this module.
STAGES_FILE = "kwok-stages.yaml"


def kwok_stages() -> list[dict[str, Any]]:
    """Stage objects for kwok: node lifecycle, and pod ready → complete/fail → delete.

    Stages for the same resource must not overlap: kwok picks at random among matching stages. So
    success and failure are one stage whose outcome a pod chooses by annotations:

    - :data:`EXIT_CODE_ANNOTATION` (default ``0``): non-zero makes the pod ``Failed``;
    - :data:`TERMINATION_MESSAGE_ANNOTATION`: the containers' ``state.terminated.message``;
    - :data:`REASON_ANNOTATION`: ``state.terminated.reason`` (default ``Completed``/``Error``);
    - :data:`RUN_DURATION_ANNOTATION`: a Go duration (``30s``) to stay Running first.

    Like upstream, only pods owned by a Job complete; other pods stay Running. Pods with one
    of the project's images are left to the devcluster runtime, which runs them for real.
    """
    text = resources.files(__package__).joinpath(STAGES_FILE).read_text()
    stages = [stage for stage in yaml.safe_load_all(text) if stage]
    for stage in stages:
        if stage["spec"]["resourceRef"]["kind"] == "Pod":
            stage["spec"]["selector"]["matchExpressions"].append(kwok_exclusion())
    return stages


@dataclass
class _Process:
    """One component process; ``start_ticks`` guards against signalling a recycled pid."""

    name: str
    pid: int
    start_ticks: int
    log: str


def _proc_start_ticks(pid: int) -> int | None:
    """The process's start time from /proc (clock ticks since boot), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def _netns_inode() -> int:
    """Identifies the network namespace this process is in."""
    return os.stat("/proc/self/ns/net").st_ino


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


# Resolved before any fork: the child between fork and exec should only make the syscall.
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the thread that started it dies."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class LocalCluster:
    """A throw-away control plane on loopback; use as a context manager or call start()/stop().

    ``detached=True`` starts processes that outlive this Python process (``make cluster-up``);
    :meth:`attach` reconnects to them from ``state.json``. Attached clusters started from the main
    thread also die with it (PR_SET_PDEATHSIG), so a killed test run leaves no orphans.
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str] | None = None,
        bin_dir: str | os.PathLike[str] | None = None,
        *,
        detached: bool = False,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        remove_workdir: bool | None = None,
        built_images: str | os.PathLike[str] | None = None,
    ) -> None:
        self._workdir = Path(workdir).resolve() if workdir is not None else None
        # By default only a temporary work dir (one this object creates) is removed by stop().
        self._remove_workdir = workdir is None if remove_workdir is None else remove_workdir
        self._bin_dir = Path(bin_dir).resolve() if bin_dir is not None else None
        self._detached = detached
        #: hack/build-image.sh's export: pods naming its references run from those images.
        self._built_images = Path(built_images).resolve() if built_images else None
        self._start_timeout = start_timeout
        self._ports: dict[str, int] = {}
        self._processes: dict[str, _Process] = {}
        self._popens: dict[str, subprocess.Popen[bytes]] = {}
        self._http: httpx.Client | None = None
        self._pki: PKI | None = None
        self._gateway_dir: Path | None = None
        self._pod_network: PodNetwork | None = None
        self._owns_pod_network = False
        #: Host-loopback port of each relayed service.
        self._relays: dict[str, int] = {}
        self._netns = _netns_inode()
        self._isolated = False

    # -- paths and properties ------------------------------------------------------------------

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="runbook-devcluster-"))
        return self._workdir

    @property
    def bin_dir(self) -> Path:
        """Binary directory; built (or found in the build cache) on first use."""
        if self._bin_dir is None:
            self._bin_dir = build_control_plane()
        return self._bin_dir

    @property
    def gateway_dir(self) -> Path:
        """Traefik's binary and the Gateway API CRDs; built (or found cached) on first use."""
        if self._gateway_dir is None:
            self._gateway_dir = build_gateway()
        return self._gateway_dir

    @property
    def server(self) -> str:
        """The API server's URL inside the cluster's network namespace."""
        if "kube-apiserver" not in self._ports:
            raise ClusterError("the cluster has not been started")
        return f"https://127.0.0.1:{self._ports['kube-apiserver']}"

    @property
    def pod_network(self) -> PodNetwork:
        if self._pod_network is None:
            raise ClusterError("the cluster has not been started")
        return self._pod_network

    @property
    def isolated(self) -> bool:
        """Whether the cluster runs in a network namespace of its own (else on the host's
        loopback: see :attr:`.network.Network.note`)."""
        return self._isolated

    @property
    def relays(self) -> dict[str, int]:
        """The host-loopback port of each service relayed out of the namespace."""
        return dict(self._relays)

    def inside(self) -> bool:
        """Whether this process shares the cluster's network namespace (else it reaches the
        cluster only through the relays)."""
        return _netns_inode() == self._netns

    @property
    def ports(self) -> dict[str, int]:
        return dict(self._ports)

    @property
    def admin_kubeconfig(self) -> Path:
        """The admin kubeconfig that works from this process: the in-namespace one inside,
        the relayed one (:attr:`host_kubeconfig`) from outside."""
        return self._inside_kubeconfig if self.inside() else self.host_kubeconfig

    @property
    def host_kubeconfig(self) -> Path:
        """The admin kubeconfig for a shell outside the namespace: the API server through its
        relay on the host's loopback (the in-namespace one when there is no relay)."""
        relayed = self._kubeconfig_dir / "admin-host.kubeconfig"
        return relayed if "kube-apiserver" in self._relays else self._inside_kubeconfig

    @property
    def _inside_kubeconfig(self) -> Path:
        return self._kubeconfig_dir / "admin.kubeconfig"

    @property
    def logs_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def runtime_dir(self) -> Path:
        """The runtime's pods (volumes, logs) and claims (one directory per PVC)."""
        return self.workdir / "runtime"

    def claim_dir(self, namespace: str, claim: str) -> Path:
        """Where the runtime keeps a PersistentVolumeClaim's files."""
        return self.runtime_dir / "claims" / namespace / claim

    def create_claim(self, namespace: str, claim: str, size: str = "1Gi") -> Path:
        """A PersistentVolumeClaim bound to a PersistentVolume of its own, so pods that mount
        it can be scheduled (the scheduler waits for bound claims); the runtime keeps its
        files in the directory returned, which the PV names as its hostPath. The directory is
        empty and writable by every pod, as a hostPath provisioner makes it."""
        directory = self.claim_dir(namespace, claim)
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o777)
        volume = f"{namespace}-{claim}"
        pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": volume},
              "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteMany"],
                       "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                       "hostPath": {"path": str(directory)},
                       "claimRef": {"namespace": namespace, "name": claim}}}
        pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": claim, "namespace": namespace},
               "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "",
                        "volumeName": volume, "resources": {"requests": {"storage": size}}}}
        self.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                          "items": [pv, pvc]}))
        self.kubectl("wait", "--for=jsonpath={.status.phase}=Bound", "--timeout=60s",
                     "-n", namespace, f"pvc/{claim}")
        return directory

    @property
    def state_file(self) -> Path:
        return self.workdir / STATE_FILE

    @property
    def _pki_dir(self) -> Path:
        return self.workdir / "pki"

    @property
    def _kubeconfig_dir(self) -> Path:
        return self.workdir / "kubeconfigs"

    @property
    def _kubectl_cache(self) -> Path:
        # Per cluster: ports are reused across runs, and a stale discovery cache hides new CRDs.
        return self.workdir / "kubectl-cache"

    def env(self) -> dict[str, str]:
        """The current environment plus KUBECONFIG (admin) and the built kubectl first on PATH."""
        return {
            **os.environ,
            "KUBECONFIG": str(self.admin_kubeconfig),
            "KUBECACHEDIR": str(self._kubectl_cache),
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> LocalCluster:
        """Start every component and wait until the cluster can run a Job end to end.

        On failure every started process is stopped and the work dir is kept for its logs.
        """
        # Resolve (maybe build) the binaries first: a build does not count against the deadline.
        self._bin_dir = self.bin_dir
        self._gateway_dir = self.gateway_dir
        deadline = time.monotonic() + self._start_timeout
        self._prepare_workdir()
        started = time.monotonic()
        net = network.current()
        if net is None:
            log.warning("devcluster.network.enter() was not called in this process: the "
                        "cluster runs on the host's loopback; %s", network.FALLBACK_CONSEQUENCES)
        self._isolated = net is not None and net.isolated
        self._netns = _netns_inode()
        try:
            self._pod_network = network.allocate_pod_network()
            self._owns_pod_network = True
            pki = self._pki = generate_pki(self._pki_dir)
            names = ("etcd", "etcd-peer", "kube-apiserver", "kube-controller-manager",
                     "kube-scheduler", "kwok", "runtime-metrics")
            self._ports = dict(zip(names, free_ports(len(names)), strict=True))
            self._write_kubeconfigs(pki)
            self._start_etcd()
            self._wait_for("etcd", self._probe_etcd, deadline)
            self._start_apiserver(pki)
            self._http = self._admin_http_client(pki)
            self._wait_for("kube-apiserver", self._probe_apiserver, deadline)
            self._install_kwok_logs_crd(deadline)
            self._start_controller_manager(pki)
            self._start_scheduler()
            self._start_kwok(pki)
            self._start_runtime(pki)
            self._create_node()
            self._wait_for("kube-scheduler", self._probe_scheduler, deadline)
            self._wait_for("kube-controller-manager", self._probe_default_service_account, deadline)
            self._wait_for("kwok", self._probe_node_ready, deadline)
            if net is not None and "kube-apiserver" in net.host_listeners:
                self.relay_to_host("kube-apiserver", "127.0.0.1", self._ports["kube-apiserver"])
        except BaseException:
            self._terminate_processes()
            self._release_pod_network()
            raise
        if not self._detached:
            atexit.register(self.stop)
        log.info("local cluster %s ready in %.1fs (%s)", self.server, time.monotonic() - started,
                 self.workdir)
        return self

    def stop(self) -> None:
        """Terminate every component (SIGTERM, then SIGKILL after a grace); drop a temp work dir."""
        atexit.unregister(self.stop)
        self._terminate_processes()
        self._release_pod_network()
        if self._remove_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        elif self._workdir is not None and self.state_file.exists():
            self.state_file.unlink()

    def _release_pod_network(self) -> None:
        if self._owns_pod_network and self._pod_network is not None:
            network.release_pod_network(self._pod_network)
            self._owns_pod_network = False

    def relay_to_host(self, name: str, host: str, port: int) -> int:
        """Relay `host`:`port` inside the namespace to the host-loopback listener `name` this
        process opened before entering it (:func:`.network.enter`); return the host port. For
        ``kube-apiserver`` also write :attr:`host_kubeconfig`. Without a namespace the service
        is on the host's loopback already: its own port is returned."""
        net = network.current()
        if not self._isolated or net is None:
            return port
        listener = net.host_listeners[name]
        fd = listener.fileno()
        self._spawn(f"relay-{name}", [f"{fd}={host}:{port}"],
                    program=[sys.executable, "-m", "runbook_operator.devcluster.relay"],
                    pass_fds=(fd,))
        self._relays[name] = net.host_port(name)
        if name == "kube-apiserver":
            assert self._pki is not None
            admin = self._pki.clients["admin"]
            creds = {"client-certificate-data": b64encode(admin.cert.read_bytes()).decode(),
                     "client-key-data": b64encode(admin.key.read_bytes()).decode()}
            self._write_kubeconfig(self._kubeconfig_dir / "admin-host.kubeconfig", "admin",
                                   creds, server=f"https://127.0.0.1:{self._relays[name]}")
        self._save_state()
        return self._relays[name]

    def stop_apiserver(self, with_etcd: bool = False) -> None:
        """Stop kube-apiserver alone, as a crash or an upgrade would (etcd keeps the state),
        or etcd after it too, as the loss of a control-plane node would, so a test can see
        what clients do while it is away; start_apiserver() brings it back."""
        for name in ("kube-apiserver", "etcd") if with_etcd else ("kube-apiserver",):
            self._signal(name, signal.SIGTERM)
            if not self._wait_exit(name, time.monotonic() + STOP_GRACE_SECONDS):
                self._signal(name, signal.SIGKILL)
                self._wait_exit(name, time.monotonic() + 5)

    def start_apiserver(self, timeout: float = 180, with_etcd: bool = False) -> None:
        """Start kube-apiserver again on the same port, certificates and etcd (etcd first, on
        its data directory, `with_etcd`), and return once a Job runs end to end again: the
        controllers and kwok reconnect at their own pace."""
        assert self._pki is not None, "only a cluster this process started can restart parts"
        deadline = time.monotonic() + timeout
        if with_etcd:
            self._start_etcd()
        self._start_apiserver(self._pki)
        self._wait_for("kube-apiserver", self._probe_apiserver, deadline)
        self._run_probe_job(deadline)

    def _run_probe_job(self, deadline: float) -> None:
        assert self._http is not None
        http = self._http
        jobs = "/apis/batch/v1/namespaces/default/jobs"
        name = f"probe-{os.urandom(4).hex()}"
        container = {"name": "main", "image": "busybox", "command": ["true"]}
        http.post(jobs, json={
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never", "containers": [container]}}},
        }).raise_for_status()

        def complete() -> str | None:
            status = http.get(f"{jobs}/{name}").json().get("status") or {}
            return None if status.get("succeeded") else f"Job default/{name} not complete yet"

        try:
            self._wait_for(f"Job default/{name}", complete, deadline)
        finally:
            http.delete(f"{jobs}/{name}", params={"propagationPolicy": "Background"})

    @classmethod
    def attach(
        cls, state_dir: str | os.PathLike[str], *, remove_workdir: bool = False
    ) -> LocalCluster:
        """Reconnect to a (detached) cluster from the ``state.json`` its start() wrote."""
        path = Path(state_dir).resolve() / STATE_FILE
        try:
            state = json.loads(path.read_text())
        except FileNotFoundError:
            raise ClusterError(f"no cluster state at {path}") from None
        cluster = cls(path.parent, state["bin_dir"], detached=state["detached"],
                      remove_workdir=remove_workdir)
        cluster._ports = state["ports"]
        cluster._processes = {n: _Process(**p) for n, p in state["processes"].items()}
        net = state["network"]
        cluster._isolated, cluster._netns = net["isolated"], net["netns"]
        cluster._pod_network = PodNetwork(net["pod_network"])
        cluster._relays = net["relays"]
        return cluster

    @property
    def pids(self) -> dict[str, int]:
        """Process id of each started component, in start order."""
        return {n: p.pid for n, p in self._processes.items()}

    def is_running(self) -> bool:
        return bool(self._processes) and not self.dead_components()

    def dead_components(self) -> list[str]:
        """Components whose process has exited since start()."""
        return [n for n, p in self._processes.items() if _proc_start_ticks(p.pid) != p.start_ticks]

    def is_ready(self) -> bool:
        """Whether the apiserver answers /readyz with the admin identity."""
        result = self.kubectl("get", "--raw", "/readyz", check=False, timeout=10)
        return result.returncode == 0 and result.stdout.strip() == "ok"

    def log_path(self, component: str) -> Path:
        return self.logs_dir / f"{component}.log"

    # -- clients --------------------------------------------------------------------------------

    def wait_established(self, *selection: str, timeout: float = 60) -> None:
        """Until every CRD that `selection` (kubectl get's arguments) names is Established.
        (`kubectl wait --for=condition=Established` fails at once, instead of waiting, when a
        CRD it is asked about has no status yet, as right after a server-side apply.)"""

        def established() -> bool:
            body = json.loads(self.kubectl("get", *selection, "-o", "json").stdout)
            crds = body["items"] if body.get("kind") == "List" else [body]
            return bool(crds) and all(
                any(c.get("type") == "Established" and c.get("status") == "True"
                    for c in (crd.get("status") or {}).get("conditions") or [])
                for crd in crds)

        wait_for(established, f"CRDs {' '.join(selection)} Established", timeout=timeout)

    def kubectl(
        self,
        *args: str,
        kubeconfig: str | os.PathLike[str] | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this cluster (admin identity unless ``kubeconfig``)."""
        config = kubeconfig or self.admin_kubeconfig
        cmd = [str(self.bin_dir / "kubectl"), "--kubeconfig", str(config), *args]
        env = {**os.environ, "KUBECACHEDIR": str(self._kubectl_cache)}
        env.pop("KUBECONFIG", None)
        result = subprocess.run(cmd, input=input, capture_output=True, text=True, env=env,
                                timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, cmd, result.stdout, result.stderr)
        return result

    def service_account_kubeconfig(
        self,
        namespace: str,
        name: str,
        path: str | os.PathLike[str] | None = None,
        *,
        duration: str = "24h",
    ) -> Path:
        """Write a kubeconfig that authenticates as an existing ServiceAccount via a bound token.

        The token comes from the TokenRequest API (through the admin identity), so the operator can
        run locally with exactly the RBAC its manifests grant.
        """
        token = self.kubectl("create", "token", name, "-n", namespace, f"--duration={duration}")
        default = self._kubeconfig_dir / f"sa-{namespace}-{name}.kubeconfig"
        target = Path(path) if path is not None else default
        user = f"system:serviceaccount:{namespace}:{name}"
        self._write_kubeconfig(target, user, {"token": token.stdout.strip()}, namespace=namespace)
        return target

    # -- internals: workdir, kubeconfigs, process management ------------------------------------

    def _prepare_workdir(self) -> None:
        """Refuse a live cluster's or a foreign dir; clear what a previous cluster left behind.

        Every start is a fresh cluster: new keys, empty etcd.
        """
        if self.state_file.exists():
            previous = LocalCluster.attach(self.workdir)
            if previous.is_running():
                raise ClusterError(f"a cluster is already running from {self.workdir}")
            previous._terminate_processes()
        self.workdir.mkdir(parents=True, exist_ok=True)
        foreign = sorted(p.name for p in self.workdir.iterdir() if p.name not in _WORKDIR_ENTRIES)
        if foreign:
            raise ClusterError(f"{self.workdir} holds files that are not a cluster's: {foreign}")
        for entry in self.workdir.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        for sub in ("logs", "kubeconfigs", "kwok/home", "runtime"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)

    def _write_kubeconfig(
        self, path: Path, user: str, credentials: Mapping[str, str], *, namespace: str = "default",
        server: str | None = None,
    ) -> None:
        ca_data = b64encode((self._pki_dir / "ca.crt").read_bytes()).decode()
        cluster = {"server": server or self.server, "certificate-authority-data": ca_data}
        context = {"cluster": "devcluster", "user": user, "namespace": namespace}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "devcluster", "cluster": cluster}],
            "users": [{"name": user, "user": dict(credentials)}],
            "contexts": [{"name": "devcluster", "context": context}],
            "current-context": "devcluster",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(yaml.safe_dump(config, sort_keys=False))

    def _write_kubeconfigs(self, pki: PKI) -> None:
        for stem, pair in pki.clients.items():
            creds = {"client-certificate-data": b64encode(pair.cert.read_bytes()).decode(),
                     "client-key-data": b64encode(pair.key.read_bytes()).decode()}
            self._write_kubeconfig(self._kubeconfig_dir / f"{stem}.kubeconfig", stem, creds)

    def _spawn(self, name: str, args: Sequence[str], env: Mapping[str, str] | None = None,
               program: Sequence[str] | None = None, pass_fds: Sequence[int] = ()) -> None:
        """Start a component: the binary `name` (or `program`) with `args`."""
        log_path = self.log_path(name)
        pdeathsig = not self._detached and threading.current_thread() is threading.main_thread()
        with log_path.open("ab") as out:
            popen = subprocess.Popen(
                [*(program or [str(self.bin_dir / name)]), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env={**os.environ, **(env or {})},
                start_new_session=True,
                preexec_fn=_die_with_parent if pdeathsig else None,
                pass_fds=pass_fds,
            )
        ticks = _proc_start_ticks(popen.pid)
        self._popens[name] = popen
        self._processes[name] = _Process(name, popen.pid, ticks if ticks is not None else -1,
                                         str(log_path))
        self._save_state()

    def _save_state(self) -> None:
        state = {
            "detached": self._detached,
            "bin_dir": str(self.bin_dir),
            "server": self.server,
            "admin_kubeconfig": str(self._inside_kubeconfig),
            "host_kubeconfig": str(self.host_kubeconfig),
            "ports": self._ports,
            "network": {"isolated": self._isolated, "netns": self._netns,
                        "pod_network": self._pod_network and self._pod_network.cidr,
                        "relays": self._relays},
            "processes": {n: asdict(p) for n, p in self._processes.items()},
        }
        tmp = self.workdir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_file)

    def _terminate_processes(self) -> None:
        """SIGTERM in reverse start order (etcd last); SIGKILL what outlives the grace period."""
        if self._http is not None:
            self._http.close()
            self._http = None
        servers = ("kube-apiserver", "etcd")
        clients = [n for n in reversed(self._processes) if n not in servers]
        for group in (clients, *([n] for n in servers if n in self._processes)):
            for name in group:
                self._signal(name, signal.SIGTERM)
            end = time.monotonic() + STOP_GRACE_SECONDS
            for name in group:
                if not self._wait_exit(name, end):
                    log.warning("%s ignored SIGTERM for %ss; killing it", name, STOP_GRACE_SECONDS)
                    self._signal(name, signal.SIGKILL)
                    self._wait_exit(name, time.monotonic() + 5)
        self._processes.clear()
        self._popens.clear()

    def _signal(self, name: str, sig: signal.Signals) -> None:
        proc = self._processes[name]
        if _proc_start_ticks(proc.pid) == proc.start_ticks:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)

    def _wait_exit(self, name: str, deadline: float) -> bool:
        popen = self._popens.get(name)
        if popen is not None:
            try:
                popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                return False
            return True
        proc = self._processes[name]
        while _proc_start_ticks(proc.pid) == proc.start_ticks:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_INTERVAL)
        return True

    def _wait_for(self, component: str, probe: Callable[[], str | None], deadline: float) -> None:
        """Poll ``probe`` (None = ready, else a description of what is missing) until the deadline.

        Fails fast, with the log tail, when any started component exits.
        """
        status = "not probed yet"
        while True:
            for name in self.dead_components():
                raise ClusterError(
                    f"{name} exited while waiting for {component} "
                    f"(log {self.log_path(name)}):\n{_tail(self.log_path(name))}"
                )
            try:
                result = probe()
            except (httpx.HTTPError, subprocess.SubprocessError, OSError) as exc:
                result = f"{type(exc).__name__}: {exc}"
            if result is None:
                log.debug("%s ready", component)
                return
            status = result
            if time.monotonic() >= deadline:
                raise ClusterError(
                    f"{component} not ready within the {self._start_timeout:.0f}s start timeout: "
                    f"{status} (log {self.log_path(component)}):\n{_tail(self.log_path(component))}"
                )
            time.sleep(_POLL_INTERVAL)

    # -- internals: components ------------------------------------------------------------------

    def _start_etcd(self) -> None:
        client = f"http://127.0.0.1:{self._ports['etcd']}"
        peer = f"http://127.0.0.1:{self._ports['etcd-peer']}"
        self._spawn("etcd", [
            "--name=devcluster",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=devcluster={peer}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ])

    def _start_apiserver(self, pki: PKI) -> None:
        self._spawn("kube-apiserver", [
            f"--etcd-servers=http://127.0.0.1:{self._ports['etcd']}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self._ports['kube-apiserver']}",
            f"--cert-dir={self.workdir / 'pki' / 'apiserver-generated'}",
            f"--tls-cert-file={pki.apiserver.cert}",
            f"--tls-private-key-file={pki.apiserver.key}",
            f"--client-ca-file={pki.ca.cert}",
            "--authorization-mode=RBAC",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            f"--service-account-issuer={self.server}",
            f"--service-account-key-file={pki.sa_public_key}",
            f"--service-account-signing-key-file={pki.sa_private_key}",
            "--allow-privileged=true",
            "--endpoint-reconciler-type=none",
            "--kubelet-preferred-address-types=InternalIP",
            "--profiling=false",
        ])

    def _start_controller_manager(self, pki: PKI) -> None:
        kubeconfig = self._kubeconfig_dir / "kube-controller-manager.kubeconfig"
        self._spawn("kube-controller-manager", [
            f"--kubeconfig={kubeconfig}",
            f"--service-account-private-key-file={pki.sa_private_key}",
            f"--root-ca-file={pki.ca.cert}",
            "--use-service-account-credentials=true",
            "--leader-elect=false",
            "--pvclaimbinder-sync-period=1s",
            "--bind-address=127.0.0.1",
            f"--secure-port={self._ports['kube-controller-manager']}",
            "--profiling=false",
        ])

    def _start_scheduler(self) -> None:
        kubeconfig = self._kubeconfig_dir / "kube-scheduler.kubeconfig"
        self._spawn("kube-scheduler", [
            f"--kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={self._ports['kube-scheduler']}",
            "--profiling=false",
        ])

    def _start_kwok(self, pki: PKI) -> None:
        config = self.workdir / "kwok" / "stages.yaml"
        config.write_text(yaml.safe_dump_all(kwok_stages(), sort_keys=False))
        port = self._ports["kwok"]
        self._spawn(
            "kwok",
            [
                f"--kubeconfig={self._inside_kubeconfig}",
                f"--config={config}",
                "--manage-all-nodes=true",
                f"--server-address=127.0.0.1:{port}",
                # kwok reuses the apiserver's serving cert (its SANs include 127.0.0.1).
                f"--tls-cert-file={pki.apiserver.cert}",
                f"--tls-private-key-file={pki.apiserver.key}",
                "--node-ip=127.0.0.1",
                f"--node-port={port}",
                f"--cidr={self.pod_network.kwok_cidr}",
                "--node-lease-duration-seconds=40",
                "--enable-crds=Logs",
            ],
            env={"HOME": str(self.workdir / "kwok" / "home")},
        )

    def _install_kwok_logs_crd(self, deadline: float) -> None:
        """kwok watches Logs objects (``--enable-crds=Logs``): their CRD must be served first."""
        assert self._http is not None
        http = self._http
        crd = yaml.safe_load((self.bin_dir / KWOK_LOGS_CRD).read_text())
        response = http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd)
        if response.status_code not in (201, 409):
            raise ClusterError(f"creating kwok's Logs CRD failed: {response.text}")
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"

        def established() -> str | None:
            conditions = http.get(path).json().get("status", {}).get("conditions") or []
            ok = any(c["type"] == "Established" and c["status"] == "True" for c in conditions)
            return None if ok else "kwok's Logs CRD not established yet"

        self._wait_for("kube-apiserver", established, deadline)

    def _start_runtime(self, pki: PKI) -> None:
        """The devcluster runtime: the kubelet for pods of the project's images."""
        admin = pki.clients["admin"]
        self._spawn(
            "runtime",
            [
                f"--server={self.server}",
                f"--ca={pki.ca.cert}",
                f"--cert={admin.cert}",
                f"--key={admin.key}",
                f"--node={NODE_NAME}",
                f"--workdir={self.runtime_dir}",
                f"--pod-cidr={self.pod_network.runtime_cidr}",
                f"--metrics-port={self._ports['runtime-metrics']}",
                f"--gateway-binary={self.gateway_dir / 'traefik'}",
                *([f"--built-images={self._built_images}"] if self._built_images else []),
            ],
            program=[sys.executable, "-m", "runbook_operator.devcluster.runtime"],
        )

    def _create_node(self) -> None:
        resources = {"cpu": "64", "memory": "256Gi", "pods": "1000"}
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE_NAME,
                "annotations": {
                    "kwok.x-k8s.io/node": "fake",
                    "node.alpha.kubernetes.io/ttl": "0",
                    RUNTIME_METRICS_PORT_ANNOTATION: str(self._ports["runtime-metrics"]),
                },
                "labels": {
                    "type": "kwok",
                    "kubernetes.io/hostname": NODE_NAME,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                },
            },
            "spec": {},
            "status": {"allocatable": resources, "capacity": resources},
        }
        assert self._http is not None
        response = self._http.post("/api/v1/nodes", json=node)
        if response.status_code not in (201, 409):
            raise ClusterError(
                f"creating node {NODE_NAME} failed: {response.status_code} {response.text}"
            )

    # -- internals: readiness probes ------------------------------------------------------------

    def _admin_http_client(self, pki: PKI) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(pki.ca.cert))
        admin = pki.clients["admin"]
        context.load_cert_chain(str(admin.cert), str(admin.key))
        return httpx.Client(base_url=self.server, verify=context, timeout=5.0)

    def _probe_etcd(self) -> str | None:
        response = httpx.get(f"http://127.0.0.1:{self._ports['etcd']}/health", timeout=2.0)
        return None if response.json().get("health") == "true" else f"/health: {response.text}"

    def _probe_apiserver(self) -> str | None:
        assert self._http is not None
        response = self._http.get("/readyz")
        return None if response.status_code == 200 else f"/readyz {response.status_code}"

    def _probe_scheduler(self) -> str | None:
        # Self-signed in-memory serving cert; only the health verdict is read.
        response = httpx.get(f"https://127.0.0.1:{self._ports['kube-scheduler']}/healthz",
                             verify=False, timeout=2.0)
        return None if response.status_code == 200 else f"/healthz {response.status_code}"

    def _probe_default_service_account(self) -> str | None:
        assert self._http is not None
        response = self._http.get("/api/v1/namespaces/default/serviceaccounts/default")
        return None if response.status_code == 200 else "no default ServiceAccount in default yet"

    def _probe_node_ready(self) -> str | None:
        assert self._http is not None
        response = self._http.get(f"/api/v1/nodes/{NODE_NAME}")
        response.raise_for_status()
        node = response.json()
        ready = any(c["type"] == "Ready" and c["status"] == "True"
                    for c in node.get("status", {}).get("conditions", []))
        if not ready:
            return f"node {NODE_NAME} not Ready"
        # The node-lifecycle controller lifts its not-ready taint a moment after Ready.
        taints = [t["key"] for t in node["spec"].get("taints", [])]
        return f"node {NODE_NAME} still tainted {taints}" if taints else None
