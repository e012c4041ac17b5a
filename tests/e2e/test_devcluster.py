"""The local control plane harness: the cluster the other e2e tests and ``make demo`` stand on.

Every wait has a deadline (``kubectl wait --timeout``); nothing sleeps to synchronise.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from kubernetes.utils import parse_quantity

from runbook_operator.devcluster.cluster import (
    EXIT_CODE_ANNOTATION,
    NODE_NAME,
    TERMINATION_MESSAGE_ANNOTATION,
    ClusterError,
    LocalCluster,
)

pytestmark = pytest.mark.e2e

K8S_VERSION = "v1.33.13"
WAIT = "--timeout=90s"


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """A bare cluster of this file's own: the session one in conftest has the operator installed."""
    with LocalCluster() as c:
        yield c


@pytest.fixture
def namespace(cluster: LocalCluster) -> Iterator[str]:
    """A fresh namespace whose ``default`` ServiceAccount exists, so pods can be admitted."""
    name = f"devcluster-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", name, WAIT)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def _job(name: str, annotations: dict[str, str] | None = None) -> str:
    return yaml.safe_dump({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": annotations or {}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": "busybox", "command": ["sh", "-c", "echo hi"]}
                    ],
                },
            },
        },
    })


def _job_pod(cluster: LocalCluster, namespace: str, job: str) -> dict:
    pods = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-l", f"job-name={job}",
                                      "-o", "json").stdout)["items"]
    assert len(pods) == 1, pods
    return pods[0]


def test_apiserver_readyz(cluster: LocalCluster) -> None:
    assert cluster.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"


def test_server_version(cluster: LocalCluster) -> None:
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == K8S_VERSION
    assert version["clientVersion"]["gitVersion"] == K8S_VERSION


def test_kwok_node_is_ready_and_schedulable(cluster: LocalCluster) -> None:
    cluster.kubectl("wait", "--for=condition=Ready", f"node/{NODE_NAME}", WAIT)
    node = json.loads(cluster.kubectl("get", "node", NODE_NAME, "-o", "json").stdout)
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert not node["spec"].get("taints")
    allocatable = node["status"]["allocatable"]
    assert parse_quantity(allocatable["pods"]) >= 100
    assert parse_quantity(allocatable["cpu"]) >= 8


def test_job_completes_on_kwok_node(cluster: LocalCluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_job("hello"))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Complete", "job/hello", WAIT)

    pod = _job_pod(cluster, namespace, "hello")
    assert pod["spec"]["nodeName"] == NODE_NAME
    assert pod["status"]["phase"] == "Succeeded"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0


def test_job_fails_with_exit_code_and_termination_message(
    cluster: LocalCluster, namespace: str
) -> None:
    """The harness's pod-complete stage scripts a failed run, as a kubelet would report it."""
    message = json.dumps({"ok": False, "error": "pg_dump: connection refused"})
    job = _job("broken", {EXIT_CODE_ANNOTATION: "3", TERMINATION_MESSAGE_ANNOTATION: message})
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=job)
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Failed", "job/broken", WAIT)

    pod = _job_pod(cluster, namespace, "broken")
    assert pod["status"]["phase"] == "Failed"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3
    assert terminated["reason"] == "Error"
    assert json.loads(terminated["message"]) == json.loads(message)


def test_service_account_kubeconfig_is_least_privilege(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    cluster.kubectl("create", "serviceaccount", "robot", "-n", namespace)
    kubeconfig = cluster.service_account_kubeconfig(namespace, "robot", tmp_path / "robot.kcfg")

    whoami = cluster.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}",
                             kubeconfig=kubeconfig)
    assert whoami.stdout == f"system:serviceaccount:{namespace}:robot"

    can_i = cluster.kubectl("auth", "can-i", "list", "secrets", "-A", kubeconfig=kubeconfig,
                            check=False)
    assert (can_i.returncode, can_i.stdout.strip()) == (1, "no")

    denied = cluster.kubectl("get", "secrets", "-A", kubeconfig=kubeconfig, check=False)
    assert denied.returncode != 0
    assert "Forbidden" in denied.stderr

    # The same request on the wire: RBAC answers 403 to the token.
    config = yaml.safe_load(kubeconfig.read_text())
    token = config["users"][0]["user"]["token"]
    ca = tmp_path / "ca.crt"
    ca.write_bytes(base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]))
    response = httpx.get(f"{cluster.server}/api/v1/secrets",
                         headers={"Authorization": f"Bearer {token}"},
                         verify=ssl.create_default_context(cafile=str(ca)))
    assert response.status_code == 403


def test_start_failure_reports_component_log(tmp_path: Path) -> None:
    """A component that dies at start surfaces its own log in the error, not just a timeout."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    etcd = bin_dir / "etcd"
    etcd.write_text("#!/bin/sh\necho 'etcd: simulated fatal misconfiguration' >&2\nexit 1\n")
    etcd.chmod(0o755)

    with pytest.raises(ClusterError, match="etcd: simulated fatal misconfiguration"):
        LocalCluster(tmp_path / "work", bin_dir, start_timeout=30).start()


def test_cli_up_status_down(cluster: LocalCluster, tmp_path: Path) -> None:
    """``make cluster-up`` path: processes outlive the CLI, which starts them in a network
    namespace of their own (inside this session's) with the gateway; this process, outside
    it, reaches the API server and the gateway only through their relays; ``down`` stops
    them all."""
    state_dir = tmp_path / "state"
    cli = [sys.executable, "-m", "runbook_operator.devcluster"]
    bin_args = ["--bin-dir", str(cluster.bin_dir)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args, "--state-dir", str(state_dir)], capture_output=True,
                              text=True, timeout=300, check=False)

    up = run("up", *bin_args)
    try:
        assert up.returncode == 0, up.stderr
        kubeconfig = state_dir / "kubeconfigs" / "admin-host.kubeconfig"
        assert f"export KUBECONFIG={kubeconfig}" in up.stdout.splitlines()
        state = json.loads((state_dir / "state.json").read_text())
        pids = [p["pid"] for p in state["processes"].values()]
        assert list(state["processes"]) == ["etcd", "kube-apiserver", "kube-controller-manager",
                                            "kube-scheduler", "kwok", "runtime",
                                            "relay-kube-apiserver", "relay-gateway"]
        assert state["network"]["isolated"]

        status = run("status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert ": ready" in status.stdout

        nodes = cluster.kubectl("get", "nodes", "-o", "name", kubeconfig=kubeconfig)
        assert nodes.stdout.strip() == f"node/{NODE_NAME}"
        direct = cluster.kubectl(  # its own port is not on this loopback
            "get", "nodes", "--server", f"https://127.0.0.1:{state['ports']['kube-apiserver']}",
            "--request-timeout=10s", kubeconfig=kubeconfig, check=False)
        assert direct.returncode != 0, direct.stdout
        gateway = httpx.get(f"http://127.0.0.1:{state['network']['relays']['gateway']}/",
                            timeout=10)
        assert gateway.status_code == 404  # Traefik, with no route yet
    finally:
        down = run("down")
    assert down.returncode == 0, down.stderr
    assert not state_dir.exists()
    for pid in pids:
        assert not _alive(pid), f"pid {pid} survived down"


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live (non-zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_env_points_at_cluster(cluster: LocalCluster) -> None:
    env = cluster.env()
    assert env["KUBECONFIG"] == str(cluster.admin_kubeconfig)
    result = subprocess.run(["kubectl", "get", "ns", "default", "-o", "name"], env=env,
                            capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "namespace/default"
    assert env["PATH"].split(os.pathsep)[0] == str(cluster.bin_dir)
