"""Faults the e2e tests inject into the control plane, with the operator watched throughout."""

from __future__ import annotations

import contextlib
import signal
import time
from base64 import b64encode
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from runbook_operator.api.common import GROUP, VERSION
from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.waiting import wait_for
from tests.support.leadership import lease_holder


def api_server_outage(cluster: LocalCluster, operator: LocalOperator, seconds: float,
                      during: Callable[[], None] = lambda: None) -> float:
    """Stop kube-apiserver and etcd for `seconds` and start them again; return when
    (monotonic) they were started again (the call returns once Jobs run again). `during` runs
    once they are down.
    Every second of the outage the operator must still be the same process and answer
    /healthz: an outage must neither crash it nor make a liveness probe restart it."""
    assert operator.process is not None
    pid = operator.process.pid
    cluster.stop_apiserver(with_etcd=True)
    back_at = time.monotonic() + seconds
    failures: list[str] = []

    def outage_over() -> bool:
        """Checks the operator once; true when the outage has lasted `seconds`."""
        if not operator.alive():
            failures.append(f"the operator exited:\n{operator.log_tail()}")
            return True
        try:
            health = httpx.get(f"http://127.0.0.1:{operator.health_port}/healthz", timeout=5)
        except httpx.HTTPError as error:
            failures.append(f"/healthz did not answer: {error!r}")
        else:
            if not health.is_success:
                failures.append(f"/healthz answered {health.status_code}")
        return time.monotonic() >= back_at

    try:
        during()
        wait_for(outage_over, f"{seconds:.0f} s of outage", timeout=seconds + 60, interval=1)
    finally:
        restarted = time.monotonic()
        cluster.start_apiserver(with_etcd=True)
    assert not failures, failures[0]
    assert operator.alive() and operator.process.pid == pid
    return restarted


@contextlib.contextmanager
def patient_operator(api: client.ApiClient, session_operator: LocalOperator, kubeconfig: Path,
                     log_path: Path, resync_seconds: float = 2.0,
                     extra_args: tuple[str, ...] = ()) -> Iterator[LocalOperator]:
    """An instance under a 10-minute Lease, once it leads, in place of the session's operator
    (stopped, since it would hold the Lease; `running_operator` starts it again for later
    tests); stopped after the block. A restart of kube-apiserver cannot end its term."""
    session_operator.stop()
    patient = LocalOperator(kubeconfig, log_path, resync_seconds=resync_seconds,
                            extra_args=("--lease-duration=600", *extra_args))
    patient.start()
    try:
        wait_for(lambda: lease_holder(api) == patient.identity, "the instance to lead",
                 timeout=60)
        yield patient
    finally:
        patient.stop()


#: An etcd key outside kube-apiserver's /registry prefix: writing it moves etcd's revision
#: without touching any object.
REVISION_MARKER = "/runbook-tests/revision-marker"


@contextlib.contextmanager
def frozen(operator: LocalOperator) -> Iterator[None]:
    """The operator stopped (SIGSTOP) for the block and continued after it: what the block
    does to the cluster happens while the operator can neither see nor answer it."""
    assert operator.process is not None
    operator.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        operator.process.send_signal(signal.SIGCONT)


def restart_apiserver_past_watches(cluster: LocalCluster) -> None:
    """Restart kube-apiserver, etcd kept running, and while it is down write
    :data:`REVISION_MARKER`: etcd's revision moves past every one a client has seen. The
    restarted server's watch caches start at etcd's revision, so every resourceVersion handed
    out before the restart is older than all they hold: a watch resumed from one is answered
    410 Gone."""
    cluster.stop_apiserver()
    etcd = f"http://127.0.0.1:{cluster.ports['etcd']}"
    put = {"key": b64encode(REVISION_MARKER.encode()).decode(),
           "value": b64encode(str(time.time()).encode()).decode()}
    httpx.post(f"{etcd}/v3/kv/put", json=put, timeout=10).raise_for_status()
    cluster.start_apiserver()


def watch_expired(api: client.ApiClient, plural: str, resource_version: str) -> bool:
    """Whether the API server answers a cluster-wide watch of the runbook kind `plural` from
    `resource_version` with 410 Gone (any other error is raised: 429 while a restarted
    server's watch cache still fills)."""
    objects = client.CustomObjectsApi(api).list_cluster_custom_object
    events = watch.Watch().stream(objects, GROUP, VERSION, plural,
                                  resource_version=resource_version, timeout_seconds=1)
    with contextlib.closing(events):
        try:
            next(events, None)
        except ApiException as error:
            if error.status == 410:
                return True
            raise
    return False
