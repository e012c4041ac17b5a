"""Backup sources and restore targets: their settings, and the factories the runner calls.

Settings are plain dicts from the runner's config (camelCase keys, as in the CRDs). They never
hold secret values: a password is named by the environment variable that holds it
(``passwordEnv``), which the Job fills from a Secret. The value is handed to the tool only through
the tool's own environment, never its argv, and is scrubbed from any error output we report.
"""

from __future__ import annotations

import importlib
import os
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from runbook_operator.runner.interfaces import RestoreTarget, RunnerError, Source

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
EnvName = Annotated[str, Field(pattern=ENV_NAME, max_length=128)]
Port = Annotated[int, Field(ge=1, le=65535)]


class SettingsModel(BaseModel):
    """Strict (unknown keys are errors: a typo must not silently change a backup), camelCase."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


def read_env(name: str, error: type[RunnerError]) -> str:
    """The value of a variable the settings name; a missing one is an error, never a silent
    empty password."""
    value = os.environ.get(name)
    if value is None:
        raise error(f"environment variable {name} is not set (expected from a Secret)")
    return value


class PostgresConnection(SettingsModel):
    host: str = Field(default="localhost", min_length=1)
    port: Port = 5432
    user: str = Field(min_length=1)
    password_env: EnvName | None = None
    ssl_mode: (
        Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None
    ) = None


class PostgresSettings(PostgresConnection):
    """`pg_dump --format=custom -Z0` of one database (the pipeline compresses)."""

    database: str = Field(min_length=1)
    extra_args: list[str] = Field(default_factory=list)


class PostgresRestoreSettings(PostgresConnection):
    """`pg_restore` into a scratch database, created first and optionally checked by a query."""

    database: str = Field(min_length=1, description="The scratch database restored into.")
    maintenance_database: str = "postgres"
    create_database: bool = True
    drop_existing: bool = Field(
        default=False, description="Drop the scratch database first if it exists (restore tests)."
    )
    check_query: str | None = None
    expect: str | None = Field(default=None, description="The check query's required output.")
    extra_args: list[str] = Field(default_factory=list)


class MySQLConnection(SettingsModel):
    host: str = Field(default="localhost", min_length=1)
    port: Port = 3306
    user: str = Field(min_length=1)
    password_env: EnvName | None = None


class MySQLSettings(MySQLConnection):
    """`mysqldump --single-transaction` of one database (MySQL or MariaDB)."""

    database: str = Field(min_length=1)
    extra_args: list[str] = Field(default_factory=list)


class MySQLRestoreSettings(MySQLConnection):
    """The `mysql` client replaying a dump into a scratch database."""

    database: str = Field(min_length=1, max_length=64, description="The scratch database.")
    create_database: bool = True
    drop_existing: bool = False
    check_query: str | None = None
    expect: str | None = None
    extra_args: list[str] = Field(default_factory=list)


class FilesSettings(SettingsModel):
    """A tar stream of a directory (a mounted PVC)."""

    path: str = Field(min_length=1)
    exclude: list[str] = Field(
        default_factory=list,
        description="Glob patterns matched against paths relative to `path`; a pattern without "
        "'/' also matches any entry's name. An excluded directory is skipped whole.",
    )


class FilesRestoreSettings(SettingsModel):
    """Extract a tar stream into a directory, refusing anything that would land outside it."""

    path: str = Field(min_length=1)
    overwrite: bool = Field(default=False, description="Allow a non-empty target directory.")
    preserve_ownership: bool = Field(
        default=False, description="Restore numeric owners (needs root); else the runner's user."
    )


class CommandSettings(SettingsModel):
    """An exec array (no shell unless you run one) whose stdout is the backup, or which reads
    the dump on stdin when used as a restore target."""

    command: list[str] = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[EnvName, str] = Field(
        default_factory=dict, description="Literal, non-secret variables for the command."
    )
    pass_env: list[EnvName] = Field(
        default_factory=list, description="Names of the runner's variables the command gets."
    )
    secret_env: list[EnvName] = Field(
        default_factory=list,
        description="Like passEnv, and their values are scrubbed from reported errors.",
    )
    working_dir: str | None = None


M = TypeVar("M", bound=SettingsModel)


def parse_settings(model: type[M], settings: dict[str, Any], what: str) -> M:
    """Validate settings; errors name fields and problems but never echo values."""
    try:
        return model.model_validate(settings)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
            for e in error.errors(include_input=False, include_url=False)
        )
        raise RunnerError(
            f"invalid {what} settings: {problems}", reason="InvalidSettings"
        ) from None


Role = Literal["source", "restore target"]
#: Per kind (also the name of its module here): the class and settings model of each role.
_PARTS: dict[str, dict[Role, tuple[str, type[SettingsModel]]]] = {
    "postgres": {
        "source": ("PostgresSource", PostgresSettings),
        "restore target": ("PostgresRestoreTarget", PostgresRestoreSettings),
    },
    "mysql": {
        "source": ("MySQLSource", MySQLSettings),
        "restore target": ("MySQLRestoreTarget", MySQLRestoreSettings),
    },
    "files": {
        "source": ("FilesSource", FilesSettings),
        "restore target": ("FilesRestoreTarget", FilesRestoreSettings),
    },
    "command": {
        "source": ("CommandSource", CommandSettings),
        "restore target": ("CommandRestoreTarget", CommandSettings),
    },
}
#: The kinds build_source and build_restore_target accept.
KINDS = tuple(_PARTS)


def _unknown(kind: str, what: str) -> RunnerError:
    return RunnerError(
        f"unknown {what} kind {kind!r} (expected one of {', '.join(KINDS)})",
        reason="InvalidSettings",
    )


def _build(kind: str, role: Role, settings: dict[str, Any]) -> Any:
    """The kind's part for `role`, its settings validated."""
    if kind not in _PARTS:
        raise _unknown(kind, role)
    class_name, model = _PARTS[kind][role]
    # Imported on use: the modules import the settings models above.
    part = getattr(importlib.import_module(f"{__name__}.{kind}"), class_name)
    return part(parse_settings(model, settings, f"{kind} {role}"))


def build_source(kind: str, settings: dict[str, Any]) -> Source:
    return _build(kind, "source", settings)


def build_restore_target(kind: str, settings: dict[str, Any]) -> RestoreTarget:
    return _build(kind, "restore target", settings)


def build_verifier(kind: str, settings: dict[str, Any]) -> RestoreTarget | None:
    """A structural check of a backup's decompressed stream, given the *source* settings, or
    None when the kind has none. Its sink raises VerificationError; it accepts the whole stream
    even when the check needs only its start (pg_restore --list reads the TOC and exits)."""
    if kind == "postgres":
        from runbook_operator.runner.sources.postgres import PgRestoreListVerifier

        return PgRestoreListVerifier()
    if kind == "mysql":
        from runbook_operator.runner.sources.mysql import DumpCompletedVerifier

        source = parse_settings(MySQLSettings, settings, "mysql source")
        return DumpCompletedVerifier() if DumpCompletedVerifier.applies(source) else None
    if kind == "files":
        from runbook_operator.runner.sources.files import TarVerifier

        return TarVerifier()
    if kind == "command":
        return None
    raise _unknown(kind, "source")
