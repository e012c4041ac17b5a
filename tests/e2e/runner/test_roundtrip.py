"""The whole runner path on real services: PostgreSQL → pipeline (zstd + AES-256-GCM) → MinIO →
verification (incl. pg_restore --list) → restore into a new database → same rows."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from runbook_operator.devcluster.services import MinioServer, PostgresServer
from runbook_operator.runner.crypto import Key
from runbook_operator.runner.pipeline import BackupSettings, run_backup, run_restore, verify_backup
from runbook_operator.runner.sources import build_restore_target, build_source, build_verifier
from runbook_operator.runner.storage.s3 import S3Storage

from tests.support.databases import (
    POSTGRES_PASSWORD_ENV as PASSWORD_ENV,
    POSTGRES_SCHEMA as SCHEMA,
    postgres_connection as connection,
    postgres_fingerprint as fingerprint,
)


@pytest.fixture
def environment(
    postgres: PostgresServer, minio: MinioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, postgres.password)
    monkeypatch.setenv("TEST_S3_ACCESS_KEY", minio.access_key)
    monkeypatch.setenv("TEST_S3_SECRET_KEY", minio.secret_key)


def test_postgres_to_minio_and_back(
    postgres: PostgresServer, minio: MinioServer, environment: None, unique: Callable[[str], str]
) -> None:
    origin, scratch = unique("origin"), unique("scratch")
    postgres.create_database(origin)
    postgres.psql(SCHEMA, origin)
    minio.create_bucket(bucket := unique("backups").replace("_", "-"))
    storage = S3Storage.from_settings(
        {
            "bucket": bucket,
            "prefix": "team-a/prod",
            "endpointUrl": minio.endpoint_url,
            "accessKeyIdEnv": "TEST_S3_ACCESS_KEY",
            "secretAccessKeyEnv": "TEST_S3_SECRET_KEY",
            "forcePathStyle": True,
            "partSizeMib": 5,
        },
        namespace="shop",
    )
    key = Key(os.urandom(32))
    source_settings = connection(postgres, database=origin)

    backup = run_backup(
        build_source("postgres", source_settings),
        storage,
        BackupSettings(
            policy="shop-db",
            namespace="shop",
            encryption="aes-256-gcm",
            key=key,
            compression="zstd",
            verifier=build_verifier("postgres", source_settings),
        ),
        now=lambda: datetime.now(UTC),
    )
    assert backup.ok, backup.message
    assert backup.verified and backup.key_id == key.id
    assert backup.location and backup.location.startswith(f"s3://{bucket}/team-a/prod/shop/shop-db/")
    assert backup.raw_size_bytes and backup.size_bytes
    assert backup.size_bytes < backup.raw_size_bytes / 2, "zstd compressed the -Z0 dump"
    assert backup.key is not None

    checked = verify_backup(storage, backup.key, key, build_verifier("postgres", source_settings))
    assert checked.ok, checked.message

    restored = run_restore(
        storage,
        backup.key,
        build_restore_target(
            "postgres",
            connection(
                postgres,
                database=scratch,
                checkQuery="SELECT count(*) FROM customers",
                expect="1001",
            ),
        ),
        key,
    )
    assert restored.ok, restored.message
    assert fingerprint(postgres, scratch) == fingerprint(postgres, origin)

    untouched = unique("wrongkey")
    wrong = run_restore(
        storage,
        backup.key,
        build_restore_target("postgres", connection(postgres, database=untouched)),
        Key(os.urandom(32)),
    )
    assert not wrong.ok
    assert postgres.password not in wrong.message
    # The key is checked before the target starts: not even the scratch database is created.
    assert postgres.psql(f"SELECT count(*) FROM pg_database WHERE datname = '{untouched}'") == "0"
