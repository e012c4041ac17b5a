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
    PostgresConnection,
    PostgresRestoreSettings,
    PostgresSettings,
)
from runbook_operator.runner.sources.command import ProcessDump, ProcessSink, child_env, run_tool
from runbook_operator.runner.sources.database import CheckedRestoreSink, Client, client


def _libpq_passthrough(name: str) -> bool:
    """libpq settings a Job may set (PGSSLROOTCERT, PGCONNECT_TIMEOUT, ...) pass through; the
    password only ever comes from passwordEnv."""
    return name.startswith("PG") and name != "PGPASSWORD"


def connection(settings: PostgresConnection, error: type[RunnerError]) -> Client:
    """The options, environment and secrets of a libpq tool."""
    args = [
        f"--host={settings.host}",
        f"--port={settings.port}",
        f"--username={settings.user}",
        "--no-password",
    ]
    extra = {"PGSSLMODE": settings.ssl_mode} if settings.ssl_mode else {}
    return client(args, settings.password_env, "PGPASSWORD", error, extra, _libpq_passthrough)


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


class PostgresRestoreTarget:
    """pg_restore reading stdin into a scratch database, created first (and dropped first if
    asked); on success the optional check query runs."""

    kind = "postgres"

    def __init__(self, settings: PostgresRestoreSettings) -> None:
        self.settings = settings

    def start(self) -> CheckedRestoreSink:
        s = self.settings
        if s.database == s.maintenance_database:
            raise RestoreError(f"refusing to restore into the maintenance database {s.database!r}")
        tool = connection(s, RestoreError)
        args, env, secrets = tool
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
        database = f"--dbname={s.database}"
        check = None if s.check_query is None else [
            "psql", "-X", "--quiet", "--no-align", "--tuples-only", "--set=ON_ERROR_STOP=1",
            *args, database, f"--command={s.check_query}",
        ]
        return CheckedRestoreSink(
            ["pg_restore", "--no-owner", "--exit-on-error", *args, *s.extra_args, database],
            tool,
            check,
            s.expect,
            what=f"pg_restore into {s.database}",
        )


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
