"""One real control plane per test session, the operator installed from manifests/ and run
under its own ServiceAccount identity; a fresh namespace per test. Real servers for backups,
one of each per session on free loopback ports: PostgreSQL and MariaDB from Debian's packages
(hack/install-test-deps.sh), MinIO built from its Go module (hack/build-minio.sh, cached).

The whole session runs inside a network namespace of its own (``pytest_configure`` enters it
before any test or thread starts; :mod:`runbook_operator.devcluster.network`): the clusters,
the services, the operator, the in-test receivers and every request a test sends live there,
where the pod network is local and nothing has a route out. Tests that need pods with
reachable addresses (the gateway, the pod network) fail, saying why, where no namespace can be
made."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from kubernetes import client, config
from kubernetes.dynamic import DynamicClient

from runbook_operator.devcluster import gateway, network
from runbook_operator.devcluster.cluster import LocalCluster, build_scripts
from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.prometheus import PrometheusServer
from runbook_operator.devcluster.services import MariaDBServer, MinioServer, PostgresServer
from runbook_operator.devcluster.waiting import wait_for
from tests.support import canary, secret_hygiene
from tests.support.alerting import OPERATOR_EXTERNAL_URL
from tests.support.images import builds_for

REPO = Path(__file__).resolve().parents[2]
OPERATOR_NAMESPACE = "runbook-system"
OPERATOR_ACCOUNT = "runbook-operator"


def pytest_configure(config: pytest.Config) -> None:
    net = network.enter(prepare=[*build_scripts(), *builds_for(config.args)])
    config.stash[NETWORK] = net


def pytest_report_header(config: pytest.Config) -> str:
    return f"devcluster network: {config.stash[NETWORK].note}"


NETWORK = pytest.StashKey[network.Network]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.path):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory,
            request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    """The session's cluster; at its end, no test Secret's value may be found in anything the
    operator wrote during the session (tests/support/secret_hygiene.py)."""
    with LocalCluster(workdir=tmp_path_factory.mktemp("cluster")) as local:
        local.kubectl("apply", "--server-side", "-k", str(REPO / "hack" / "local-install"))
        local.wait_established("crd", "-l", "app.kubernetes.io/part-of=runbook-operator")
        local.kubectl("api-resources")  # refreshes kubectl's discovery cache (categories)
        recorder = secret_hygiene.Recorder(
            config.new_client_from_config(config_file=str(local.admin_kubeconfig)))
        recorder.start()
        yield local
        recorder.stop()
        logs = secret_hygiene.operator_logs(tmp_path_factory.getbasetemp())
        leaks = secret_hygiene.find_leaks(recorder.secrets, recorder.haystacks | logs)
        request.config.stash[HYGIENE] = (
            f"secret hygiene: {len(recorder.secrets)} Secret values searched for in "
            f"{len(recorder.haystacks)} object versions and {len(logs)} operator logs, "
            f"{len(leaks)} found")
        assert not leaks, "Secret values leaked:\n" + "\n".join(map(str, leaks))


@pytest.fixture(scope="session")
def gateway_address(cluster: LocalCluster, request: pytest.FixtureRequest) -> str:
    """Traefik installed in the session's cluster (once): its pod IP."""
    net = request.config.stash[NETWORK]
    assert net.isolated, f"the gateway needs the cluster's network namespace: {net.note}"
    return gateway.install(cluster)


@pytest.fixture(scope="session")
def gateway_prometheus(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
                       ) -> Iterator[PrometheusServer]:
    """One Prometheus per session scraping the cluster's pods and the gateway (CanaryRollout
    analysis asks it)."""
    with canary.gateway_prometheus(cluster, tmp_path_factory.mktemp("prometheus")) as server:
        yield server


@pytest.fixture(scope="session")
def operator_kubeconfig(cluster: LocalCluster, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("operator") / "kubeconfig"
    return Path(cluster.service_account_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_ACCOUNT, path))


@pytest.fixture(scope="session")
def operator(operator_kubeconfig: Path, tmp_path_factory) -> Iterator[LocalOperator]:
    process = LocalOperator(
        operator_kubeconfig, tmp_path_factory.mktemp("operator-log") / "operator.log",
        extra_args=(f"--external-url={OPERATOR_EXTERNAL_URL}",),
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture
def running_operator(operator: LocalOperator) -> LocalOperator:
    """The session's operator, restarted if an earlier test killed it."""
    if not operator.alive():
        operator.start()
    return operator


@pytest.fixture(scope="session")
def api(cluster: LocalCluster) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(cluster.admin_kubeconfig))


@pytest.fixture(scope="session")
def dynamic(api: client.ApiClient) -> DynamicClient:
    return DynamicClient(api)


@pytest.fixture
def namespace(api: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    name = f"{slug}-{uuid.uuid4().hex[:5]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(
        lambda: core.list_namespaced_service_account(name).items,
        "default ServiceAccount in the test namespace",
    )
    yield name
    core.delete_namespace(name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """On failure, attach the operator's recent log to the report: it says why."""
    outcome = yield
    report = outcome.get_result()
    process = item.funcargs.get("running_operator") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(process, LocalOperator):
        report.sections.append(("operator log (tail)", process.log_tail(80)))


HYGIENE = pytest.StashKey[str]()
S = TypeVar("S", PostgresServer, MariaDBServer, MinioServer)
START_TIMES = pytest.StashKey[dict[str, float]]()
FIGURES = pytest.StashKey[dict[str, list[float]]]()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> dict[str, list[float]]:
    """Measurements a test reports (never asserts): printed at the end of the session."""
    return request.config.stash.setdefault(FIGURES, {})


def _started(server: S, request: pytest.FixtureRequest) -> S:
    started = time.monotonic()
    server.start()
    request.config.stash.setdefault(START_TIMES, {})[type(server).__name__] = (
        time.monotonic() - started
    )
    return server


@pytest.fixture(scope="session")
def postgres(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    server = _started(PostgresServer(), request)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mariadb(request: pytest.FixtureRequest) -> Iterator[MariaDBServer]:
    server = _started(MariaDBServer(), request)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def minio(request: pytest.FixtureRequest) -> Iterator[MinioServer]:
    server = _started(MinioServer(), request)
    yield server
    server.stop()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if HYGIENE in config.stash:
        terminalreporter.write_line(config.stash[HYGIENE])
    for name, values in sorted(config.stash.get(FIGURES, {}).items()):
        shown = ", ".join(f"{v:.2f}" for v in values)
        terminalreporter.write_line(f"{name}: {shown}")
    times = config.stash.get(START_TIMES, {})
    if times:
        terminalreporter.write_line(
            "test services started in: "
            + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in sorted(times.items()))
        )
