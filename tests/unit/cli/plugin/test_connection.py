"""The shared flags and what they select: kubeconfig file, context and namespace."""

from __future__ import annotations

from typing import Any

import pytest

from runbook_operator.cli.plugin.connection import context_namespace, kubeconfig_path
from runbook_operator.cli.plugin.main import parse_args


def test_kubeconfig_flag_wins_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", "/from/env:/second")
    assert kubeconfig_path(parse_args(["status"])) == "/from/env:/second"
    args = parse_args(["status", "--kubeconfig", "/flag"])
    assert kubeconfig_path(args) == "/flag"
    monkeypatch.delenv("KUBECONFIG")
    assert kubeconfig_path(parse_args(["status"])) is None


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
    assert context_namespace(str(kubeconfig), None) == "team-a"
    assert context_namespace(str(kubeconfig), "bare") == "default"
