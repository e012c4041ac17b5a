"""The imperative shell: watch the node's pods, run the project's ones, report their status.

One thread per pod (:class:`PodWorker`) owns its processes and its status; the main loop lists
and watches pods on the node and hands each worker the newest version of its pod. Decisions
(env, mounts, phase, back-off, probe thresholds, the sandbox's command line) are the pure
modules' beside this one.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from base64 import b64decode
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from kubernetes.utils import parse_quantity
from prometheus_client.core import Metric

from runbook_operator.devcluster.runtime import cadvisor, probes, restarts, sandbox, spec
from runbook_operator.devcluster.runtime.crilog import LogWriter, message_text
from runbook_operator.devcluster.runtime.images import ImageConfig, find_image
from runbook_operator.devcluster.runtime.status import (
    Addresses,
    ContainerRecord,
    Running,
    Terminated,
    Waiting,
    pod_status,
)

log = logging.getLogger(__name__)

LOGS_API = "/apis/kwok.x-k8s.io/v1alpha1"
FIELD_MANAGER = "devcluster-runtime"
TERMINAL = ("Succeeded", "Failed")
_TICK = 0.5
_CONFIG_RETRY = 2.0
_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent() -> None:
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class Api:
    """The few API calls a kubelet makes, over one HTTP/1.1 client with a client cert."""

    def __init__(self, server: str, ca: str, cert: str, key: str) -> None:
        context = ssl.create_default_context(cafile=ca)
        context.load_cert_chain(cert, key)
        self._context = context
        self.server = server
        self.http = httpx.Client(base_url=server, verify=context, timeout=30.0)

    def get(self, path: str) -> dict[str, Any] | None:
        response = self.http.get(path)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def object_data(self, namespace: str, kind: str, name: str) -> dict[str, bytes] | None:
        """A Secret's or ConfigMap's data as bytes, None when it does not exist."""
        obj = self.get(f"/api/v1/namespaces/{namespace}/{kind}/{name}")
        if obj is None:
            return None
        if kind == "secrets":
            return {k: b64decode(v) for k, v in (obj.get("data") or {}).items()}
        data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        return data | {k: b64decode(v) for k, v in (obj.get("binaryData") or {}).items()}

    def token(self, pod: Mapping[str, Any]) -> str:
        """A token for the pod's ServiceAccount, bound to the pod (TokenRequest API)."""
        meta = pod["metadata"]
        account = pod["spec"].get("serviceAccountName") or "default"
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"expirationSeconds": 3600 * 24, "boundObjectRef": {
                    "apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                    "uid": meta["uid"]}}}
        response = self.http.post(
            f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{account}/token",
            json=body)
        response.raise_for_status()
        return response.json()["status"]["token"]

    def patch_status(self, pod: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        meta = pod["metadata"]
        response = self.http.patch(
            f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
            content=json.dumps({"metadata": {"uid": meta["uid"]}, "status": status}),
            headers={"Content-Type": "application/merge-patch+json"})
        if response.status_code not in (404, 409):
            response.raise_for_status()

    def delete_pod(self, pod: Mapping[str, Any]) -> None:
        """The kubelet's last word: delete now, only this incarnation of the pod."""
        meta = pod["metadata"]
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}
        response = self.http.request(
            "DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", json=body)
        if response.status_code not in (404, 409):
            response.raise_for_status()

    def apply_logs(self, pod: Mapping[str, Any], logs: list[dict[str, Any]]) -> None:
        """kwok's Logs object for the pod: where its server finds each container's log."""
        meta = pod["metadata"]
        body = {
            "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Logs",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Pod",
                                              "name": meta["name"], "uid": meta["uid"]}]},
            "spec": {"logs": logs},
        }
        response = self.http.patch(
            f"{LOGS_API}/namespaces/{meta['namespace']}/logs/{meta['name']}",
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            content=json.dumps(body), headers={"Content-Type": "application/apply-patch+yaml"})
        if response.status_code != 404:  # the namespace is being deleted
            response.raise_for_status()

    def list_pods(self, node: str) -> tuple[list[dict[str, Any]], str]:
        response = self.http.get("/api/v1/pods", params={"fieldSelector": f"spec.nodeName={node}"})
        response.raise_for_status()
        body = response.json()
        return body["items"], body["metadata"]["resourceVersion"]

    def watch_pods(self, node: str, version: str) -> Iterator[tuple[str, dict[str, Any]]]:
        params = {"fieldSelector": f"spec.nodeName={node}", "watch": "1",
                  "resourceVersion": version, "allowWatchBookmarks": "true",
                  "timeoutSeconds": "300"}
        timeout = httpx.Timeout(30.0, read=330.0)
        with self.http.stream("GET", "/api/v1/pods", params=params, timeout=timeout) as stream:
            stream.raise_for_status()
            for line in stream.iter_lines():
                if line:
                    event = json.loads(line)
                    yield event["type"], event["object"]


class AddressPool:
    """Pod IPs from the runtime's range (kwok hands out another part of the pod CIDR)."""

    def __init__(self, cidr: str, host_ip: str) -> None:
        self._hosts = ipaddress.ip_network(cidr).hosts()
        self._free: list[str] = []
        self._used: dict[str, str] = {}
        self._lock = threading.Lock()
        self.host_ip = host_ip

    def allocate(self, uid: str) -> str:
        with self._lock:
            if uid not in self._used:
                self._used[uid] = self._free.pop(0) if self._free else str(next(self._hosts))
            return self._used[uid]

    def release(self, uid: str) -> None:
        with self._lock:
            if uid in self._used:
                self._free.append(self._used.pop(uid))


def bindable(ip: str) -> bool:
    """Whether this process can serve on `ip`: the pod network is local in the cluster's
    network namespace (:mod:`..network`), and nowhere without one."""
    with socket.socket() as probe:
        try:
            probe.bind((ip, 0))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class Settings:
    node: str
    workdir: Path
    images: Mapping[str, ImageConfig]
    pool_cidr: str
    host_ip: str
    api_host: str
    api_port: int
    bwrap: str
    setpriv: str
    #: The static helper that becomes a built image's user (hack/runtime-setpriv), as root.
    setpriv_helper: str | None = None


@dataclass
class _Process:
    popen: subprocess.Popen[bytes]
    writer: LogWriter
    log_path: Path
    message_path: Path


class Runtime:
    """Lists and watches the node's pods; a :class:`PodWorker` per pod of a project image."""

    def __init__(self, api: Api, settings: Settings) -> None:
        self.api = api
        self.settings = settings
        self.addresses = AddressPool(settings.pool_cidr, settings.host_ip)
        self.as_root = os.geteuid() == 0
        #: The helper, open for the sandboxes of built images to execute (:mod:`.sandbox`).
        self.helper_fd = (os.open(settings.setpriv_helper, os.O_RDONLY)
                          if self.as_root and settings.setpriv_helper else None)
        self.stopping = threading.Event()
        self._workers: dict[str, PodWorker] = {}
        self._finished: set[str] = set()
        self._lock = threading.Lock()

    def owns(self, pod: Mapping[str, Any]) -> bool:
        return any(find_image(self.settings.images, c.get("image", "")) is not None
                   for c in pod["spec"].get("containers") or [])

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                items, version = self.api.list_pods(self.settings.node)
                self._sync(items)
                for kind, pod in self.api.watch_pods(self.settings.node, version):
                    if self.stopping.is_set():
                        break
                    if kind == "BOOKMARK":
                        continue
                    if kind == "ERROR":
                        break
                    self._dispatch(pod, deleted=kind == "DELETED")
            except (httpx.HTTPError, OSError, ValueError) as error:
                if not self.stopping.is_set():
                    log.warning("pod watch interrupted (%s); listing again", error)
                    self.stopping.wait(1.0)

    def _sync(self, items: list[dict[str, Any]]) -> None:
        present = {p["metadata"]["uid"] for p in items}
        for pod in items:
            self._dispatch(pod, deleted=False)
        with self._lock:
            gone = [w for uid, w in self._workers.items() if uid not in present]
        for worker in gone:
            worker.gone()

    def _dispatch(self, pod: dict[str, Any], deleted: bool) -> None:
        if not self.owns(pod):
            return
        uid = pod["metadata"]["uid"]
        with self._lock:
            worker = self._workers.get(uid)
            if worker is None and (pod.get("status") or {}).get("phase") in TERMINAL:
                self._finished.add(uid)  # ran before this runtime started: never again
                if pod["metadata"].get("deletionTimestamp") and not deleted:
                    self.api.delete_pod(pod)
                return
            if worker is None and not deleted and uid not in self._finished:
                worker = self._workers[uid] = PodWorker(self, pod)
                worker.start()
                return
        if worker is not None:
            worker.gone() if deleted else worker.update(pod)

    def finished(self, uid: str) -> None:
        with self._lock:
            self._workers.pop(uid, None)
            self._finished.add(uid)
        self.addresses.release(uid)

    def collect(self) -> list[Metric]:
        """The ``/metrics/cadvisor`` families, measured now (a prometheus_client collector)."""
        with self._lock:
            workers = list(self._workers.values())
        samples = [s for w in workers for s in w.container_samples()]
        mounts = Path("/proc/mounts").read_text()
        filesystem = cadvisor.filesystem_of(self.settings.workdir, mounts)
        return cadvisor.families(samples, filesystem)

    def stop(self) -> None:
        """Kill every container (the harness is going away; pods are left as they are)."""
        self.stopping.set()
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.shutdown()
        for worker in workers:
            worker.join(timeout=15)


class PodWorker(threading.Thread):
    """Runs one pod's containers and keeps its status, until the pod is deleted."""

    def __init__(self, runtime: Runtime, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.runtime = runtime
        self.api = runtime.api
        self.pod = pod
        self.uid = meta["uid"]
        pod_key = f"{meta['namespace']}_{meta['name']}_{self.uid}"
        self.dir = runtime.settings.workdir / "pods" / pod_key
        self._wake = threading.Event()
        self._gone = False
        self._shutdown = False
        self._published: dict[str, Any] | None = None
        containers = pod["spec"]["containers"]
        self.records = {c["name"]: ContainerRecord(c["name"], c["image"],
                                                   Waiting("ContainerCreating"))
                        for c in containers}
        self._processes: dict[str, _Process] = {}
        self._restart_at: dict[str, datetime] = {}
        self._backoff: dict[str, timedelta] = {}
        self._probes: dict[str, probes.ProbeState] = {}
        self._plans: dict[str, tuple[list[str], dict[str, str]]] | None = None
        self._volume_specs: dict[str, spec.Volume] = {}
        self._volumes: dict[str, Path] = {}
        self.started_at = _now()
        self.address = Addresses(runtime.addresses.allocate(self.uid),
                                 runtime.settings.host_ip)

    # -- events from the main loop ------------------------------------------------------------

    def update(self, pod: dict[str, Any]) -> None:
        self.pod = pod
        self._wake.set()

    def gone(self) -> None:
        self._gone = True
        self._wake.set()

    def shutdown(self) -> None:
        self._shutdown = True
        self._wake.set()

    # -- the loop -------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._loop()
        except Exception:  # noqa: BLE001 - a broken pod must not take the runtime down
            log.exception("pod %s failed in the runtime", self.name)
            self._kill_all(0)
        finally:
            self.runtime.finished(self.uid)

    def _loop(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._publish()
        while True:
            if self._shutdown:
                self._kill_all(2)
                return
            if self._gone:
                self._kill_all(0)
                self._cleanup()
                return
            if self.pod["metadata"].get("deletionTimestamp"):
                self._terminate()
                return
            if self._plans is None:
                self._prepare()
            if self._plans is not None:
                self._step()
            self._publish()
            self._wake.wait(_TICK if self._plans is not None else _CONFIG_RETRY)
            self._wake.clear()

    def _prepare(self) -> None:
        """Resolve env, volumes and argv for every container; a missing Secret leaves them
        waiting in CreateContainerConfigError, retried as the kubelet does."""
        pod = self.pod
        namespace = pod["metadata"]["namespace"]
        facts = spec.PodFacts(self.address.pod_ip, self.address.host_ip,
                              self.runtime.settings.node)
        try:
            secrets, config_maps = spec.referenced_objects(pod)
            token = ""
            if any("serviceAccountToken" in s for v in pod["spec"].get("volumes") or []
                   for s in (v.get("projected") or {}).get("sources") or []):
                token = self.api.token(pod)
            sources = spec.Sources(
                {n: self.api.object_data(namespace, "secrets", n) for n in secrets},
                {n: self.api.object_data(namespace, "configmaps", n) for n in config_maps},
                token)
            volumes = spec.pod_volumes(pod, facts, sources)
            plans = {}
            for container in pod["spec"]["containers"]:
                image = self._image(container)
                base = self._kubelet_env()
                env = spec.container_env(pod, container, image, facts, sources, base)
                argv = spec.container_argv(container, image, env)
                spec.container_identity(pod["spec"], container, image)
                mounts = spec.container_mounts(container, volumes)
                hidden = sandbox.shadowed_roots(image.root_paths, [m.path for m in mounts])
                if hidden:
                    raise spec.ConfigError(
                        f"volumeMounts at {', '.join(hidden)} are paths of this runtime's "
                        f"image ({', '.join(image.root_paths)}); mount them elsewhere")
                plans[container["name"]] = (argv, env)
        except spec.ConfigError as error:
            self._config_error(str(error))
            return
        self._volume_specs = volumes
        self._volumes = self._materialize(volumes)
        self._plans = plans

    def _image(self, container: Mapping[str, Any]) -> ImageConfig:
        image = find_image(self.runtime.settings.images, container["image"])
        if image is None:
            raise spec.ConfigError(
                f"image {container['image']!r} is not one the devcluster runtime can run")
        return image

    def _kubelet_env(self) -> dict[str, str]:
        settings = self.runtime.settings
        host, port = settings.api_host, str(settings.api_port)
        return {"HOSTNAME": self.pod["metadata"]["name"],
                "KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port,
                "KUBERNETES_SERVICE_PORT_HTTPS": port,
                "KUBERNETES_PORT": f"tcp://{host}:{port}"}

    def _config_error(self, message: str) -> None:
        for name, record in self.records.items():
            if isinstance(record.state, Waiting):
                self.records[name] = replace(
                    record, state=Waiting("CreateContainerConfigError", message))

    def _fs_group(self) -> int | None:
        return (self.pod["spec"].get("securityContext") or {}).get("fsGroup")

    def _own(self, path: Path, mode: int, uid: int = 0, gid: int | None = None) -> None:
        path.chmod(mode)
        if self.runtime.as_root:
            os.chown(path, uid, gid if gid is not None else 0)

    def _materialize(self, volumes: Mapping[str, spec.Volume]) -> dict[str, Path]:
        """One directory per volume: files written fresh, emptyDir world-writable as the
        kubelet makes it, a PVC's directory shared by every pod that mounts the claim."""
        fs_group = self._fs_group()
        paths = {}
        for name, volume in volumes.items():
            if isinstance(volume, spec.VolumeDirectory) and volume.shared_key:
                path = self.runtime.settings.workdir / "claims" / volume.shared_key
                if not path.exists():
                    path.mkdir(parents=True)
                    self._own(path, 0o2775 if fs_group is not None else 0o777, 0, fs_group)
            else:
                path = self.dir / "volumes" / name
                path.mkdir(parents=True, exist_ok=True)
                if isinstance(volume, spec.VolumeFiles):
                    for rel, (content, mode) in volume.files.items():
                        target = path / rel
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(content)
                        self._own(target, mode, 0, fs_group)
                    self._own(path, 0o755)
                else:
                    self._own(path, 0o777)
            paths[name] = path
        return paths

    # -- containers -----------------------------------------------------------------------------

    def _container(self, name: str) -> dict[str, Any]:
        return next(c for c in self.pod["spec"]["containers"] if c["name"] == name)

    def _step(self) -> None:
        now = _now()
        policy = self.pod["spec"].get("restartPolicy", "Always")
        for name, record in list(self.records.items()):
            state = record.state
            if isinstance(state, Waiting) and record.last_terminated is None:
                self._start(name, restart=False)
            elif isinstance(state, Waiting) and now >= self._restart_at.get(name, now):
                self._start(name, restart=True)
            elif isinstance(state, Running):
                process = self._processes[name]
                code = process.popen.poll()
                if code is None:
                    self._probe(name, now)
                    continue
                self._exited(name, code, now)
                record = self.records[name]
                assert isinstance(record.state, Terminated)
                if restarts.should_restart(policy, record.state.exit_code):
                    ran = record.state.finished_at - record.state.started_at
                    delay = restarts.next_backoff(self._backoff.get(name), ran)
                    self._backoff[name] = delay
                    self._restart_at[name] = now + delay
                    meta = self.pod["metadata"]
                    self.records[name] = record.backing_off(restarts.backoff_message(
                        delay, name, meta["name"], meta["namespace"], self.uid))

    def _start(self, name: str, restart: bool) -> None:
        container = self._container(name)
        image = self._image(container)
        assert self._plans is not None
        argv, env = self._plans[name]
        record = self.records[name]
        run_id = record.run_id + 1 if restart else record.run_id
        run_dir = self.dir / "containers" / name / str(run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        identity = spec.container_identity(self.pod["spec"], container, image)
        binds = self._binds(container, run_dir, identity)
        command = self._sandboxed(container, image, identity, binds, argv)
        log_path = self.dir / "logs" / name / f"{run_id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out = log_path.open("ab")
        popen = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True, preexec_fn=_die_with_parent,
            pass_fds=self._pass_fds(image))
        writer = LogWriter(out)
        assert popen.stdout is not None and popen.stderr is not None
        writer.follow(popen.stdout, "stdout")
        writer.follow(popen.stderr, "stderr")
        self._processes[name] = _Process(popen, writer, log_path, run_dir / "termination-log")
        now = _now()
        self.records[name] = record.restarted(now) if restart else record.started(now)
        self._probes.pop(name, None)
        self._publish_logs()

    def _binds(self, container: Mapping[str, Any], run_dir: Path,
               identity: spec.Identity) -> list[sandbox.Bind]:
        """Volume mounts, then the writable layer at /tmp and the termination message file."""
        mounts = spec.container_mounts(container, self._volume_specs)
        binds = []
        for mount in mounts:
            source = self._volumes[mount.volume]
            if mount.sub_path:
                source = source / mount.sub_path
                source.mkdir(parents=True, exist_ok=True)
            binds.append(sandbox.Bind(str(source), mount.path, mount.read_only))
        targets = {b.target for b in binds}
        read_only = bool((container.get("securityContext") or {}).get("readOnlyRootFilesystem"))
        if "/tmp" not in targets:
            scratch = run_dir / "tmp"
            scratch.mkdir(exist_ok=True)
            self._own(scratch, 0o1777)
            binds.append(sandbox.Bind(str(scratch), "/tmp", read_only))
        message = run_dir / "termination-log"
        message.touch()
        self._own(message, 0o666, identity.uid, identity.gid)
        path = container.get("terminationMessagePath") or spec.DEFAULT_TERMINATION_MESSAGE_PATH
        binds.append(sandbox.Bind(str(message), path, False))
        return binds

    def _pass_fds(self, image: ImageConfig) -> tuple[int, ...]:
        helper = self.runtime.helper_fd
        return (helper,) if image.rootfs is not None and helper is not None else ()

    def _sandboxed(self, container: Mapping[str, Any], image: ImageConfig,
                   identity: spec.Identity, binds: list[sandbox.Bind],
                   argv: list[str]) -> list[str]:
        settings = self.runtime.settings
        working_dir = container.get("workingDir") or image.working_dir
        if image.rootfs is not None:
            return sandbox.image_root_argv(
                bwrap=settings.bwrap, rootfs=image.rootfs, binds=binds, working_dir=working_dir,
                identity=identity, as_root=self.runtime.as_root,
                helper_fd=self.runtime.helper_fd, argv=argv)
        return sandbox.bwrap_argv(
            bwrap=settings.bwrap, setpriv=settings.setpriv, root_paths=image.root_paths,
            binds=binds, working_dir=working_dir, identity=identity,
            as_root=self.runtime.as_root, argv=argv)

    def _exited(self, name: str, code: int, now: datetime) -> None:
        process = self._processes.pop(name)
        process.writer.close()
        signal_number = -code if code < 0 else None
        exit_code = 128 + signal_number if signal_number else code
        try:
            text = process.message_path.read_text(errors="replace")
        except OSError:
            text = ""
        tail = ""
        if exit_code:
            with contextlib.suppress(OSError):
                tail = message_text(process.log_path.read_bytes()[-16384:])
        message = spec.termination_message(self._container(name), text, exit_code, tail)
        self.records[name] = self.records[name].exited(now, exit_code, message, signal_number)

    def _probe(self, name: str, now: datetime) -> None:
        record = self.records[name]
        assert isinstance(record.state, Running)
        container = self._container(name)
        probe = container.get("readinessProbe")
        if probe is None:
            if not record.ready:
                self.records[name] = replace(record, ready=True)
            return
        settings = probes.ProbeSettings.of(probe)
        state = self._probes.get(name, probes.ProbeState())
        if not probes.probe_due(settings, state, record.state.started_at, now):
            return
        ok = self._check(container, probe, settings.timeout)
        state = self._probes[name] = probes.observe(settings, state, ok, now)
        if state.ready != record.ready:
            self.records[name] = replace(record, ready=state.ready)

    def _check(self, container: Mapping[str, Any], probe: Mapping[str, Any],
               timeout: float) -> bool:
        host = self.address.pod_ip if bindable(self.address.pod_ip) else "127.0.0.1"
        try:
            if "httpGet" in probe:
                return probes.http_get(probe["httpGet"], container, host, timeout)
            if "tcpSocket" in probe:
                return probes.tcp_socket(probe["tcpSocket"], container, host, timeout)
            if "exec" in probe:
                return self._exec(container, probe["exec"]["command"], timeout)
        except ValueError as error:
            log.warning("pod %s: probe: %s", self.name, error)
        return False

    def _exec(self, container: Mapping[str, Any], command: list[str], timeout: float) -> bool:
        """An exec probe: the command in a sandbox with the running container's files (its
        /tmp included), env and identity."""
        assert self._plans is not None
        image = self._image(container)
        _, env = self._plans[container["name"]]
        identity = spec.container_identity(self.pod["spec"], container, image)
        record = self.records[container["name"]]
        run_dir = self.dir / "containers" / container["name"] / str(record.run_id)
        binds = self._binds(container, run_dir, identity)
        argv = self._sandboxed(container, image, identity, binds, command)
        try:
            result = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL,
                                    capture_output=True, timeout=timeout, check=False,
                                    preexec_fn=_die_with_parent, pass_fds=self._pass_fds(image))
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0

    # -- deletion -------------------------------------------------------------------------------

    def _grace_seconds(self) -> float:
        meta = self.pod["metadata"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        return float(grace)

    def _kill_all(self, grace: float) -> None:
        """SIGTERM every container's processes, SIGKILL what outlives `grace` seconds."""
        for process in self._processes.values():
            _signal_container(process.popen.pid, signal.SIGTERM if grace else signal.SIGKILL)
        deadline = time.monotonic() + grace
        for process in self._processes.values():
            try:
                process.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_container(process.popen.pid, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.popen.pid, signal.SIGKILL)
                process.popen.wait()

    def _terminate(self) -> None:
        """Deletion: stop the containers within the grace period, report how they ended,
        then delete the pod for good (the kubelet's final, grace-0 delete)."""
        self._kill_all(self._grace_seconds())
        now = _now()
        for name in list(self._processes):
            self._exited(name, self._processes[name].popen.returncode, now)
        for name, record in self.records.items():
            if isinstance(record.state, Waiting):
                self.records[name] = replace(record, state=Terminated(
                    137, "ContainerStatusUnknown", now, now,
                    "The container could not be located when the pod was deleted"))
        self._publish()
        self.api.delete_pod(self.pod)
        self._cleanup()

    def _cleanup(self) -> None:
        """Drop the volumes (Secrets must not linger); logs stay for post-mortems."""
        shutil.rmtree(self.dir / "volumes", ignore_errors=True)
        shutil.rmtree(self.dir / "containers", ignore_errors=True)

    # -- reporting ------------------------------------------------------------------------------

    def container_samples(self) -> list[cadvisor.ContainerSample]:
        """CPU, memory and start time of each running container (for ``/metrics/cadvisor``)."""
        meta = self.pod["metadata"]
        samples = []
        for name, process in list(self._processes.items()):
            state = self.records[name].state
            if not isinstance(state, Running):
                continue
            container = self._container(name)
            limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
            cpu, rss = cadvisor.tree_usage(process.popen.pid)
            samples.append(cadvisor.ContainerSample(
                meta["namespace"], meta["name"], name, container["image"], cpu, rss,
                int(parse_quantity(limit)) if limit else 0, state.started_at.timestamp()))
        return samples

    def _publish(self) -> None:
        """Patch status when it changed; conditions keep the transition times last sent, as
        the watch may not have delivered them back yet."""
        known = (self.pod.get("status") or {}).get("conditions") or []
        sent = (self._published or {}).get("conditions") or []
        merged = {c["type"]: c for c in [*known, *sent]}
        view = {**self.pod, "status": {"conditions": list(merged.values())}}
        status = pod_status(view, list(self.records.values()), self.address,
                            self.started_at, _now())
        if status != self._published:
            self.api.patch_status(self.pod, status)
            self._published = status

    def _publish_logs(self) -> None:
        logs = []
        for name, record in self.records.items():
            current = self.dir / "logs" / name / f"{record.run_id}.log"
            entry: dict[str, Any] = {"containers": [name], "logsFile": str(current),
                                     "follow": True}
            if record.run_id:
                entry["previousLogsFile"] = str(current.with_name(f"{record.run_id - 1}.log"))
            logs.append(entry)
        self.api.apply_logs(self.pod, logs)


def _signal_container(bwrap_pid: int, sig: signal.Signals) -> None:
    """Signal the container's own processes: bubblewrap's child runs in a session of its own
    (``--new-session``), and bubblewrap exits with its status once it ends. Signalling
    bubblewrap itself would end the sandbox before the container could shut down cleanly."""
    try:
        children = Path(f"/proc/{bwrap_pid}/task/{bwrap_pid}/children").read_text().split()
    except OSError:
        children = []
    targets = [int(c) for c in children] or [bwrap_pid]
    for pid in targets:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(os.getpgid(pid), sig)
