"""cli.serve: the Alertmanager receiver the `run` flags configure (off without a port), and
the Lease the instances elect their leader on, and what `--namespace` changes: no scanning of
namespaces or CRDs."""

from __future__ import annotations

import gc

import pytest

from runbook_operator.cli.main import _check_receiver, _parser
from runbook_operator.cli.serve import (
    connection_info,
    identity,
    operator_settings,
    receiver_config,
    tune_garbage_collection,
)
from runbook_operator.core.incident.alertmanager import DEFAULT_MAX_BODY_BYTES, ReceiverSettings
from runbook_operator.integrations.alertmanager_receiver import ReceiverConfig
from runbook_operator.integrations.kubeapi import Connection, Token


def parsed(*flags: str):
    parser = _parser()
    args = parser.parse_args(["run", *flags])
    _check_receiver(parser, args)
    return args


def test_the_receiver_is_off_without_a_port() -> None:
    assert receiver_config(parsed()) is None


def test_the_flags_say_where_incidents_open_and_whose_token_counts() -> None:
    config = receiver_config(parsed(
        "--alertmanager-port=9095", "--alertmanager-token-secret=runbook-system/am-token",
        "--alertmanager-namespace=ops", "--alertmanager-escalation-policy=sre",
        "--alertmanager-severity=P1", "--alertmanager-resolve"))
    assert config == ReceiverConfig(
        port=9095, token_namespace="runbook-system", token_secret="am-token",
        token_key="token",
        settings=ReceiverSettings(namespace="ops", severity="P1", policy="sre",
                                  resolve_when_resolved=True),
        max_body_bytes=DEFAULT_MAX_BODY_BYTES)


def test_the_token_secret_defaults_to_the_incidents_namespace() -> None:
    config = receiver_config(parsed(
        "--alertmanager-port=9095", "--alertmanager-token-secret=am-token",
        "--alertmanager-token-key=bearer", "--alertmanager-namespace=ops",
        "--alertmanager-max-body-bytes=65536"))
    assert config is not None
    assert (config.token_namespace, config.token_secret, config.token_key) == (
        "ops", "am-token", "bearer")
    assert config.settings == ReceiverSettings(namespace="ops")
    assert config.max_body_bytes == 65536


@pytest.mark.parametrize("flags", [
    ("--alertmanager-port=9095", "--alertmanager-namespace=ops"),
    ("--alertmanager-port=9095", "--alertmanager-token-secret=am-token"),
])
def test_a_port_without_token_or_namespace_is_refused(flags: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit):
        parsed(*flags)


def test_the_lease_identity_is_the_pods_name_where_the_deployment_passes_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_ID", "runbook-operator-7d9f-abcde")
    assert identity() == "runbook-operator-7d9f-abcde"
    monkeypatch.delenv("POD_ID")
    assert identity() != identity()  # a random suffix: two local runs never share one


def test_the_lease_lives_in_the_pods_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "ops")
    args = parsed("--lease-duration=30")
    assert (args.lease, args.lease_namespace, args.lease_duration) == (
        "runbook-operator", "ops", 30.0)
    assert operator_settings(args).peering.standalone


def test_watching_chosen_namespaces_scans_neither_namespaces_nor_crds() -> None:
    assert operator_settings(parsed("--namespace=shop")).scanning.disabled
    assert not operator_settings(parsed()).scanning.disabled


def test_kopf_logs_in_with_the_operators_own_credentials() -> None:
    pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    connection = Connection(server="https://k8s:6443", ca_data=pem, cert_data=pem,
                            key_path="/keys/client.key", token=Token(fixed="t0ken"),
                            namespace="runbook-system")
    info = connection_info(connection)
    assert (info.server, info.ca_data, info.certificate_data) == ("https://k8s:6443", pem, pem)
    assert (info.private_key_path, info.token) == ("/keys/client.key", "t0ken")
    assert info.default_namespace == "runbook-system"
    assert info.ca_path is None and info.expiration is None


def test_objects_are_handled_64_at_a_time_unless_told_otherwise(
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = operator_settings(parsed())
    assert (settings.queueing.worker_limit, settings.queueing.idle_timeout) == (64, 0.05)
    assert operator_settings(parsed("--object-workers=200")).queueing.worker_limit == 200
    assert operator_settings(parsed("--object-workers=0")).queueing.worker_limit is None
    monkeypatch.setenv("RUNBOOK_OBJECT_WORKERS", "16")
    assert operator_settings(parsed()).queueing.worker_limit == 16


def test_the_initial_list_comes_in_pages() -> None:
    assert operator_settings(parsed()).watching.chunk_size == 500


def test_young_collections_wait_for_fifty_thousand_allocations() -> None:
    before = gc.get_threshold()
    try:
        tune_garbage_collection()
        assert gc.get_threshold()[0] == 50_000
    finally:
        gc.set_threshold(*before)
