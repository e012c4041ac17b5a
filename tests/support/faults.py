"""Faults the e2e tests inject into the control plane, with the operator watched throughout."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.waiting import wait_for


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
