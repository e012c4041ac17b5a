"""The kubectl plugin's table, ages, arguments and API error handling, without a cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from runbook_operator.api.common import GROUP, VERSION
from runbook_operator.api.registry import KINDS
from runbook_operator.cli import plugin
from runbook_operator.cli.plugin import HEADERS, Row

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
KIND = KINDS[0].info.kind
PLURAL = KINDS[0].info.plural


def obj(
    name: str,
    namespace: str = "default",
    kind: str = "BackupPolicy",
    age: timedelta = timedelta(minutes=3),
    ready: dict[str, Any] | None = None,
) -> dict[str, Any]:
    created = (NOW - age).strftime("%Y-%m-%dT%H:%M:%SZ")
    body: dict[str, Any] = {
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
    }
    if ready is not None:
        body["status"] = {
            "conditions": [
                {"type": "Reconciling", "status": "False", "reason": "Done", "message": "idle"},
                {"type": "Ready", **ready},
            ]
        }
    return body


# --- rows ----------------------------------------------------------------------------------------


def test_ready_object() -> None:
    ready = {"status": "True", "reason": "Reconciled", "message": "last backup 2m ago"}
    [row] = plugin.build_rows([obj("db", ready=ready)], NOW)
    assert row == Row(
        "default", "BackupPolicy", "db", "True", "Reconciled", "3m", "last backup 2m ago"
    )


def test_not_ready_object_takes_the_ready_condition_not_another() -> None:
    ready = {"status": "False", "reason": "RPOMissed", "message": "no backup\nfor 2h"}
    [row] = plugin.build_rows([obj("db", ready=ready)], NOW)
    assert (row.ready, row.reason) == ("False", "RPOMissed")
    assert row.message == "no backup for 2h"  # one line per resource


@pytest.mark.parametrize("status", [None, {}, {"conditions": []}, {"observedGeneration": 1}])
def test_object_without_ready_condition_is_unknown(status: dict[str, Any] | None) -> None:
    body = obj("db")
    if status is not None:
        body["status"] = status
    [row] = plugin.build_rows([body], NOW)
    assert (row.ready, row.reason, row.message) == ("Unknown", "-", "-")


def test_missing_creation_timestamp() -> None:
    body = obj("db")
    del body["metadata"]["creationTimestamp"]
    assert plugin.build_rows([body], NOW)[0].age == "<unknown>"


def test_rows_sorted_by_namespace_kind_name() -> None:
    objects = [
        obj("b", namespace="team-b", kind="Alert"),
        obj("z", namespace="team-a", kind="Canary"),
        obj("b", namespace="team-a", kind="Alert"),
        obj("a", namespace="team-a", kind="Canary"),
        obj("a", namespace="team-a", kind="Alert"),
    ]
    keys = [(r.namespace, r.kind, r.name) for r in plugin.build_rows(objects, NOW)]
    assert keys == [
        ("team-a", "Alert", "a"),
        ("team-a", "Alert", "b"),
        ("team-a", "Canary", "a"),
        ("team-a", "Canary", "z"),
        ("team-b", "Alert", "b"),
    ]


def test_any_unready() -> None:
    ready = plugin.build_rows([obj("a", ready={"status": "True", "reason": "Ok"})], NOW)
    assert not plugin.any_unready(ready)
    assert plugin.any_unready(ready + plugin.build_rows([obj("b")], NOW))
    assert not plugin.any_unready([])


# --- age -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds, expected",
    [
        (0, "0s"),
        (45, "45s"),
        (59.9, "59s"),
        (60, "1m"),
        (3 * 60 + 59, "3m"),
        (3599, "59m"),
        (3600, "1h"),
        (2 * 3600 + 1800, "2h"),
        (86399, "23h"),
        (86400, "1d"),
        (5 * 86400 + 7 * 3600, "5d"),
        (364 * 86400, "364d"),
        (365 * 86400, "1y"),
        (-0.5, "0s"),  # clock skew
        (-120, "<invalid>"),
    ],
)
def test_format_age(seconds: float, expected: str) -> None:
    assert plugin.format_age(seconds) == expected


def test_age_of_parses_rfc3339() -> None:
    assert plugin.age_of("2024-06-01T11:59:15Z", NOW) == "45s"
    assert plugin.age_of("2024-05-27T12:00:00+00:00", NOW) == "5d"


# --- table ---------------------------------------------------------------------------------------


def rows_for_table() -> list[Row]:
    return [
        Row("team-a", "BackupPolicy", "db", "True", "Reconciled", "3m", "ok"),
        Row("team-b", "BackupPolicy", "orders-db", "False", "RPOMissed", "5d", "x" * 200),
    ]


def test_table_columns_align_without_width() -> None:
    lines = plugin.format_table(rows_for_table()).splitlines()
    assert lines[0].split() == list(HEADERS)
    message_at = lines[0].index("MESSAGE")
    assert lines[1][message_at:] == "ok"
    assert lines[2][message_at:] == "x" * 200  # not a terminal: nothing cut
    assert lines[1].index("True") == lines[2].index("False") == lines[0].index("READY")


def test_table_truncates_message_to_width() -> None:
    lines = plugin.format_table(rows_for_table(), width=100).splitlines()
    assert all(len(line) <= 100 for line in lines)
    assert lines[2].endswith("x...")
    assert lines[1].endswith("ok")


def test_narrow_terminal_keeps_a_readable_message() -> None:
    lines = plugin.format_table(rows_for_table(), width=10).splitlines()
    message = lines[2][lines[0].index("MESSAGE") :]
    assert len(message) == plugin.MIN_MESSAGE_WIDTH
    assert message.endswith("...")


def test_table_has_no_trailing_spaces() -> None:
    rows = [Row("ns", "BackupPolicy", "db", "Unknown", "-", "1s", "-")]
    text = plugin.format_table(rows, width=200)
    assert text.endswith("\n")
    assert all(line == line.rstrip() for line in text.splitlines())


@pytest.mark.parametrize(
    "text, limit, expected",
    [("short", 10, "short"), ("exactly10!", 10, "exactly10!"), ("abcdefghijk", 10, "abcdefg...")],
)
def test_truncate(text: str, limit: int, expected: str) -> None:
    assert plugin.truncate(text, limit) == expected


# --- arguments -----------------------------------------------------------------------------------


def test_status_defaults() -> None:
    args = plugin.parse_args(["status"])
    assert args.command == "status"
    assert (args.namespace, args.all_namespaces, args.kubeconfig, args.context) == (
        None,
        False,
        None,
        None,
    )
    assert not args.fail_unready


def test_status_flags() -> None:
    args = plugin.parse_args(
        ["status", "-n", "team-a", "--kubeconfig", "/k", "--context", "dev", "--fail-unready"]
    )
    assert (args.namespace, args.kubeconfig, args.context, args.fail_unready) == (
        "team-a",
        "/k",
        "dev",
        True,
    )
    assert plugin.parse_args(["status", "-A"]).all_namespaces
    assert plugin.parse_args(["status", "--all-namespaces"]).all_namespaces


@pytest.mark.parametrize("argv", [[], ["status", "-n", "a", "-A"], ["nope"]])
def test_bad_arguments_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        plugin.parse_args(argv)
    assert exc.value.code == 2


def test_kubeconfig_flag_wins_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", "/from/env:/second")
    assert plugin.kubeconfig_path(plugin.parse_args(["status"])) == "/from/env:/second"
    args = plugin.parse_args(["status", "--kubeconfig", "/flag"])
    assert plugin.kubeconfig_path(args) == "/flag"
    monkeypatch.delenv("KUBECONFIG")
    assert plugin.kubeconfig_path(plugin.parse_args(["status"])) is None


def test_context_namespace(tmp_path: Any) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts:
- {name: dev, context: {cluster: c, user: u, namespace: team-a}}
- {name: bare, context: {cluster: c, user: u}}
current-context: dev
"""
    )
    assert plugin.context_namespace(str(kubeconfig), None) == "team-a"
    assert plugin.context_namespace(str(kubeconfig), "bare") == "default"


# --- API errors, with a fake CustomObjectsApi ---------------------------------------------------


class FakeApi:
    """Serves pages of objects, or raises one ApiException, and records the calls."""

    def __init__(self, pages: list[dict[str, Any]] | None = None, error: int | None = None):
        self.pages = pages or [{"items": []}]
        self.error = error
        self.calls: list[tuple[str | None, dict[str, Any]]] = []

    def _reply(self, namespace: str | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((namespace, kwargs))
        if self.error:
            raise ApiException(status=self.error, reason="Nope")
        return self.pages[len(self.calls) - 1]

    def list_cluster_custom_object(
        self, group: str, version: str, plural: str, **kwargs: Any
    ) -> dict[str, Any]:
        assert (group, version, plural) == (GROUP, VERSION, PLURAL)
        return self._reply(None, kwargs)

    def list_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, **kwargs: Any
    ) -> dict[str, Any]:
        assert (group, version, plural) == (GROUP, VERSION, PLURAL)
        return self._reply(namespace, kwargs)


@pytest.fixture
def one_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin the registry to one kind so the fake's call count is predictable as kinds are added."""
    monkeypatch.setattr(plugin, "KINDS", KINDS[:1])


@pytest.mark.usefixtures("one_kind")
def test_collect_follows_continue_tokens_and_fills_kind() -> None:
    api = FakeApi(
        pages=[
            {"items": [{"metadata": {"name": "a"}}], "metadata": {"continue": "tok"}},
            {"items": [{"metadata": {"name": "b"}}], "metadata": {}},
        ]
    )
    objects = plugin.collect(api, "team-a")
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [(KIND, "a"), (KIND, "b")]
    assert [ns for ns, _ in api.calls] == ["team-a", "team-a"]
    assert "_continue" not in api.calls[0][1]
    assert api.calls[1][1]["_continue"] == "tok"


@pytest.mark.usefixtures("one_kind")
def test_all_namespaces_lists_cluster_wide() -> None:
    api = FakeApi()
    assert plugin.collect(api, None) == []
    assert [ns for ns, _ in api.calls] == [None]


@pytest.mark.usefixtures("one_kind")
def test_missing_crd_is_skipped_with_a_note(capsys: pytest.CaptureFixture[str]) -> None:
    assert plugin.collect(FakeApi(error=404), None) == []
    assert f"{PLURAL}.{GROUP} is not installed" in capsys.readouterr().err


@pytest.mark.usefixtures("one_kind")
def test_forbidden_names_the_kind() -> None:
    with pytest.raises(plugin.PluginError, match=f"forbidden.*{KIND}.*-n team-a"):
        plugin.collect(FakeApi(error=403), "team-a")


@pytest.mark.usefixtures("one_kind")
def test_other_api_errors_are_one_line() -> None:
    with pytest.raises(plugin.PluginError, match="500 Nope"):
        plugin.collect(FakeApi(error=500), None)


def test_unreachable_cluster_is_one_line_error(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: dev, context: {cluster: c, user: u}}]
current-context: dev
"""
    )
    assert plugin.main(["status", "--kubeconfig", str(kubeconfig)]) == plugin.EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach the cluster") and err.count("\n") == 1


def test_missing_kubeconfig_is_one_line_error(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plugin.main(["status", "--kubeconfig", str(tmp_path / "none")]) == plugin.EXIT_ERROR
    assert capsys.readouterr().err.startswith("error: invalid kubeconfig")


@pytest.mark.usefixtures("one_kind")
@pytest.mark.parametrize(
    "ready, flags, code",
    [
        ("True", [], plugin.EXIT_OK),
        ("False", [], plugin.EXIT_OK),
        ("True", ["--fail-unready"], plugin.EXIT_OK),
        ("False", ["--fail-unready"], plugin.EXIT_UNREADY),
    ],
)
def test_exit_code_reflects_readiness_only_when_asked(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    ready: str,
    flags: list[str],
    code: int,
) -> None:
    item = obj("db", namespace="team-a", ready={"status": ready, "reason": "Why"})
    monkeypatch.setattr(plugin.config, "load_kube_config", lambda **_: None)
    monkeypatch.setattr(plugin.client, "CustomObjectsApi", lambda: FakeApi([{"items": [item]}]))
    assert plugin.main(["status", "-A", *flags]) == code
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == list(HEADERS)
    assert out[1].split()[:5] == ["team-a", "BackupPolicy", "db", ready, "Why"]


def test_alert_rows_put_firing_rules_first() -> None:
    from datetime import UTC, datetime

    from runbook_operator.cli.plugin import alert_rows

    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    quiet = {"metadata": {"name": "quiet", "namespace": "a"}, "spec": {"severity": "low"},
             "status": {"state": "Normal", "conditions": [{"type": "Ready", "status": "True"}]}}
    loud = {"metadata": {"name": "loud", "namespace": "b"}, "spec": {"severity": "critical"},
            "status": {"state": "Firing", "lastValue": "0.09",
                       "activeSince": "2026-01-01T11:55:00Z",
                       "instances": [{"state": "Firing"}, {"state": "Normal"}],
                       "conditions": [{"type": "Ready", "status": "True"}]}}
    fresh = {"metadata": {"name": "fresh", "namespace": "a"}}
    rows = alert_rows([quiet, fresh, loud], now)
    assert rows[0] == ("b", "loud", "Firing", "0.09", "5m", "critical", "1", "True")
    assert rows[1][1] == "quiet" and rows[1][4] == "-"
    assert rows[2] == ("a", "fresh", "Unknown", "-", "-", "medium", "0", "Unknown")
