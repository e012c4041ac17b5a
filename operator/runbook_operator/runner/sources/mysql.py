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
from runbook_operator.runner.sources import MySQLConnection, MySQLRestoreSettings, MySQLSettings
from runbook_operator.runner.sources.command import ProcessDump, run_tool
from runbook_operator.runner.sources.database import CheckedRestoreSink, Client, client

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


def connection(settings: MySQLConnection, error: type[RunnerError]) -> Client:
    """The options, environment and secrets of a MySQL client tool."""
    args = [
        f"--host={settings.host}",
        f"--port={settings.port}",
        f"--user={settings.user}",
        "--protocol=TCP",
    ]
    return client(args, settings.password_env, "MYSQL_PWD", error)


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


class MySQLRestoreTarget:
    """`mysql` replaying the dump into a scratch database (dropped and created first if asked);
    on success the optional check query runs."""

    kind = "mysql"

    def __init__(self, settings: MySQLRestoreSettings) -> None:
        self.settings = settings

    def start(self) -> CheckedRestoreSink:
        s = self.settings
        tool = connection(s, RestoreError)
        statements = []
        if s.drop_existing:
            statements.append(f"DROP DATABASE IF EXISTS {quote_identifier(s.database)}")
        if s.create_database:
            statements.append(f"CREATE DATABASE {quote_identifier(s.database)}")
        if statements:
            run_tool(
                ["mysql", *tool.args, f"--execute={'; '.join(statements)}"],
                tool.env,
                tool.secrets,
                RestoreError,
                what=f"creating database {s.database}",
            )
        database = f"--database={s.database}"
        check = None if s.check_query is None else [
            "mysql", *tool.args, "--batch", "--skip-column-names", database,
            f"--execute={s.check_query}",
        ]
        return CheckedRestoreSink(
            ["mysql", *tool.args, "--binary-mode", *s.extra_args, database],
            tool,
            check,
            s.expect,
            what=f"mysql restore into {s.database}",
        )


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
