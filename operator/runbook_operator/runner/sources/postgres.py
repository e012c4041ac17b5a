"""PostgreSQL: `pg_dump --format=custom -Z0` as the source, `pg_restore` into a scratch database as
the restore target, and `pg_restore --list` as the verifier.

`-Z0` because compression is the pipeline's job: pg_dump's own zlib is several times slower than
the pipeline's zstd, and compressing twice gains nothing. The custom format is what pg_restore
needs for selective and verified restores, and it streams (no seeking) in both directions.
The password travels as PGPASSWORD in the tool's environment only; `--no-password` makes a
missing or wrong one fail at once instead of prompting.
"""

from __future__ import annotations

from typing import IO

from runbook_operator.runner.interfaces import (
    RestoreError,
    RunnerError,
    SourceError,
    VerificationError,
)
from runbook_operator.runner.sources import (
    check_expected,
    PostgresConnection,
    PostgresRestoreSettings,
    PostgresSettings,
    read_env,
)
from runbook_operator.runner.sources.command import ProcessDump, ProcessSink, child_env, run_tool


def _libpq_passthrough(name: str) -> bool:
    """libpq settings a Job may set (PGSSLROOTCERT, PGCONNECT_TIMEOUT, ...) pass through; the
    password only ever comes from passwordEnv."""
    return name.startswith("PG") and name != "PGPASSWORD"


def connection(
    settings: PostgresConnection, error: type[RunnerError]
) -> tuple[list[str], dict[str, str], list[str]]:
    """argv options, environment and secrets for a libpq tool."""
    args = [
        f"--host={settings.host}",
        f"--port={settings.port}",
        f"--username={settings.user}",
        "--no-password",
    ]
    extra: dict[str, str] = {}
    secrets: list[str] = []
    if settings.password_env:
        password = read_env(settings.password_env, error)
        extra["PGPASSWORD"] = password
        secrets.append(password)
    if settings.ssl_mode:
        extra["PGSSLMODE"] = settings.ssl_mode
    return args, child_env(extra, _libpq_passthrough), secrets


class PostgresSource:
    kind = "postgres"

    def __init__(self, settings: PostgresSettings) -> None:
        self.settings = settings

    def start(self) -> ProcessDump:
        args, env, secrets = connection(self.settings, SourceError)
        argv = [
            "pg_dump",
            "--format=custom",
            "-Z0",
            *args,
            *self.settings.extra_args,
            f"--dbname={self.settings.database}",
        ]
        return ProcessDump(argv, env, secrets, what=f"pg_dump of {self.settings.database}")


class PostgresRestoreSink(ProcessSink):
    """pg_restore reading stdin; on success the optional check query runs."""

    def __init__(
        self,
        settings: PostgresRestoreSettings,
        args: list[str],
        env: dict[str, str],
        secrets: list[str],
    ) -> None:
        self.settings = settings
        self._args, self._env, self._secrets = args, env, secrets
        #: The check query's output, once finish() has run it.
        self.check_result: str | None = None
        super().__init__(
            [
                "pg_restore",
                "--no-owner",
                "--exit-on-error",
                *args,
                *settings.extra_args,
                f"--dbname={settings.database}",
            ],
            env,
            secrets,
            what=f"pg_restore into {settings.database}",
        )

    def finish(self) -> None:
        super().finish()
        query = self.settings.check_query
        if query is None:
            return
        self.check_result = run_tool(
            [
                "psql",
                "-X",
                "--quiet",
                "--no-align",
                "--tuples-only",
                "--set=ON_ERROR_STOP=1",
                *self._args,
                f"--dbname={self.settings.database}",
                f"--command={query}",
            ],
            self._env,
            self._secrets,
            RestoreError,
            what="check query",
        )
        check_expected(self.check_result, self.settings.expect)


class PostgresRestoreTarget:
    """Restores into a scratch database, created first (and dropped first if asked)."""

    kind = "postgres"

    def __init__(self, settings: PostgresRestoreSettings) -> None:
        self.settings = settings

    def start(self) -> PostgresRestoreSink:
        s = self.settings
        if s.database == s.maintenance_database:
            raise RestoreError(f"refusing to restore into the maintenance database {s.database!r}")
        args, env, secrets = connection(s, RestoreError)
        maintenance = f"--maintenance-db={s.maintenance_database}"
        if s.drop_existing:
            run_tool(
                ["dropdb", "--if-exists", "--force", *args, maintenance, s.database],
                env,
                secrets,
                RestoreError,
            )
        if s.create_database:
            run_tool(["createdb", *args, maintenance, s.database], env, secrets, RestoreError)
        return PostgresRestoreSink(s, args, env, secrets)


class PgRestoreListSink(ProcessSink):
    """`pg_restore --list` on the stream: it must exit 0 and list at least one TOC entry. It reads
    only the header and TOC and exits; the rest of the stream is then accepted and discarded."""

    def __init__(self) -> None:
        self.entries = 0
        super().__init__(
            ["pg_restore", "--list"],
            child_env({}),
            what="pg_restore --list",
            error=VerificationError,
            stdout=self._count,
            early_exit_ok=True,
        )

    def _count(self, stdout: IO[bytes]) -> None:
        with stdout:
            for line in stdout:
                if line.strip() and not line.startswith(b";"):
                    self.entries += 1

    def finish(self) -> None:
        super().finish()
        if self.entries == 0:
            raise VerificationError("pg_restore --list found no entries in the archive's TOC")


class PgRestoreListVerifier:
    kind = "postgres"

    def start(self) -> PgRestoreListSink:
        return PgRestoreListSink()
