"""The entry points, arguments and the exit codes of failures that reach `main`."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from runbook_operator.cli.plugin.errors import EXIT_ERROR
from runbook_operator.cli.plugin.main import main, parse_args


def test_status_defaults() -> None:
    args = parse_args(["status"])
    assert args.command == "status"
    assert (args.namespace, args.all_namespaces, args.kubeconfig, args.context) == (
        None,
        False,
        None,
        None,
    )
    assert not args.fail_unready


def test_status_flags() -> None:
    args = parse_args(
        ["status", "-n", "team-a", "--kubeconfig", "/k", "--context", "dev", "--fail-unready"]
    )
    assert (args.namespace, args.kubeconfig, args.context, args.fail_unready) == (
        "team-a",
        "/k",
        "dev",
        True,
    )
    assert parse_args(["status", "-A"]).all_namespaces
    assert parse_args(["status", "--all-namespaces"]).all_namespaces


@pytest.mark.parametrize("argv", [[], ["status", "-n", "a", "-A"], ["nope"]])
def test_bad_arguments_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2


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
    assert main(["status", "--kubeconfig", str(kubeconfig)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach the cluster") and err.count("\n") == 1


def test_missing_kubeconfig_is_one_line_error(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--kubeconfig", str(tmp_path / "none")]) == EXIT_ERROR
    assert capsys.readouterr().err.startswith("error: invalid kubeconfig")


@pytest.mark.parametrize("command", [["backup", "list", "p"], ["alerts"], ["status"]])
def test_every_command_names_its_runner(command: list[str]) -> None:
    assert callable(parse_args(command).run)


def test_python_m_runs_the_plugin() -> None:
    shown = subprocess.run([sys.executable, "-m", "runbook_operator.cli.plugin", "--help"],
                           capture_output=True, text=True, check=True).stdout
    assert shown.startswith("usage: kubectl runbook")
    assert all(command in shown for command in ("status", "alerts", "backup"))
