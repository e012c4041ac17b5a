"""What the database sources (PostgreSQL, MySQL) share: how a client tool connects, with the
password only in its environment, and a restore that ends with an optional check query."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from runbook_operator.runner.interfaces import RestoreError, RunnerError
from runbook_operator.runner.sources import read_env
from runbook_operator.runner.sources.command import ProcessSink, child_env, run_tool


class Client(NamedTuple):
    """How to run one client tool: connection options for its argv, its environment and the
    secrets to scrub from its errors."""

    args: list[str]
    env: dict[str, str]
    secrets: list[str]


def client(
    args: list[str],
    password_env: str | None,
    password_variable: str,
    error: type[RunnerError],
    extra: Mapping[str, str] | None = None,
    passthrough: Callable[[str], bool] | None = None,
) -> Client:
    """A client whose password, read from the variable the settings name, reaches the tool as
    `password_variable` (PGPASSWORD, MYSQL_PWD) and never through its argv."""
    env = dict(extra or {})
    secrets: list[str] = []
    if password_env:
        password = read_env(password_env, error)
        env[password_variable] = password
        secrets.append(password)
    return Client(args, child_env(env, passthrough), secrets)


class CheckedRestoreSink(ProcessSink):
    """A client tool replaying the dump; once it succeeded, the check query runs (`check`: its
    argv, None without one) and must print `expect` when one is given."""

    def __init__(
        self,
        argv: Sequence[str],
        client: Client,
        check: Sequence[str] | None,
        expect: str | None,
        what: str,
    ) -> None:
        self._client, self._check, self._expect = client, check, expect
        #: The check query's output, once finish() has run it.
        self.check_result: str | None = None
        super().__init__(argv, client.env, client.secrets, what=what)

    def finish(self) -> None:
        super().finish()
        if self._check is None:
            return
        self.check_result = run_tool(
            self._check, self._client.env, self._client.secrets, RestoreError, what="check query"
        )
        if self._expect is not None and self.check_result != self._expect:
            raise RestoreError(
                f"check query returned {self.check_result!r}, expected {self._expect!r}",
                reason="CheckFailed",
            )
