"""The runner's config for a policy, built as the runner's own model (`runner.config`), and
the Secret-backed env and volumes the runner container needs besides it.

Secret values never enter the config: it names the environment variables the Job fills from
Secrets. The kind-specific settings of sources, restore targets and S3 storage are dicts in the
runner's wire format (camelCase keys): their models live beside the runner's sources and
storages, outside the contract modules core may import.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from runbook_operator.api.backuppolicy import BackupPolicySpec, CommandSource
from runbook_operator.api.common import SecretKeyRef, parse_duration
from runbook_operator.core.backuppolicy.names import Owner
from runbook_operator.runner.config import (
    CONFIG_ENV,
    DEFAULT_KEY_ENV,
    EncryptionConfig,
    LocalStorageConfig,
    Operation,
    PartConfig,
    RetentionConfig,
    RunnerConfig,
    StorageConfig,
)

RUNNER_CONFIG_ENV = CONFIG_ENV
ENCRYPTION_KEY_ENV = DEFAULT_KEY_ENV
SOURCE_PASSWORD_ENV = "RUNBOOK_SOURCE_PASSWORD"
S3_ACCESS_KEY_ENV = "RUNBOOK_S3_ACCESS_KEY_ID"
S3_SECRET_KEY_ENV = "RUNBOOK_S3_SECRET_ACCESS_KEY"
BACKUPS_MOUNT = "/var/lib/runbook/backups"
SOURCE_MOUNT = "/var/lib/runbook/source"
SCRATCH_MOUNT = "/var/lib/runbook/scratch"
SCRATCH_SUFFIX = "_restore_test"


@dataclass(frozen=True)
class RunnerParts:
    """What the runner container needs besides its config: env from Secrets, volumes."""

    env: list[dict[str, Any]]
    volumes: list[dict[str, Any]]
    mounts: list[dict[str, Any]]


NO_PARTS = RunnerParts([], [], [])


def secret_env(name: str, ref: SecretKeyRef) -> dict[str, Any]:
    """An env var taken from a Secret key: the value never appears in what is rendered."""
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}


def command_env(command: CommandSource) -> list[dict[str, Any]]:
    """The user's command's env as a container has it: literals, and Secret keys by reference."""
    return [
        secret_env(var.name, var.secret_key_ref) if var.secret_key_ref is not None
        else {"name": var.name, "value": var.value}
        for var in command.env
    ]


def scratch_database(database: str) -> str:
    """The database restore tests restore into (and drop first): never the source's own."""
    return f"{database[:63 - len(SCRATCH_SUFFIX)]}{SCRATCH_SUFFIX}"


def _storage(spec: BackupPolicySpec) -> tuple[StorageConfig, RunnerParts]:
    destination = spec.destination
    assert destination is not None
    if destination.pvc is not None:
        volume = {"name": "backups",
                  "persistentVolumeClaim": {"claimName": destination.pvc.claim_name}}
        mount = {"name": "backups", "mountPath": BACKUPS_MOUNT}
        local = LocalStorageConfig(path=BACKUPS_MOUNT, directory=destination.pvc.path)
        return StorageConfig(local=local), RunnerParts([], [volume], [mount])
    s3 = destination.s3
    assert s3 is not None
    creds = s3.credentials_secret_ref
    env = [
        secret_env(S3_ACCESS_KEY_ENV, SecretKeyRef(name=creds.name, key=creds.access_key_id_key)),
        secret_env(S3_SECRET_KEY_ENV,
                   SecretKeyRef(name=creds.name, key=creds.secret_access_key_key)),
    ]
    settings: dict[str, Any] = {
        "region": s3.region, "bucket": s3.bucket, "prefix": s3.prefix,
        "accessKeyIdEnv": S3_ACCESS_KEY_ENV, "secretAccessKeyEnv": S3_SECRET_KEY_ENV,
        "forcePathStyle": s3.force_path_style,
    }
    if s3.endpoint is not None:
        settings["endpointUrl"] = s3.endpoint
    return StorageConfig(s3=settings), RunnerParts(env, [], [])


def _database(spec: BackupPolicySpec) -> tuple[str, dict[str, Any], RunnerParts]:
    source = spec.source
    db = source.postgres or source.mysql
    assert db is not None
    kind = "postgres" if source.postgres else "mysql"
    settings: dict[str, Any] = {"host": db.host, "user": db.user, "database": db.database,
                                "passwordEnv": SOURCE_PASSWORD_ENV, "extraArgs": db.extra_args}
    if db.port is not None:
        settings["port"] = db.port
    env = [secret_env(SOURCE_PASSWORD_ENV, db.password_secret_ref)]
    return kind, settings, RunnerParts(env, [], [])


def _source(spec: BackupPolicySpec) -> tuple[PartConfig, RunnerParts]:
    source = spec.source
    if source.postgres or source.mysql:
        kind, settings, parts = _database(spec)
        return PartConfig(kind=kind, settings=settings), parts
    if source.files is not None:
        volume = {"name": "source", "persistentVolumeClaim": {
            "claimName": source.files.claim_name, "readOnly": True}}
        mount = {"name": "source", "mountPath": SOURCE_MOUNT, "readOnly": True}
        path = f"{SOURCE_MOUNT}{source.files.path}".rstrip("/") or SOURCE_MOUNT
        files = PartConfig(kind="files",
                           settings={"path": path, "exclude": source.files.exclude})
        return files, RunnerParts([], [volume], [mount])
    command = source.command
    assert command is not None
    settings = {
        "command": command.command, "args": command.args,
        "env": {e.name: e.value for e in command.env if e.value is not None},
        "secretEnv": [e.name for e in command.env if e.secret_key_ref is not None],
    }
    env = [e for e in command_env(command) if "valueFrom" in e]
    return PartConfig(kind="command", settings=settings), RunnerParts(env, [], [])


def _restore_target(spec: BackupPolicySpec) -> tuple[PartConfig, RunnerParts]:
    """Restore tests go into a scratch target that never touches the source's data."""
    source = spec.source
    test = spec.restore_test
    assert test is not None
    if source.postgres or source.mysql:
        kind, settings, parts = _database(spec)
        settings.pop("extraArgs")
        settings["database"] = scratch_database(settings["database"])
        settings["dropExisting"] = True
        if test.check_query:
            settings["checkQuery"] = test.check_query
        return PartConfig(kind=kind, settings=settings), parts
    volume = {"name": "scratch", "emptyDir": {}}
    mount = {"name": "scratch", "mountPath": SCRATCH_MOUNT}
    return (PartConfig(kind="files", settings={"path": SCRATCH_MOUNT}),
            RunnerParts([], [volume], [mount]))


def _retention(spec: BackupPolicySpec) -> RetentionConfig | None:
    rules = spec.retention
    if rules is None:
        return None
    max_age = (int(parse_duration(rules.max_age).total_seconds())
               if rules.max_age is not None else None)
    return RetentionConfig(
        keep_last=rules.keep_last, keep_daily=rules.keep_daily, keep_weekly=rules.keep_weekly,
        keep_monthly=rules.keep_monthly, keep_yearly=rules.keep_yearly,
        max_age_seconds=max_age, dry_run=rules.dry_run, time_zone=spec.time_zone,
    )


def _merged(parts: list[RunnerParts]) -> RunnerParts:
    """One env var per name (the first part naming it wins), sorted for a stable render."""
    unique_env = {e["name"]: e for p in reversed(parts) for e in p.env}
    return RunnerParts(
        env=sorted(unique_env.values(), key=lambda e: e["name"]),
        volumes=[v for p in parts for v in p.volumes],
        mounts=[m for p in parts for m in p.mounts],
    )


def runner_config(
    spec: BackupPolicySpec, owner: Owner, operation: Operation
) -> tuple[RunnerConfig, RunnerParts]:
    """The runner's config for `operation` and the Secret-backed env and volumes it needs.

    Only the fields given here are rendered (`config_text`), so a default the runner adds
    later does not change every CronJob the operator has applied."""
    storage, storage_parts = _storage(spec)
    source, source_parts = _source(spec)
    encryption = spec.encryption
    assert encryption is not None
    parts = [storage_parts, source_parts]
    if encryption.key_secret_ref is not None:
        parts.append(RunnerParts([secret_env(ENCRYPTION_KEY_ENV, encryption.key_secret_ref)],
                                 [], []))
    fields: dict[str, Any] = {}
    retention = _retention(spec)
    if operation == "backup" and retention is not None:
        fields["retention"] = retention
    if operation == "restore":
        target, target_parts = _restore_target(spec)
        fields["restore_target"] = target
        parts.append(target_parts)
    config = RunnerConfig(
        operation=operation, policy=owner.name, namespace=owner.namespace,
        compression=spec.compression,
        encryption=EncryptionConfig(mode=encryption.mode, key_env=ENCRYPTION_KEY_ENV),
        storage=storage, source=source, **fields,
    )
    return config, _merged(parts)


def config_text(config: RunnerConfig) -> str:
    """The config as the runner reads it from RUNNER_CONFIG_ENV: compact JSON of the fields
    set, keys sorted, so the same policy always renders the same text."""
    wire = config.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude_none=True)
    return json.dumps(wire, separators=(",", ":"), sort_keys=True)
