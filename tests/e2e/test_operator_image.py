"""The operator installed as users install it: ``kubectl apply -k`` of manifests/ (an overlay
that only points the images at the ones hack/build-image.sh built with buildah), in a cluster
whose runtime runs pods of those images from their own root filesystems. The operator's pod
runs the image's entrypoint as its non-root user on a read-only root, with the in-cluster
ServiceAccount token and API address, under the manifests' RBAC, and reconciles; of the
manifests' two replicas one acts, and another (the standby, or the Deployment's replacement if
it asks first) takes over when the leader's pod is deleted; a backup Job runs the runner image
against a real PostgreSQL."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.runtime.sandbox import host_readlink, resolve_in_root
from runbook_operator.devcluster.services import PostgresServer
from runbook_operator.devcluster.waiting import wait_for
from tests.support.builders import policy_body, postgres_pvc_policy
from tests.support.images import (
    OPERATOR_ACCOUNT,
    OPERATOR_NAMESPACE,
    PodMetrics,
    assert_reconciles,
    built_images,
    fresh_namespace,
    image_reference,
    image_size_mb,
    operator_pod,
    operator_pods,
    overlay,
    token_subject,
)
from tests.support.kube import BACKUP_POLICIES, backup_now, read_cronjob, wait_run
from tests.support.leadership import lease_holder, work_done
from tests.support.operator_metrics import policy_reconciles

TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
IMAGE_PYTHON = b"/opt/venv/bin/python3"  # the entrypoint script's interpreter


@pytest.fixture(scope="module")
def images() -> Path:
    return built_images()


@pytest.fixture(scope="module")
def installed(images: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(workdir=tmp_path_factory.mktemp("image-cluster"),
                      built_images=images) as cluster:
        cluster.kubectl("apply", "--server-side", "-k",
                        str(overlay(tmp_path_factory.mktemp("overlay"), images)))
        yield cluster


@pytest.fixture(scope="module")
def admin(installed: LocalCluster) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(installed.admin_kubeconfig))


@pytest.fixture
def namespace(admin: client.ApiClient) -> Iterator[str]:
    with fresh_namespace(admin, "image") as name:
        yield name


def _operator_process(pod: dict[str, Any]) -> Path:
    """/proc/PID of the pod's operator: the image's Python (not the sandbox around it) with
    an environment that names the pod."""
    hostname = f"HOSTNAME={pod['metadata']['name']}".encode()

    def found() -> Path | None:
        for proc in Path("/proc").iterdir():
            try:
                if (proc.name.isdigit()
                        and (proc / "cmdline").read_bytes().startswith(IMAGE_PYTHON + b"\0")
                        and hostname in (proc / "environ").read_bytes().split(b"\0")):
                    return proc
            except OSError:
                continue
        return None

    return wait_for(found, "the operator pod's process")


def _status_ids(proc: Path) -> dict[str, list[str]]:
    lines = (proc / "status").read_text().splitlines()
    return {k: v.split() for k, v in (line.split(":", 1) for line in lines) if k in ("Uid", "Gid")}


#: The issue's goal for the operator image, scikit-learn included (anomaly rules import it).
OPERATOR_IMAGE_LIMIT_MB = 400


def test_the_operator_image_stays_under_its_size_goal(
    images: Path, figures: dict[str, list[float]],
) -> None:
    sizes = {target: image_size_mb(images, target) for target in ("operator", "runner")}
    for target, size in sizes.items():
        figures.setdefault(f"{target} image size (MB, as buildah reports it)", []).append(size)
    assert sizes["operator"] < OPERATOR_IMAGE_LIMIT_MB, sizes


def test_the_operator_runs_from_its_image_as_its_user_with_the_in_cluster_identity(
    installed: LocalCluster, admin: client.ApiClient, images: Path,
) -> None:
    pod = operator_pod(admin)
    (container,) = pod["spec"]["containers"]
    assert container["image"] == image_reference(images, "operator")
    assert pod["spec"]["serviceAccountName"] == OPERATOR_ACCOUNT

    proc = _operator_process(pod)
    assert _status_ids(proc) == {"Uid": ["65532"] * 4, "Gid": ["65532"] * 4}
    argv = (proc / "cmdline").read_bytes().split(b"\0")
    assert argv[:2] == [IMAGE_PYTHON, b"/opt/venv/bin/runbook-operator"]
    assert argv[2] == b"run"  # the manifests' args after the image's entrypoint
    root = proc / "root"
    assert (root / "opt/venv/bin/runbook-operator").is_file()
    assert not (root / "bin/sh").exists()  # the distroless-like base: no shell
    assert not (root / "opt/venv/bin/pip").exists()

    environ = dict(e.split(b"=", 1) for e in (proc / "environ").read_bytes().split(b"\0") if e)
    assert b"KUBECONFIG" not in environ
    host, port = installed.server.removeprefix("https://").rsplit(":", 1)
    assert (environ[b"KUBERNETES_SERVICE_HOST"], environ[b"KUBERNETES_SERVICE_PORT"]) == (
        host.encode(), port.encode())
    # The standard path, through the image's own symlinks (/var/run may be /run).
    token_dir = resolve_in_root(TOKEN_DIR, host_readlink(str(root)))
    token = (root / token_dir.lstrip("/") / "token").read_text()
    assert token_subject(token) == (
        f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_ACCOUNT}")
    assert (root / token_dir.lstrip("/") / "namespace").read_text() == OPERATOR_NAMESPACE
    ca = (root / token_dir.lstrip("/") / "ca.crt").read_text()
    assert ca.startswith("-----BEGIN CERTIFICATE-----")

    mounts = {fields[4]: fields[5].split(",") for fields in
              (line.split() for line in (proc / "mountinfo").read_text().splitlines())}
    for path in ("/usr", "/opt", "/etc", token_dir):
        assert "ro" in mounts[path], (path, mounts[path])
    assert "rw" in mounts["/tmp"]  # the emptyDir the manifests mount for the read-only root


def test_the_operator_pod_reconciles_under_the_manifests_rbac(
    admin: client.ApiClient, namespace: str,
) -> None:
    operator_pod(admin)
    assert_reconciles(admin, namespace)


#: A deleted leader releases its Lease on SIGTERM; the standby looks every 2 s, and the
#: Deployment's replacement replica at its start: either may take it.
HANDOVER_DEADLINE = 30


def test_of_the_two_replicas_one_acts_and_another_takes_over_from_a_deleted_leader(
    admin: client.ApiClient, namespace: str, figures: dict[str, list[float]],
) -> None:
    pods = {pod["metadata"]["name"]: PodMetrics(pod) for pod in operator_pods(admin, 2)}
    leader_name = wait_for(lambda: lease_holder(admin) in pods and lease_holder(admin),
                           "one of the two replicas to hold the Lease")
    (standby,) = (pod for name, pod in pods.items() if name != leader_name)
    BACKUP_POLICIES.create(admin, namespace, policy_body("before"))
    BACKUP_POLICIES.wait_ready(admin, namespace, "before", timeout=120)
    wait_for(lambda: policy_reconciles(pods[leader_name], namespace, "before") >= 1,
             "the leader's reconcile of the policy")
    assert set(work_done(standby).values()) == {0.0}, work_done(standby)

    deleted = time.monotonic()
    client.CoreV1Api(admin).delete_namespaced_pod(leader_name, OPERATOR_NAMESPACE)
    new_leader = wait_for(lambda: lease_holder(admin) not in (None, "", leader_name)
                          and lease_holder(admin), "another replica to take the Lease over",
                          timeout=HANDOVER_DEADLINE)
    figures.setdefault("image: Lease taken over after the leader's pod was deleted (s)",
                       []).append(time.monotonic() - deleted)
    replicas = wait_for(lambda: {pod["metadata"]["name"]: PodMetrics(pod)
                                 for pod in operator_pods(admin, 2)
                                 if pod["metadata"]["name"] != leader_name},
                        "the standby and the Deployment's replacement replica")
    assert new_leader in replicas and standby.name in replicas, (new_leader, list(replicas))
    BACKUP_POLICIES.create(admin, namespace, policy_body("after"))
    BACKUP_POLICIES.wait_ready(admin, namespace, "after", timeout=120)
    assert policy_reconciles(replicas[new_leader], namespace, "after") >= 1
    for name, replica in replicas.items():
        if name != new_leader:
            assert set(work_done(replica).values()) == {0.0}, (name, work_done(replica))


def test_a_backup_job_runs_the_runner_image_against_a_real_database(
    installed: LocalCluster, admin: client.ApiClient, namespace: str, images: Path,
    postgres: PostgresServer,
) -> None:
    operator_pod(admin)
    database = f"image_{uuid.uuid4().hex[:8]}"
    postgres.create_database(database)
    postgres.psql("CREATE TABLE orders (id int primary key); INSERT INTO orders VALUES (1);",
                  database)
    core = client.CoreV1Api(admin)
    for name, data in {"db": {"password": postgres.password},
                       "backup-key": {"key": "B" * 43 + "="}}.items():
        core.create_namespaced_secret(namespace, client.V1Secret(
            metadata=client.V1ObjectMeta(name=name), string_data=data))
    claim = installed.create_claim(namespace, "backups")
    BACKUP_POLICIES.create(admin, namespace, postgres_pvc_policy(
        "orders", postgres, database,
        encryption={"keySecretRef": {"name": "backup-key", "key": "key"}}))
    BACKUP_POLICIES.wait_ready(admin, namespace, "orders", timeout=120)
    cronjob = read_cronjob(admin, namespace, "orders-backup")
    assert cronjob is not None
    (container,) = cronjob.spec.job_template.spec.template.spec.containers
    assert container.image == image_reference(images, "runner")

    job = backup_now(admin, namespace, "orders", "image-test")
    entry = wait_run(admin, namespace, "orders", job, timeout=240)
    assert entry["outcome"] == "Succeeded", entry
    assert BACKUP_POLICIES.status(admin, namespace, "orders")["lastBackup"]["verified"]
    stored = [p for p in claim.rglob("*") if p.is_file()]
    assert stored and all(p.stat().st_size > 0 for p in stored), stored
