"""MySQL and MariaDB: `mysqldump --single-transaction` as the source, the `mysql` client into a
scratch database as the restore target, and the dump's closing comment as the verifier.

The dump names one database without `--databases`, so it carries no CREATE DATABASE/USE and
restores into whichever database the target names. `--protocol=TCP` because the clients treat
host "localhost" as "use the Unix socket". The password travels as MYSQL_PWD in the tool's
environment only (both MySQL's and MariaDB's clients read it).
"""

from __future__ import annotations

import io
from typing import BinaryIO

from runbook_operator.runner.interfaces import (
    RestoreError,
    RunnerError,
    SourceError,
    VerificationError,
)
from runbook_operator.runner.sources import (
    check_expected,
    MySQLConnection,
    MySQLRestoreSettings,
    MySQLSettings,
    read_env,
)
from runbook_operator.runner.sources.command import ProcessDump, ProcessSink, child_env, run_tool

DUMP_OPTIONS = (
    "--single-transaction",
    "--routines",
    "--triggers",
    "--hex-blob",
    "--default-character-set=utf8mb4",
)
#: Options that drop the "-- Dump completed" trailer the verifier looks for.
_NO_TRAILER_OPTIONS = ("--skip-comments", "--compact")
_TRAILER = b"-- Dump completed"
_TAIL_BYTES = 4096


def connection(
    settings: MySQLConnection, error: type[RunnerError]
) -> tuple[list[str], dict[str, str], list[str]]:
    """argv options, environment and secrets for a MySQL client tool."""
    args = [
        f"--host={settings.host}",
        f"--port={settings.port}",
        f"--user={settings.user}",
        "--protocol=TCP",
    ]
    extra: dict[str, str] = {}
    secrets: list[str] = []
    if settings.password_env:
        password = read_env(settings.password_env, error)
        extra["MYSQL_PWD"] = password
        secrets.append(password)
    return args, child_env(extra), secrets


def quote_identifier(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class MySQLSource:
    kind = "mysql"

    def __init__(self, settings: MySQLSettings) -> None:
        self.settings = settings

    def start(self) -> ProcessDump:
        args, env, secrets = connection(self.settings, SourceError)
        argv = [
            "mysqldump",
            *args,
            *DUMP_OPTIONS,
            *self.settings.extra_args,
            "--",
            self.settings.database,
        ]
        return ProcessDump(argv, env, secrets, what=f"mysqldump of {self.settings.database}")


class MySQLRestoreSink(ProcessSink):
    """`mysql` replaying the dump; on success the optional check query runs."""

    def __init__(
        self,
        settings: MySQLRestoreSettings,
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
                "mysql",
                *args,
                "--binary-mode",
                *settings.extra_args,
                f"--database={settings.database}",
            ],
            env,
            secrets,
            what=f"mysql restore into {settings.database}",
        )

    def finish(self) -> None:
        super().finish()
        query = self.settings.check_query
        if query is None:
            return
        self.check_result = run_tool(
            [
                "mysql",
                *self._args,
                "--batch",
                "--skip-column-names",
                f"--database={self.settings.database}",
                f"--execute={query}",
            ],
            self._env,
            self._secrets,
            RestoreError,
            what="check query",
        )
        check_expected(self.check_result, self.settings.expect)


class MySQLRestoreTarget:
    kind = "mysql"

    def __init__(self, settings: MySQLRestoreSettings) -> None:
        self.settings = settings

    def start(self) -> MySQLRestoreSink:
        s = self.settings
        args, env, secrets = connection(s, RestoreError)
        statements = []
        if s.drop_existing:
            statements.append(f"DROP DATABASE IF EXISTS {quote_identifier(s.database)}")
        if s.create_database:
            statements.append(f"CREATE DATABASE {quote_identifier(s.database)}")
        if statements:
            run_tool(
                ["mysql", *args, f"--execute={'; '.join(statements)}"],
                env,
                secrets,
                RestoreError,
                what=f"creating database {s.database}",
            )
        return MySQLRestoreSink(s, args, env, secrets)


class DumpCompletedSink:
    """Checks the stream ends with mysqldump's "-- Dump completed" trailer, which it writes only
    after dumping everything: a dump cut short (a killed mysqldump) lacks it."""

    def __init__(self) -> None:
        self._tail = bytearray()
        self.stream: BinaryIO = _TailKeeper(self._tail)  # type: ignore[assignment]

    def finish(self) -> None:
        lines = [line for line in bytes(self._tail).splitlines() if line.strip()]
        if not lines or not lines[-1].startswith(_TRAILER):
            raise VerificationError("the dump lacks mysqldump's '-- Dump completed' trailer")


class _TailKeeper(io.RawIOBase):
    """A write-only stream that keeps only the last bytes written."""

    def __init__(self, tail: bytearray) -> None:
        super().__init__()
        self._tail = tail

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        self._tail += view[-_TAIL_BYTES:]
        if len(self._tail) > _TAIL_BYTES:
            del self._tail[: len(self._tail) - _TAIL_BYTES]
        return view.nbytes


class DumpCompletedVerifier:
    kind = "mysql"

    @staticmethod
    def applies(settings: MySQLSettings) -> bool:
        return not any(arg in _NO_TRAILER_OPTIONS for arg in settings.extra_args)

    def start(self) -> DumpCompletedSink:
        return DumpCompletedSink()
