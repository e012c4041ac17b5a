"""The operator as a local process under its ServiceAccount identity, as `make demo` and the
e2e tests run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx

from runbook_operator.devcluster.waiting import free_port, wait_for


class LocalOperator:
    """`runbook-operator run` as a subprocess with the ServiceAccount's kubeconfig, so RBAC
    applies to everything it does exactly as in a cluster."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        resync_seconds: float = 2.0,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.resync_seconds = resync_seconds
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None
        #: Its identity in the leader-election Lease (POD_ID, as the Deployment sets it): kept
        #: across restarts, as a container restarted in its pod keeps the pod's name.
        self.identity = f"local-operator-{uuid.uuid4().hex[:8]}"
        self.health_port = 0
        self.metrics_port = 0

    def start(self) -> None:
        self.health_port, self.metrics_port = free_port(), free_port()
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "POD_ID": self.identity}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "runbook_operator.cli.main", "run",
                f"--health-port={self.health_port}",
                f"--metrics-port={self.metrics_port}",
                f"--resync-interval={self.resync_seconds}",
                *self.extra_args,
            ],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for(self._healthy, "operator /healthz", timeout=60)

    def _healthy(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise AssertionError(f"operator exited; log tail:\n{self.log_tail()}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2).is_success
        except httpx.HTTPError:
            return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])
