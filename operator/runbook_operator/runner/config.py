"""The runner's job config: non-secret JSON in `RUNBOOK_RUNNER_CONFIG`.

Secret values (the encryption key, storage and database credentials) never appear in the
config: it names the environment variables that carry them, which the Job fills from Secrets.
Builders here turn the config plus the environment into the parts the pipeline runs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from runbook_operator.api.common import ApiModel
from runbook_operator.runner.compression import Compression
from runbook_operator.runner.crypto import (
    DEFAULT_CHUNK_SIZE,
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    Encryption,
    Key,
    parse_key,
)
from runbook_operator.runner.interfaces import RestoreTarget, RunnerError, Source, Storage

CONFIG_ENV = "RUNBOOK_RUNNER_CONFIG"
DEFAULT_KEY_ENV = "RUNBOOK_ENCRYPTION_KEY"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"

Operation = Literal["backup", "verify", "restore", "list"]


class EncryptionConfig(ApiModel):
    """`none` must be chosen explicitly: a missing key is an error, never a silent downgrade."""

    mode: Encryption = "aes-256-gcm"
    key_env: str = Field(default=DEFAULT_KEY_ENV, pattern=ENV_NAME_PATTERN)
    chunk_size: int = Field(default=DEFAULT_CHUNK_SIZE, ge=MIN_CHUNK_SIZE, le=MAX_CHUNK_SIZE)


class LocalStorageConfig(ApiModel):
    path: str = Field(min_length=1, description="Mount path of the backup volume.")
    directory: str = Field(
        default="", description="Directory inside the volume, created when missing (a fresh "
        "claim is empty).")


class StorageConfig(ApiModel):
    local: LocalStorageConfig | None = None
    s3: dict[str, Any] | None = Field(
        default=None,
        description="Settings of `storage.s3.S3Settings` (bucket, prefix, endpointUrl, region, "
        "accessKeyIdEnv, secretAccessKeyEnv, forcePathStyle, ...): names of variables, never "
        "credentials.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> StorageConfig:
        if (self.local is None) == (self.s3 is None):
            raise ValueError("storage: set exactly one of local and s3")
        return self


class PartConfig(ApiModel):
    """A source or restore target: its kind and kind-specific, non-secret settings."""

    kind: str = Field(min_length=1)
    settings: dict[str, Any] = Field(default_factory=dict)


class RetentionConfig(ApiModel):
    """The policy's retention rules, applied by the runner after each successful backup."""

    keep_last: int = Field(default=0, ge=0)
    keep_daily: int = Field(default=0, ge=0)
    keep_weekly: int = Field(default=0, ge=0)
    keep_monthly: int = Field(default=0, ge=0)
    keep_yearly: int = Field(default=0, ge=0)
    max_age_seconds: int | None = Field(default=None, ge=1)
    dry_run: bool = False
    time_zone: str = "UTC"


class RunnerConfig(ApiModel):
    operation: Operation
    policy: str = Field(pattern=NAME_PATTERN, max_length=253)
    namespace: str = Field(pattern=NAME_PATTERN, max_length=63)
    compression: Compression = "zstd"
    compression_level: int | None = None
    encryption: EncryptionConfig = Field(default_factory=EncryptionConfig)
    storage: StorageConfig
    source: PartConfig | None = Field(
        default=None,
        description="What to back up (backup); for verify, also selects the structural check "
        "of the decompressed stream (e.g. pg_restore --list).",
    )
    restore_target: PartConfig | None = Field(
        default=None, description="Where to restore to (restore)."
    )
    backup_key: str | None = Field(
        default=None,
        description="The backup to verify or restore, `<policy>/<timestamp>` in the policy's "
        "namespace; default: the newest.",
    )
    verify_before_restore: bool = True
    retention: RetentionConfig | None = Field(
        default=None, description="Pruning after a successful backup (backup)."
    )

    @model_validator(mode="after")
    def _parts_for_operation(self) -> RunnerConfig:
        if self.operation == "backup" and self.source is None:
            raise ValueError("a backup needs a source")
        if self.operation == "restore" and self.restore_target is None:
            raise ValueError("a restore needs a restoreTarget")
        return self


def parse_config(text: str) -> RunnerConfig:
    """Validate the JSON config; errors name fields, never values (which could be secrets
    put in the wrong place)."""
    try:
        return RunnerConfig.model_validate(json.loads(text))
    except json.JSONDecodeError as exc:
        raise RunnerError(
            f"{CONFIG_ENV} is not valid JSON (line {exc.lineno}, column {exc.colno})",
            reason="InvalidConfig",
        ) from None
    except ValidationError as exc:
        raise RunnerError(
            f"invalid runner config: {_problems(exc)}", reason="InvalidConfig"
        ) from None


def _problems(exc: ValidationError) -> str:
    """Field paths and messages only: the values could be secrets put in the wrong place."""
    return "; ".join(
        f"{'.'.join(map(str, error['loc'])) or 'config'}: {error['msg']}"
        for error in exc.errors(include_input=False)
    )


def load_config(env: Mapping[str, str]) -> RunnerConfig:
    text = env.get(CONFIG_ENV)
    if not text:
        raise RunnerError(f"{CONFIG_ENV} is not set", reason="InvalidConfig")
    return parse_config(text)


def load_key(config: EncryptionConfig, env: Mapping[str, str], *, for_backup: bool) -> Key | None:
    """The encryption key from its environment variable.

    A backup needs it unless the mode is explicitly `none`. Reading a backup takes it when it
    is set: the backup's manifest says whether one is needed, and the pipeline reports
    `MissingKey` or `WrongKey` against that."""
    if for_backup and config.mode == "none":
        return None
    value = env.get(config.key_env)
    if value:
        return parse_key(value)
    if for_backup:
        raise RunnerError(
            f"encryption is {config.mode} but the key variable {config.key_env} is empty or "
            f"unset; set the key Secret, or choose encryption none explicitly",
            reason="MissingKey",
        )
    return None


def build_storage(config: StorageConfig, namespace: str) -> Storage:
    """The namespace's part of the configured storage: `<path or prefix>/<namespace>/`, so
    same-named policies of two namespaces sharing a volume or bucket never meet."""
    if config.local is not None:
        from runbook_operator.runner.storage.local import LocalStorage

        return LocalStorage(config.local.path, namespace, config.local.directory)
    try:
        from runbook_operator.runner.storage.s3 import S3Storage
    except ImportError as exc:
        raise RunnerError(
            f"S3 storage is not available in this runner: {exc}", reason="StorageUnavailable"
        ) from None
    try:
        return S3Storage.from_settings(config.s3 or {}, namespace)
    except ValidationError as exc:
        raise RunnerError(f"invalid s3 storage: {_problems(exc)}", reason="InvalidConfig") from None


def _sources(parts: str, reason: str) -> ModuleType:
    """The sources package, or why this runner cannot build `parts` without it."""
    try:
        from runbook_operator.runner import sources
    except ImportError as exc:
        raise RunnerError(
            f"{parts} are not available in this runner: {exc}", reason=reason
        ) from None
    return sources


def build_source(config: PartConfig) -> Source:
    return _sources("backup sources", "SourceUnavailable").build_source(
        config.kind, config.settings)


def build_restore_target(config: PartConfig) -> RestoreTarget:
    return _sources("restore targets", "RestoreTargetUnavailable").build_restore_target(
        config.kind, config.settings)


def build_verifier(config: PartConfig) -> RestoreTarget | None:
    """The structural check for a source kind's dumps, or None when the kind has none."""
    return _sources("backup verifiers", "SourceUnavailable").build_verifier(
        config.kind, config.settings)
