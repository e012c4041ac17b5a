"""Runner-mode rendering (destination set) and how finished runner Jobs are judged."""

import json

import pytest

from runbook_operator.api.backuppolicy import BackupPolicySpec, BackupPolicyStatus
from runbook_operator.core import backup
from runbook_operator.runner.results import BackupResult, RestoreResult

OWNER = backup.Owner(name="orders", namespace="shop", uid="u-1")
IMAGE = "registry.example/runbook-operator:1.2.3"


def spec(**overrides) -> BackupPolicySpec:
    body = {
        "schedule": "0 2 * * *",
        "source": {"postgres": {"host": "orders-db", "database": "orders", "user": "backup",
                                "passwordSecretRef": {"name": "db", "key": "password"}}},
        "destination": {"s3": {"endpoint": "http://minio:9000", "bucket": "backups",
                               "prefix": "prod", "credentialsSecretRef": {"name": "s3"}}},
        "encryption": {"keySecretRef": {"name": "backup-key", "key": "key"}},
        "restoreTest": {"schedule": "0 6 * * 0", "checkQuery": "select count(*) from orders"},
        "retention": {"maxAge": "30d"},
    }
    body.update(overrides)
    return BackupPolicySpec.model_validate(body)


def container(cronjob: dict) -> dict:
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]


def config(cronjob: dict) -> dict:
    env = {e["name"]: e for e in container(cronjob)["env"]}
    return json.loads(env[backup.RUNNER_CONFIG_ENV]["value"])


def test_runner_cronjob_streams_postgres_to_s3_with_secrets_by_reference() -> None:
    cronjob = backup.render_cronjob(spec(), OWNER, IMAGE)
    c = container(cronjob)
    assert c["image"] == IMAGE and c["command"] == ["runbook-operator", "runner"]
    assert c["terminationMessagePolicy"] == "File"
    labels = cronjob["spec"]["jobTemplate"]["metadata"]["labels"]
    assert labels[backup.RUNNER_LABEL] == "true" and labels[backup.OPERATION_LABEL] == "backup"
    cfg = config(cronjob)
    assert cfg["operation"] == "backup" and cfg["policy"] == "orders"
    assert cfg["source"] == {"kind": "postgres", "settings": {
        "host": "orders-db", "user": "backup", "database": "orders",
        "passwordEnv": backup.SOURCE_PASSWORD_ENV, "extraArgs": []}}
    assert cfg["storage"]["s3"]["bucket"] == "backups" and cfg["storage"]["s3"]["prefix"] == "prod"
    assert cfg["storage"]["s3"]["endpointUrl"] == "http://minio:9000"
    assert cfg["encryption"] == {"mode": "aes-256-gcm", "keyEnv": backup.ENCRYPTION_KEY_ENV}
    from_secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if "valueFrom" in e}
    assert from_secrets == {
        backup.SOURCE_PASSWORD_ENV: {"name": "db", "key": "password"},
        backup.ENCRYPTION_KEY_ENV: {"name": "backup-key", "key": "key"},
        backup.S3_ACCESS_KEY_ENV: {"name": "s3", "key": "AWS_ACCESS_KEY_ID"},
        backup.S3_SECRET_KEY_ENV: {"name": "s3", "key": "AWS_SECRET_ACCESS_KEY"},
    }


def test_restore_test_cronjob_restores_into_a_scratch_database() -> None:
    cronjob = backup.render_restore_test_cronjob(spec(), OWNER, IMAGE)
    assert cronjob["metadata"]["name"] == "orders-restore"
    assert cronjob["spec"]["schedule"] == "0 6 * * 0"
    cfg = config(cronjob)
    assert cfg["operation"] == "restore"
    target = cfg["restoreTarget"]
    assert target["kind"] == "postgres"
    assert target["settings"]["database"] == "orders_restore_test"
    assert target["settings"]["checkQuery"] == "select count(*) from orders"
    assert backup.render_restore_test_cronjob(spec(restoreTest=None), OWNER, IMAGE) is None


def test_pvc_destination_and_files_source_mount_volumes() -> None:
    cronjob = backup.render_cronjob(
        spec(source={"files": {"claimName": "uploads", "path": "/media", "exclude": ["*.tmp"]}},
             destination={"pvc": {"claimName": "backup-vol", "path": "shop"}},
             restoreTest=None),
        OWNER, IMAGE,
    )
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    claims = {v["name"]: v.get("persistentVolumeClaim") for v in pod["volumes"]}
    assert claims["backups"] == {"claimName": "backup-vol"}
    assert claims["source"] == {"claimName": "uploads", "readOnly": True}
    cfg = config(cronjob)
    assert cfg["storage"] == {"local": {"path": f"{backup.BACKUPS_MOUNT}/shop"}}
    assert cfg["source"]["settings"] == {"path": f"{backup.SOURCE_MOUNT}/media",
                                         "exclude": ["*.tmp"]}


@pytest.mark.parametrize("overrides, message", [
    ({"encryption": None}, "set encryption"),
    ({"source": {"command": {"image": "x", "command": ["dump"]}}, "restoreTest": None},
     "remove source.command.image"),
    ({"source": {"command": {"command": ["dump"]}}}, "restoreTest needs a source"),
    ({"destination": None, "source": {"command": {"image": "x", "command": ["y"]}},
      "restoreTest": None}, "retention and restoreTest need a destination"),
])
def test_cross_field_rules(overrides, message) -> None:
    with pytest.raises(ValueError, match=message):
        spec(**overrides)


def job(outcome: str, operation: str = "backup", name: str = "orders-backup-1") -> dict:
    kind = "Complete" if outcome == "ok" else "Failed"
    status = {"conditions": [{"type": kind, "status": "True", "reason": "BackoffLimitExceeded"
                              if kind == "Failed" else "", "lastTransitionTime":
                              "2026-05-01T02:01:00Z"}]}
    if kind == "Complete":
        status["completionTime"] = "2026-05-01T02:01:00Z"
    labels = {backup.RUNNER_LABEL: "true", backup.OPERATION_LABEL: operation}
    return {"metadata": {"name": name, "labels": labels}, "status": status}


def result(ok: bool = True, **extra) -> str:
    fields = dict(ok=ok, reason="Succeeded" if ok else "DumpFailed",
                  message="" if ok else "pg_dump: connection refused",
                  startedAt="2026-05-01T02:00:00Z", finishedAt="2026-05-01T02:00:55Z",
                  durationSeconds=55.0, location="s3://backups/prod/orders/x/", key="orders/x",
                  sizeBytes=1234, sha256="ab" * 32, verified=True)
    fields.update(extra)
    return BackupResult.model_validate(fields).to_json()


def test_success_needs_a_valid_successful_result() -> None:
    verdict = backup.judge_run(job("ok"), result())
    assert verdict.record.outcome == "Succeeded" and verdict.backup.sha256 == "ab" * 32
    no_result = backup.judge_run(job("ok"), None)
    assert (no_result.record.outcome, no_result.record.reason) == ("Failed", "NoResult")
    garbage = backup.judge_run(job("ok"), "Killed")
    assert garbage.record.reason == "NoResult"
    says_failed = backup.judge_run(job("ok"), result(ok=False))
    assert (says_failed.record.outcome, says_failed.record.reason) == ("Failed", "DumpFailed")


def test_failed_job_takes_the_runner_reason_when_given() -> None:
    with_result = backup.judge_run(job("fail"), result(ok=False))
    assert with_result.record.reason == "DumpFailed"
    assert "connection refused" in with_result.record.message
    without = backup.judge_run(job("fail"), None)
    assert without.record.reason == "BackoffLimitExceeded"


def test_record_run_history_last_backup_and_idempotence() -> None:
    status = BackupPolicyStatus()
    ok = backup.judge_run(job("ok", name="j1"), result())
    failed = backup.judge_run(job("fail", name="j2"), result(ok=False))
    once = backup.record_run(backup.record_run(status, ok), failed)
    twice = backup.record_run(backup.record_run(once, failed), ok)
    assert once == twice
    assert [a.job_name for a in once.history] == ["j2", "j1"]
    assert once.last_backup.job_name == "j1" and once.last_backup.verified
    assert once.last_failure_time is not None and once.last_successful_time is not None


def test_restore_test_sets_verified_without_touching_backup_times() -> None:
    restored = RestoreResult.model_validate(dict(
        ok=True, reason="Succeeded", startedAt="2026-05-01T06:00:00Z",
        finishedAt="2026-05-01T06:00:42Z", durationSeconds=42.0, key="orders/x", verified=True,
    )).to_json()
    verdict = backup.judge_run(job("ok", operation="restore-test"), restored)
    status = backup.record_run(BackupPolicyStatus(), verdict)
    assert status.last_verified_backup.duration_seconds == 42.0
    assert status.last_successful_time is None and status.history == []
    verified = next(c for c in status.conditions if c.type == "Verified")
    assert verified.status == "True" and "orders/x" in verified.message
    failed = backup.judge_run(job("fail", operation="restore-test", name="r2"), None)
    status = backup.record_run(status, failed)
    assert next(c for c in status.conditions if c.type == "Verified").status == "False"


@pytest.mark.parametrize("source", [
    {"postgres": {"host": "db", "port": 5433, "database": "orders", "user": "u",
                  "passwordSecretRef": {"name": "db", "key": "password"}}},
    {"mysql": {"host": "db", "database": "orders", "user": "u",
               "passwordSecretRef": {"name": "db", "key": "password"}}},
    {"files": {"claimName": "uploads", "exclude": ["cache/*"]}},
])
@pytest.mark.parametrize("destination", [
    {"s3": {"bucket": "backups", "credentialsSecretRef": {"name": "s3"}}},
    {"pvc": {"claimName": "vol"}},
])
def test_rendered_configs_are_accepted_by_the_runner(source, destination) -> None:
    """The operator and the runner agree on the config: every rendered config parses, and
    its source, storage and restore target build."""
    from runbook_operator.runner import config as runner_config
    from runbook_operator.runner.sources import build_restore_target, build_source

    policy = spec(source=source, destination=destination)
    for cronjob in (backup.render_cronjob(policy, OWNER, IMAGE),
                    backup.render_restore_test_cronjob(policy, OWNER, IMAGE)):
        parsed = runner_config.parse_config(json.dumps(config(cronjob)))
        build_source(parsed.source.kind, parsed.source.settings)
        if parsed.restore_target is not None:
            build_restore_target(parsed.restore_target.kind, parsed.restore_target.settings)
        names = [e["name"] for e in container(cronjob)["env"]]
        assert len(names) == len(set(names))


def test_on_demand_restores_are_neither_backups_nor_restore_tests() -> None:
    assert backup.judge_run(job("ok", operation="restore"), result()) is None
