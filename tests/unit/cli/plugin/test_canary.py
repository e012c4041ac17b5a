from __future__ import annotations

import pytest

from runbook_operator.api.canaryrollout import COMMAND_ANNOTATIONS
from runbook_operator.cli.plugin.canary import (
    acknowledgement,
    command_of,
    command_patch,
    format_status,
)
from runbook_operator.cli.plugin.main import parse_args


@pytest.mark.parametrize(("argv", "command"), [
    (["canary", "promote", "checkout"], "promote"),
    (["canary", "promote", "--full", "checkout"], "promoteFull"),
    (["canary", "abort", "checkout", "--wait"], "abort"),
    (["canary", "retry", "checkout"], "retry"),
    (["canary", "pause", "checkout"], "pause"),
    (["canary", "resume", "checkout", "-n", "shop"], "resume"),
])
def test_every_action_names_its_command(argv: list[str], command: str) -> None:
    args = parse_args(argv)
    assert args.rollout == "checkout"
    assert command_of(args.canary_command, getattr(args, "full", False)) == command


def test_status_takes_no_wait() -> None:
    assert parse_args(["canary", "status", "checkout"]).canary_command == "status"
    with pytest.raises(SystemExit):
        parse_args(["canary", "status", "checkout", "--wait"])


def test_a_command_sets_only_its_annotation_and_waits_for_its_token() -> None:
    assert command_patch("promoteFull", "t1") == {
        "metadata": {"annotations": {COMMAND_ANNOTATIONS["promoteFull"]: "t1"}}}
    rollout = {"status": {"commands": [
        {"command": "pause", "token": "t0", "result": "paused"},
        {"command": "abort", "token": "t1", "result": "rolling back"}]}}
    assert acknowledgement(rollout, "abort", "t1") == "rolling back"
    assert acknowledgement(rollout, "abort", "t2") is None
    assert acknowledgement({}, "pause", "t0") is None


def test_status_says_why() -> None:
    text = format_status({"metadata": {"namespace": "shop", "name": "checkout"}, "status": {
        "phase": "Failed", "weight": 0, "step": "2/8", "revision": "r2",
        "primaryRevision": "r1", "failedChecks": 2, "failedMetrics": "ok",
        "rollback": {"reason": "FailureLimit", "startedAt": "T1", "completedAt": "T2",
                     "message": "2 failed"},
        "incident": "checkout-abc",
        "gates": [{"name": "smoke", "open": False, "time": "T0", "message": "500"}],
        "measurements": [{"time": "T1", "step": 1, "metric": "ok", "value": "95",
                          "verdict": "Fail", "message": "95 outside [99, ]"}]}})
    assert "Phase:     Failed" in text
    assert "Rollback:  FailureLimit at T1 (completed T2): 2 failed" in text
    assert "Incident:  checkout-abc" in text
    assert "Gate:      smoke closed at T0: 500" in text
    assert "ok = 95  Fail  95 outside [99, ]" in text
    assert "Phase:     Pending" in format_status({"metadata": {"namespace": "a", "name": "b"}})


def test_status_shows_the_backup_waited_for() -> None:
    text = format_status({"metadata": {"namespace": "shop", "name": "checkout"}, "status": {
        "phase": "Progressing", "backup": {
            "policy": "db", "state": "Requested", "since": "T0", "token": "t",
            "message": "waiting for the backup of BackupPolicy 'db': Job db-now-1 runs"}}})
    assert ("Backup:    Requested (BackupPolicy db, since T0): waiting for the backup of "
            "BackupPolicy 'db': Job db-now-1 runs") in text
    assert "Backup:" not in format_status({"metadata": {"namespace": "a", "name": "b"}})
