"""The operator's API client: credentials as kubectl finds them, requests and their errors
against a real local HTTP server, and the client-side rate limit (a token bucket on a fake
clock)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from runbook_operator.integrations.kubeapi import (
    ApiClient,
    ApiError,
    ApiResource,
    ConfigError,
    Conflict,
    Connection,
    Discovery,
    Invalid,
    NotFound,
    Token,
    TokenBucket,
    UnknownKind,
    in_cluster_connection,
    kubeconfig_connection,
    load_connection,
)
from runbook_operator.integrations.kubernetes import Kube, connect


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_goes_at_once_and_the_next_request_waits_one_refill() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=20, burst=30, clock=clock)
    assert [bucket.reserve() for _ in range(30)] == [0.0] * 30
    assert bucket.reserve() == pytest.approx(1 / 20)
    assert bucket.reserve() == pytest.approx(2 / 20)


def test_requests_beyond_the_burst_are_spaced_at_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=1, clock=clock)
    delays = [bucket.reserve() for _ in range(5)]
    assert delays == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def test_time_refills_the_bucket_but_never_beyond_the_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    for _ in range(5):
        bucket.reserve()
    clock.now += 0.35
    assert [bucket.reserve() for _ in range(3)] == [0.0] * 3
    assert bucket.reserve() == pytest.approx(0.05)
    clock.now += 3600
    assert [bucket.reserve() for _ in range(5)] == [0.0] * 5
    assert bucket.reserve() == pytest.approx(0.1)


def test_a_clock_going_back_adds_no_tokens() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=1, clock=clock)
    bucket.reserve()
    clock.now -= 50
    assert bucket.reserve() == pytest.approx(0.1)


@given(rate=st.floats(0.5, 1000), burst=st.integers(1, 200),
       gaps=st.lists(st.floats(0, 2), min_size=1, max_size=300))
def test_no_window_admits_more_than_the_burst_plus_the_rate_times_its_length(
        rate: float, burst: int, gaps: list[float]) -> None:
    """Whatever the arrivals, the requests let through by time t (arrival plus delay) from
    the start never exceed burst + rate * t: the limit client-go's bucket promises."""
    clock = Clock()
    start = clock.now
    bucket = TokenBucket(rate=rate, burst=burst, clock=clock)
    released = []
    for gap in gaps:
        clock.now += gap
        released.append(clock.now + bucket.reserve())
    for count, at in enumerate(sorted(released), start=1):
        assert count <= burst + rate * (at - start) + 1e-6


@pytest.mark.parametrize(("rate", "burst"), [(0, 10), (-1, 10), (10, 0)])
def test_a_bucket_that_could_never_admit_is_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst)


def test_qps_zero_means_no_limit(tmp_path: Path) -> None:
    config = write_kubeconfig(tmp_path / "config", {"token": "t"})
    assert connect(0, 10, kubeconfig=str(config)).client.bucket is None
    limited = connect(25, 40, kubeconfig=str(config)).client.bucket
    assert limited is not None and (limited.rate, limited.burst) == (25, 40)


def write_kubeconfig(path: Path, user: dict[str, Any], server: str = "https://k8s:6443",
                     cluster: dict[str, Any] | None = None) -> Path:
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "dev",
        "clusters": [{"name": "c", "cluster": {"server": server, **(cluster or {})}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "u",
                                                  "namespace": "team"}}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_kubeconfig_gives_server_credentials_and_namespace(tmp_path: Path) -> None:
    pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    path = write_kubeconfig(tmp_path / "config", {
        "client-certificate-data": base64.b64encode(pem).decode(),
        "client-key": "keys/client.key",
    }, server="https://k8s:6443/", cluster={"certificate-authority": "ca.crt"})
    connection = kubeconfig_connection([path])
    assert connection.server == "https://k8s:6443"
    assert connection.cert_data == pem
    assert connection.ca_path == str(tmp_path / "ca.crt")
    assert connection.key_path == str(tmp_path / "keys" / "client.key")
    assert connection.namespace == "team"
    assert connection.headers() == {}


def test_the_first_kubeconfig_to_name_a_value_wins(tmp_path: Path) -> None:
    first = write_kubeconfig(tmp_path / "first", {"token": "first-token"})
    second = write_kubeconfig(tmp_path / "second", {"token": "second-token"})
    connection = kubeconfig_connection([tmp_path / "absent", first, second])
    assert connection.headers() == {"Authorization": "Bearer first-token"}


def test_a_kubeconfig_without_a_current_context_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "clusters": []}))
    with pytest.raises(ConfigError, match="no current context"):
        kubeconfig_connection([path])
    write_kubeconfig(path, {"token": "t"})
    config = yaml.safe_load(path.read_text())
    config["contexts"][0]["context"]["cluster"] = "elsewhere"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="elsewhere"):
        kubeconfig_connection([path])


def test_an_explicit_kubeconfig_wins_over_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "env", {"token": "env"})))
    chosen = write_kubeconfig(tmp_path / "chosen", {"token": "chosen"})
    assert load_connection(str(chosen)).headers()["Authorization"] == "Bearer chosen"
    assert load_connection().headers()["Authorization"] == "Bearer env"


def test_a_service_account_token_is_read_again_after_the_kubelet_rotates_it(
        tmp_path: Path) -> None:
    for name, text in [("token", "first\n"), ("namespace", "runbook-system"), ("ca.crt", "")]:
        (tmp_path / name).write_text(text)
    connection = in_cluster_connection(
        {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}, tmp_path)
    assert connection.server == "https://[fd00::1]:443"
    assert connection.namespace == "runbook-system"
    assert connection.headers()["Authorization"] == "Bearer first"
    (tmp_path / "token").write_text("second")
    assert connection.token is not None
    connection.token.refresh()
    assert connection.headers()["Authorization"] == "Bearer second"


def test_a_token_file_is_reread_once_a_minute(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "token"
    path.write_text("first")
    token = Token(path=path, clock=clock)
    assert token.value() == "first"
    path.write_text("second")
    clock.now += 59
    assert token.value() == "first"
    clock.now += 2
    assert token.value() == "second"


def test_an_exec_plugin_token_is_asked_for_when_refused(tmp_path: Path) -> None:
    """A kubeconfig `exec` plugin (as cloud providers ship) runs with KUBERNETES_EXEC_INFO and
    its env; its ExecCredential's token is used until refused."""
    calls = tmp_path / "calls"
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        "import json, os, sys\n"
        f"open({str(calls)!r}, 'a').write(os.environ['KUBERNETES_EXEC_INFO'] + '\\n')\n"
        "print(json.dumps({'kind': 'ExecCredential', 'status': {'token': os.environ['TOKEN'],"
        " 'expirationTimestamp': '2999-01-01T00:00:00Z'}}))\n")
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
                     "args": [str(plugin)], "env": [{"name": "TOKEN", "value": "from-plugin"}]}}
    connection = kubeconfig_connection([write_kubeconfig(tmp_path / "config", user)])
    assert connection.headers()["Authorization"] == "Bearer from-plugin"
    assert connection.headers()["Authorization"] == "Bearer from-plugin"
    assert len(calls.read_text().splitlines()) == 1
    assert json.loads(calls.read_text())["spec"] == {"interactive": False}
    assert connection.token is not None and connection.token.expiration is not None
    connection.token.refresh()
    connection.headers()
    assert len(calls.read_text().splitlines()) == 2


def test_an_exec_plugin_that_fails_says_so(tmp_path: Path) -> None:
    user = {"exec": {"command": sys.executable, "args": ["-c", "import sys; sys.exit(3)"]}}
    connection = kubeconfig_connection([write_kubeconfig(tmp_path / "config", user)])
    with pytest.raises(ConfigError, match="exited 3"):
        connection.headers()


def test_paths_of_namespaced_and_cluster_scoped_resources() -> None:
    rules = ApiResource("runbook.dev/v1alpha1", "alertrules", namespaced=True)
    assert rules.path() == "/apis/runbook.dev/v1alpha1/alertrules"
    assert rules.path("shop", "p99", "status") == (
        "/apis/runbook.dev/v1alpha1/namespaces/shop/alertrules/p99/status")
    nodes = ApiResource("v1", "nodes", namespaced=False)
    assert nodes.path("ignored", "kwok-0") == "/api/v1/nodes/kwok-0"


class FakeApiServer(BaseHTTPRequestHandler):
    """A real HTTP server with the API's answers for a few paths; records what it was sent."""

    seen: list[dict[str, Any]] = []
    answers: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
    accepted_token = "good"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.seen.append({"method": self.command, "path": self.path,
                          "auth": self.headers.get("Authorization"),
                          "type": self.headers.get("Content-Type"),
                          "body": json.loads(self.rfile.read(length)) if length else None})
        if self.headers.get("Authorization") != f"Bearer {self.accepted_token}":
            status, body = 401, {"kind": "Status", "message": "Unauthorized"}
        else:
            status, body = self.answers.get((self.command, self.path.split("?")[0]),
                                            (404, {"kind": "Status", "message": "not found"}))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def api_server() -> Iterator[str]:
    FakeApiServer.seen, FakeApiServer.answers = [], {
        ("GET", "/apis/runbook.dev/v1alpha1"): (200, {"resources": [
            {"name": "alertrules", "kind": "AlertRule", "namespaced": True},
            {"name": "alertrules/status", "kind": "AlertRule", "namespaced": True}]}),
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApiServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


def test_a_refused_token_is_reloaded_and_the_request_tried_once_more(
        api_server: str, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("stale")
    client = ApiClient(Connection(server=api_server, token=Token(path=token_file)))
    assert client.connection.headers()["Authorization"] == "Bearer stale"
    FakeApiServer.answers[("GET", "/api/v1/namespaces/shop/secrets/s")] = (200, {"data": {}})
    token_file.write_text("good")
    assert client.request("GET", "/api/v1/namespaces/shop/secrets/s") == {"data": {}}
    assert [s["auth"] for s in FakeApiServer.seen] == ["Bearer stale", "Bearer good"]
    token_file.write_text("revoked")
    client.connection.token.refresh()  # type: ignore[union-attr]
    with pytest.raises(ApiError) as refused:
        client.request("GET", "/api/v1/namespaces/shop/secrets/s")
    assert refused.value.status == 401 and refused.value.message == "Unauthorized"


def test_error_answers_raise_their_own_types_with_the_servers_message(api_server: str) -> None:
    kube = Kube(ApiClient(Connection(server=api_server, token=Token(fixed="good"))))
    rule = "/apis/runbook.dev/v1alpha1/namespaces/shop/alertrules/p99"
    assert kube.get("runbook.dev/v1alpha1", "AlertRule", "p99", "shop") is None
    FakeApiServer.answers[("PATCH", rule)] = (
        422, {"kind": "Status", "message": "spec.for: Invalid value"})
    with pytest.raises(Invalid) as invalid:
        kube.apply({"apiVersion": "runbook.dev/v1alpha1", "kind": "AlertRule",
                    "metadata": {"name": "p99", "namespace": "shop"}})
    assert invalid.value.message == "spec.for: Invalid value"
    assert FakeApiServer.seen[-1]["type"] == "application/apply-patch+yaml"
    assert "fieldManager=runbook-operator&force=true" in FakeApiServer.seen[-1]["path"]
    FakeApiServer.answers[("POST", "/apis/runbook.dev/v1alpha1/namespaces/shop/alertrules")] = (
        409, {"kind": "Status", "message": "already exists"})
    assert not kube.create_if_absent({"apiVersion": "runbook.dev/v1alpha1",
                                      "kind": "AlertRule",
                                      "metadata": {"name": "p99", "namespace": "shop"}})
    with pytest.raises(UnknownKind, match="no Widget in runbook.dev/v1alpha1"):
        kube.get("runbook.dev/v1alpha1", "Widget", "w", "shop")
    assert issubclass(Conflict, ApiError) and not issubclass(UnknownKind, NotFound)


def test_status_is_patched_at_the_version_it_was_computed_from(api_server: str) -> None:
    kube = Kube(ApiClient(Connection(server=api_server, token=Token(fixed="good"))))
    status = "/apis/runbook.dev/v1alpha1/namespaces/shop/alertrules/p99/status"
    FakeApiServer.answers[("PATCH", status)] = (200, {"status": {"state": "Firing"}})
    written = kube.patch_status("runbook.dev/v1alpha1", "AlertRule", "p99", "shop",
                                {"state": "Firing"}, "41")
    assert written == {"status": {"state": "Firing"}}
    sent = FakeApiServer.seen[-1]
    assert sent["type"] == "application/merge-patch+json"
    assert sent["body"] == {"metadata": {"resourceVersion": "41"}, "status": {"state": "Firing"}}


def test_a_kind_installed_after_start_is_found_on_its_first_use(api_server: str) -> None:
    discovery = Discovery(ApiClient(Connection(server=api_server, token=Token(fixed="good"))))
    with pytest.raises(UnknownKind):
        discovery.resource("runbook.dev/v1alpha1", "Incident")
    FakeApiServer.answers[("GET", "/apis/runbook.dev/v1alpha1")][1]["resources"].append(
        {"name": "incidents", "kind": "Incident", "namespaced": True})
    assert discovery.resource("runbook.dev/v1alpha1", "Incident").plural == "incidents"
    discoveries = [s for s in FakeApiServer.seen if s["path"] == "/apis/runbook.dev/v1alpha1"]
    discovery.resource("runbook.dev/v1alpha1", "AlertRule")
    assert len(discoveries) == 2 == len(
        [s for s in FakeApiServer.seen if s["path"] == "/apis/runbook.dev/v1alpha1"])


def test_the_operator_process_does_not_import_the_official_client(tmp_path: Path) -> None:
    """`runbook-operator run` imports kopf and every controller without `kubernetes` (34 MiB
    of generated models), which kopf would import whenever it can. The run stops at loading
    credentials (an empty kubeconfig), after every import."""
    (tmp_path / "empty").write_text("")
    probe = ("import sys\n"
             "from runbook_operator.cli import main\n"
             "from runbook_operator.integrations.kubeapi import ConfigError\n"
             "try:\n    main.main(['run'])\nexcept ConfigError:\n    pass\n"
             "print('controllers' in dir(sys.modules['runbook_operator']))\n"
             "print(sorted(m for m in sys.modules if m.startswith('kubernetes')"
             " and sys.modules[m]))")
    env = {"PATH": "/usr/bin:/bin", "KUBECONFIG": str(tmp_path / "empty")}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, env=env)
    assert done.stdout.split() == ["True", "[]"], done.stderr
