"""A BackupPolicy's own runner configs, as the operator renders them, run against real
services: PostgreSQL, MariaDB and files → PVC-style directory or MinIO → restored by the
policy's restore test into a scratch target with identical content → pruned by its retention,
which keeps the newest restore-tested backup."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from runbook_operator.api.backuppolicy import BackupPolicySpec
from runbook_operator.core.backuppolicy.names import Owner
from runbook_operator.core.backuppolicy.runner_config import (
    BACKUPS_MOUNT,
    ENCRYPTION_KEY_ENV,
    S3_ACCESS_KEY_ENV,
    S3_SECRET_KEY_ENV,
    SCRATCH_MOUNT,
    SOURCE_MOUNT,
    SOURCE_PASSWORD_ENV,
    config_text,
    runner_config,
    scratch_database,
)
from runbook_operator.devcluster.services import MariaDBServer, MinioServer, PostgresServer
from runbook_operator.runner.config import RunnerConfig, parse_config
from runbook_operator.runner.crypto import parse_key
from runbook_operator.runner.main import run
from runbook_operator.runner.results import BackupResult, RestoreResult

from tests.support.databases import (
    MYSQL_SCHEMA,
    POSTGRES_SCHEMA,
    mysql_fingerprint,
    postgres_fingerprint,
)

OWNER = Owner(name="shop-db", namespace="shop", uid="uid-1")
KEY = base64.b64encode(os.urandom(32)).decode()
T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


class Days:
    """A clock that starts a new day at every run, so each backup gets its own timestamp."""

    def __init__(self, day: int) -> None:
        self.now = T0 + timedelta(days=day)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def _spec(engine: str, server: PostgresServer | MariaDBServer, database: str,
          destination: dict[str, Any]) -> BackupPolicySpec:
    check = "SELECT count(*) FROM customers"
    return BackupPolicySpec.model_validate({
        "schedule": "0 2 * * *",
        "source": {engine: {"host": server.host, "port": server.port, "database": database,
                            "user": server.user,
                            "passwordSecretRef": {"name": "db", "key": "password"}}},
        "destination": destination,
        "encryption": {"keySecretRef": {"name": "key", "key": "key"}},
        "retention": {"keepLast": 2},
        "restoreTest": {"schedule": "0 5 * * 0", "checkQuery": check},
    })


def _config(spec: BackupPolicySpec, operation: str, volume: Path) -> RunnerConfig:
    """The operator's rendered config, with the volume mount path mapped to a local dir."""
    config, _ = runner_config(spec, OWNER, operation)
    text = config_text(config).replace(BACKUPS_MOUNT, str(volume))
    return parse_config(text)


@pytest.mark.parametrize("destination", ["pvc", "s3"])
@pytest.mark.parametrize("engine", ["postgres", "mysql"])
def test_policy_backups_prune_and_restore_on_real_services(
    engine: str, destination: str, postgres: PostgresServer, mariadb: MariaDBServer,
    minio: MinioServer, tmp_path: Path, unique: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server: PostgresServer | MariaDBServer = postgres if engine == "postgres" else mariadb
    fingerprint = postgres_fingerprint if engine == "postgres" else mysql_fingerprint
    database = unique("origin")
    server.create_database(database)
    if engine == "postgres":
        postgres.psql(POSTGRES_SCHEMA, database)
    else:
        mariadb.sql(MYSQL_SCHEMA, database)
    if destination == "pvc":
        dest: dict[str, Any] = {"pvc": {"claimName": "vol", "path": "backups"}}
        (tmp_path / "backups").mkdir()
    else:
        bucket = unique("bucket").replace("_", "-")
        minio.create_bucket(bucket)
        dest = {"s3": {"endpoint": minio.endpoint_url, "bucket": bucket, "prefix": "prod",
                       "credentialsSecretRef": {"name": "s3"}}}
    spec = _spec(engine, server, database, dest)
    env = {SOURCE_PASSWORD_ENV: server.password, ENCRYPTION_KEY_ENV: KEY,
           S3_ACCESS_KEY_ENV: minio.access_key, S3_SECRET_KEY_ENV: minio.secret_key}
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def backup_on(day: int) -> BackupResult:
        made = run(_config(spec, "backup", tmp_path), env, Days(day))
        assert isinstance(made, BackupResult) and made.ok and made.verified, made.message
        assert made.key_id == parse_key(KEY).id
        return made

    def restore_test_on(day: int) -> RestoreResult:
        restored = run(_config(spec, "restore", tmp_path), env, Days(day))
        assert isinstance(restored, RestoreResult) and restored.ok, restored.message
        scratch = scratch_database(database)
        assert fingerprint(server, scratch) == fingerprint(server, database)  # type: ignore[arg-type]
        return restored

    first = backup_on(0)
    assert restore_test_on(0).key == first.key
    later = [backup_on(day) for day in (1, 2, 3)]
    # keepLast 2 alone would have pruned the first backup on day 2: it is the restore-tested one.
    assert [r.pruned for r in later] == [[], [], [later[0].key]]
    assert restore_test_on(4).key == later[2].key
    newest = backup_on(5)
    assert sorted(newest.pruned) == sorted([first.key, later[1].key])


def test_failing_dump_reports_why_without_the_password(
    postgres: PostgresServer, tmp_path: Path, unique: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "backups").mkdir()
    spec = _spec("postgres", postgres, "shop_missing",
                 {"pvc": {"claimName": "vol", "path": "backups"}})
    wrong = "definitely-not-the-password"
    env = {SOURCE_PASSWORD_ENV: wrong, ENCRYPTION_KEY_ENV: KEY}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = run(_config(spec, "backup", tmp_path), env, Days(0))
    assert not result.ok and result.reason == "DumpFailed"
    assert "password authentication failed" in result.message
    assert wrong not in result.to_json()
    assert not any((tmp_path / "backups").rglob("manifest.json"))


@pytest.mark.parametrize("destination", ["pvc", "s3"])
def test_files_policy_round_trip(
    destination: str, minio: MinioServer, tmp_path: Path, unique: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    volume = tmp_path / "source"
    (volume / "media" / "cache").mkdir(parents=True)
    (volume / "media" / "a.txt").write_text("alpha\n")
    (volume / "media" / "nested").mkdir()
    (volume / "media" / "nested" / "b.bin").write_bytes(os.urandom(300_000))
    (volume / "media" / "cache" / "skip.tmp").write_text("excluded")
    (tmp_path / "backups").mkdir()
    if destination == "pvc":
        dest: dict[str, Any] = {"pvc": {"claimName": "vol", "path": "backups"}}
    else:
        bucket = unique("files").replace("_", "-")
        minio.create_bucket(bucket)
        dest = {"s3": {"endpoint": minio.endpoint_url, "bucket": bucket,
                       "credentialsSecretRef": {"name": "s3"}}}
    spec = BackupPolicySpec.model_validate({
        "schedule": "@daily",
        "source": {"files": {"claimName": "uploads", "path": "/media", "exclude": ["cache/*"]}},
        "destination": dest,
        "encryption": {"keySecretRef": {"name": "key", "key": "key"}},
        "restoreTest": {"schedule": "@weekly"},
    })
    env = {ENCRYPTION_KEY_ENV: KEY, S3_ACCESS_KEY_ENV: minio.access_key,
           S3_SECRET_KEY_ENV: minio.secret_key}

    def config(operation: str) -> RunnerConfig:
        rendered, _ = runner_config(spec, OWNER, operation)
        text = (config_text(rendered).replace(BACKUPS_MOUNT, str(tmp_path))
                .replace(SOURCE_MOUNT, str(volume))
                .replace(SCRATCH_MOUNT, str(tmp_path / "scratch")))
        return parse_config(text)

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    stored = run(config("backup"), env, Days(0))
    assert stored.ok and stored.verified, stored.message
    (tmp_path / "scratch").mkdir()
    restored = run(config("restore"), env, Days(1))
    assert restored.ok, restored.message
    scratch = tmp_path / "scratch"
    assert (scratch / "a.txt").read_text() == "alpha\n"
    assert (scratch / "nested" / "b.bin").read_bytes() == (
        volume / "media" / "nested" / "b.bin").read_bytes()
    assert not (scratch / "cache" / "skip.tmp").exists()
