"""`status`: rows from each kind's Ready condition, the table, listing every kind page by page,
and the exit code, without a cluster."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from runbook_operator.api.common import GROUP, VERSION
from runbook_operator.api.registry import KINDS
from runbook_operator.cli.plugin import connection, status
from runbook_operator.cli.plugin.errors import EXIT_OK, EXIT_UNREADY, PluginError
from runbook_operator.cli.plugin.main import main
from runbook_operator.cli.plugin.status import HEADERS, Row
from runbook_operator.cli.plugin.table import MIN_LAST_COLUMN_WIDTH

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


def test_ready_object() -> None:
    ready = {"status": "True", "reason": "Reconciled", "message": "last backup 2m ago"}
    [row] = status.build_rows([obj("db", ready=ready)], NOW)
    assert row == Row(
        "default", "BackupPolicy", "db", "True", "Reconciled", "3m", "last backup 2m ago"
    )


def test_not_ready_object_takes_the_ready_condition_not_another() -> None:
    ready = {"status": "False", "reason": "RPOMissed", "message": "no backup\nfor 2h"}
    [row] = status.build_rows([obj("db", ready=ready)], NOW)
    assert (row.ready, row.reason) == ("False", "RPOMissed")
    assert row.message == "no backup for 2h"  # one line per resource


@pytest.mark.parametrize("stored", [None, {}, {"conditions": []}, {"observedGeneration": 1}])
def test_object_without_ready_condition_is_unknown(stored: dict[str, Any] | None) -> None:
    body = obj("db")
    if stored is not None:
        body["status"] = stored
    [row] = status.build_rows([body], NOW)
    assert (row.ready, row.reason, row.message) == ("Unknown", "-", "-")


def test_missing_creation_timestamp() -> None:
    body = obj("db")
    del body["metadata"]["creationTimestamp"]
    assert status.build_rows([body], NOW)[0].age == "<unknown>"


def test_rows_sorted_by_namespace_kind_name() -> None:
    objects = [
        obj("b", namespace="team-b", kind="Alert"),
        obj("z", namespace="team-a", kind="Canary"),
        obj("b", namespace="team-a", kind="Alert"),
        obj("a", namespace="team-a", kind="Canary"),
        obj("a", namespace="team-a", kind="Alert"),
    ]
    keys = [(r.namespace, r.kind, r.name) for r in status.build_rows(objects, NOW)]
    assert keys == [
        ("team-a", "Alert", "a"),
        ("team-a", "Alert", "b"),
        ("team-a", "Canary", "a"),
        ("team-a", "Canary", "z"),
        ("team-b", "Alert", "b"),
    ]


def test_any_unready() -> None:
    ready = status.build_rows([obj("a", ready={"status": "True", "reason": "Ok"})], NOW)
    assert not status.any_unready(ready)
    assert status.any_unready(ready + status.build_rows([obj("b")], NOW))
    assert not status.any_unready([])


def rows_for_table() -> list[Row]:
    return [
        Row("team-a", "BackupPolicy", "db", "True", "Reconciled", "3m", "ok"),
        Row("team-b", "BackupPolicy", "orders-db", "False", "RPOMissed", "5d", "x" * 200),
    ]


def test_table_columns_align_without_width() -> None:
    lines = status.format_table(rows_for_table()).splitlines()
    assert lines[0].split() == list(HEADERS)
    message_at = lines[0].index("MESSAGE")
    assert lines[1][message_at:] == "ok"
    assert lines[2][message_at:] == "x" * 200  # not a terminal: nothing cut
    assert lines[1].index("True") == lines[2].index("False") == lines[0].index("READY")


def test_table_truncates_message_to_width() -> None:
    lines = status.format_table(rows_for_table(), width=100).splitlines()
    assert all(len(line) <= 100 for line in lines)
    assert lines[2].endswith("x...")
    assert lines[1].endswith("ok")


def test_narrow_terminal_keeps_a_readable_message() -> None:
    lines = status.format_table(rows_for_table(), width=10).splitlines()
    message = lines[2][lines[0].index("MESSAGE") :]
    assert len(message) == MIN_LAST_COLUMN_WIDTH
    assert message.endswith("...")


def test_table_has_no_trailing_spaces() -> None:
    rows = [Row("ns", "BackupPolicy", "db", "Unknown", "-", "1s", "-")]
    text = status.format_table(rows, width=200)
    assert text.endswith("\n")
    assert all(line == line.rstrip() for line in text.splitlines())


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
    monkeypatch.setattr(status, "KINDS", KINDS[:1])


@pytest.mark.usefixtures("one_kind")
def test_collect_follows_continue_tokens_and_fills_kind() -> None:
    api = FakeApi(
        pages=[
            {"items": [{"metadata": {"name": "a"}}], "metadata": {"continue": "tok"}},
            {"items": [{"metadata": {"name": "b"}}], "metadata": {}},
        ]
    )
    objects = status.collect(api, "team-a")
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [(KIND, "a"), (KIND, "b")]
    assert [ns for ns, _ in api.calls] == ["team-a", "team-a"]
    assert "_continue" not in api.calls[0][1]
    assert api.calls[1][1]["_continue"] == "tok"


@pytest.mark.usefixtures("one_kind")
def test_all_namespaces_lists_cluster_wide() -> None:
    api = FakeApi()
    assert status.collect(api, None) == []
    assert [ns for ns, _ in api.calls] == [None]


@pytest.mark.usefixtures("one_kind")
def test_missing_crd_is_skipped_with_a_note(capsys: pytest.CaptureFixture[str]) -> None:
    assert status.collect(FakeApi(error=404), None) == []
    assert f"{PLURAL}.{GROUP} is not installed" in capsys.readouterr().err


@pytest.mark.usefixtures("one_kind")
def test_forbidden_names_the_kind() -> None:
    with pytest.raises(PluginError, match=f"forbidden.*{KIND}.*-n team-a"):
        status.collect(FakeApi(error=403), "team-a")


@pytest.mark.usefixtures("one_kind")
def test_other_api_errors_are_one_line() -> None:
    with pytest.raises(PluginError, match="500 Nope"):
        status.collect(FakeApi(error=500), None)


@pytest.mark.usefixtures("one_kind")
@pytest.mark.parametrize(
    "ready, flags, code",
    [
        ("True", [], EXIT_OK),
        ("False", [], EXIT_OK),
        ("True", ["--fail-unready"], EXIT_OK),
        ("False", ["--fail-unready"], EXIT_UNREADY),
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
    apis = argparse.Namespace(custom=FakeApi([{"items": [item]}]))
    monkeypatch.setattr(connection, "connect", lambda args: (apis, None))
    assert main(["status", "-A", *flags]) == code
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == list(HEADERS)
    assert out[1].split()[:5] == ["team-a", "BackupPolicy", "db", ready, "Why"]
