"""A custom command whose stdout is the backup, and the process plumbing every tool-based source
(pg_dump, mysqldump, ...) shares.

Rules this module enforces for all of them:
- a child gets a minimal environment (never the runner's own, which holds storage credentials
  and the encryption key) plus exactly the variables its settings name;
- secrets reach a child only through that environment;
- stderr is read by a thread into a bounded tail (a chatty tool can never block on a full pipe),
  and secret values are scrubbed from it before it goes into any error;
- a non-zero exit, or death by a signal, is always a failure.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, BinaryIO, cast

from runbook_operator.runner.interfaces import RestoreError, RunnerError, SourceError
from runbook_operator.runner.sources import CommandSettings, read_env

#: Bytes of a tool's stderr kept for error messages (results go into a 4 KiB termination message).
STDERR_TAIL_BYTES = 1500
#: Pipe capacity for dump and restore streams: fewer wake-ups than the 64 KiB default.
PIPE_SIZE = 1 << 20
#: The only variables of the runner's environment a child inherits unasked.
BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME")
REDACTED = b"[REDACTED]"
_JOIN_TIMEOUT = 10.0


def child_env(
    extra: Mapping[str, str], passthrough: Callable[[str], bool] | None = None
) -> dict[str, str]:
    """BASE_ENV, plus our variables `passthrough` accepts, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k in BASE_ENV or (passthrough and passthrough(k))}
    env.update(extra)
    return env


def scrub(data: bytes, secrets: Iterable[str]) -> bytes:
    for secret in secrets:
        if secret:
            data = data.replace(secret.encode(), REDACTED)
    return data


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


class StderrTail:
    """Drains a pipe in a thread, keeping its last bytes; `text()` is scrubbed of secrets.

    It keeps `limit` bytes plus a margin as long as the longest secret and cuts that margin off
    after scrubbing, so a secret straddling the cut can never leave a fragment behind."""

    def __init__(
        self, pipe: IO[bytes], secrets: Sequence[str], limit: int = STDERR_TAIL_BYTES
    ) -> None:
        self._pipe = pipe
        self._secrets = [s for s in secrets if s]
        self._margin = max((len(s.encode()) for s in self._secrets), default=0)
        self._limit = limit
        self._buffer = bytearray()
        self._truncated = False
        self._thread = threading.Thread(target=self._drain, name="stderr-tail", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        keep = self._limit + self._margin
        fd = self._pipe.fileno()
        try:
            while chunk := os.read(fd, 65536):
                self._buffer += chunk
                if len(self._buffer) > keep:
                    del self._buffer[: len(self._buffer) - keep]
                    self._truncated = True
        except OSError:
            pass
        finally:
            self._pipe.close()

    def text(self) -> str:
        self._thread.join(_JOIN_TIMEOUT)
        data = scrub(bytes(self._buffer), self._secrets)
        if self._truncated:
            data = data[self._margin :]
        if len(data) > self._limit:
            data = data[-self._limit :]
        return data.decode(errors="replace").strip()


def _popen(
    argv: Sequence[str],
    env: Mapping[str, str],
    what: str,
    error: type[RunnerError],
    **kwargs: object,
) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(list(argv), env=dict(env), stderr=subprocess.PIPE, **kwargs)  # type: ignore[call-overload]
    except FileNotFoundError:
        raise error(f"{what}: {argv[0]} not found (is it installed and on PATH?)") from None
    except OSError as exc:
        raise error(f"{what}: cannot run {argv[0]}: {exc.strerror}") from None


class _Tool:
    """A started tool whose stderr is drained into a tail scrubbed of `secrets`; `wait` makes
    a non-zero exit `error`, with that tail."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        secrets: Sequence[str],
        what: str | None,
        error: type[RunnerError],
        **popen: object,
    ) -> None:
        self.what = what or os.path.basename(argv[0])
        self.error = error
        self.proc = _popen(argv, env, self.what, error, **popen)
        assert self.proc.stderr is not None
        self.stderr = StderrTail(self.proc.stderr, secrets)

    def wait(self) -> None:
        returncode = self.proc.wait()
        tail = self.stderr.text()
        if returncode != 0:
            raise self.error(f"{self.what} failed ({describe_exit(returncode)}): "
                             f"{tail or 'no error output'}")


class ProcessDump:
    """A running tool whose stdout is the dump."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        secrets: Sequence[str] = (),
        what: str | None = None,
        cwd: str | None = None,
    ) -> None:
        self._tool = _Tool(argv, env, secrets, what, SourceError, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, cwd=cwd, pipesize=PIPE_SIZE)
        self.what = self._tool.what
        self.stream = cast(BinaryIO, self._tool.proc.stdout)

    def finish(self) -> None:
        # Closing first: a reader that stopped early makes the tool fail (EPIPE), not hang.
        self.stream.close()
        self._tool.wait()


class GuardedWriter(io.RawIOBase):
    """The write end handed to the pipeline. When the consumer went away (EPIPE), `on_broken`
    decides: raise the consumer's own error (why the restore failed), or return True to accept
    and discard the rest (a check that needed only the start of the stream)."""

    def __init__(self, raw: IO[bytes], on_broken: Callable[[], bool]) -> None:
        super().__init__()
        self._raw = raw
        self._on_broken = on_broken
        self._discarding = False
        #: The consumer exited before taking the last buffered bytes (seen only at close).
        self.broken_at_close = False

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("write to a closed restore stream")
        size = memoryview(data).nbytes
        if not self._discarding:
            try:
                self._raw.write(data)
            except BrokenPipeError:
                self._discarding = self._on_broken()
        return size

    def flush(self) -> None:
        if not self._discarding and not self._raw.closed:
            try:
                self._raw.flush()
            except BrokenPipeError:
                self._discarding = self._on_broken()

    def close(self) -> None:
        if not self.closed:
            try:
                self._raw.close()
            except BrokenPipeError:
                self.broken_at_close = not self._discarding
        super().close()


class ProcessSink:
    """A running tool reading the dump on stdin.

    `stdout` (optional) consumes the tool's stdout in a thread; `early_exit_ok` makes a tool that
    exits successfully before reading everything a success, with the rest discarded."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        secrets: Sequence[str] = (),
        what: str | None = None,
        error: type[RunnerError] = RestoreError,
        stdout: Callable[[IO[bytes]], None] | None = None,
        early_exit_ok: bool = False,
        cwd: str | None = None,
    ) -> None:
        self._tool = _Tool(argv, env, secrets, what, error, stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE if stdout else subprocess.DEVNULL, cwd=cwd,
                           pipesize=PIPE_SIZE)
        self.what = self._tool.what
        self._early_exit_ok = early_exit_ok
        proc = self._tool.proc
        assert proc.stdin is not None
        self._stdout_thread: threading.Thread | None = None
        if stdout is not None:
            assert proc.stdout is not None
            self._stdout_thread = threading.Thread(
                target=stdout, args=(proc.stdout,), name=f"{self.what}-stdout", daemon=True
            )
            self._stdout_thread.start()
        self._writer = GuardedWriter(proc.stdin, self._on_broken)
        self.stream: BinaryIO = self._writer  # type: ignore[assignment]

    def _read_all(self) -> RunnerError:
        return self._tool.error(f"{self.what} exited before reading all of its input")

    def _on_broken(self) -> bool:
        self._tool.wait()
        if self._early_exit_ok:
            return True
        raise self._read_all()

    def finish(self) -> None:
        self._writer.close()
        try:
            self._tool.wait()
        finally:
            if self._stdout_thread is not None:
                self._stdout_thread.join(_JOIN_TIMEOUT)
        if self._writer.broken_at_close and not self._early_exit_ok:
            raise self._read_all()


def run_tool(
    argv: Sequence[str],
    env: Mapping[str, str],
    secrets: Sequence[str],
    error: type[RunnerError],
    what: str | None = None,
    output_limit: int = 4096,
) -> str:
    """Run a short helper (createdb, a check query) to completion: its stdout, at most
    `output_limit` bytes of it, or `error` with the scrubbed stderr tail."""
    tool = _Tool(argv, env, secrets, what, error, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    stdout = tool.proc.stdout
    assert stdout is not None
    output = bytearray()
    while chunk := stdout.read(65536):
        if len(output) < output_limit:
            output += chunk[: output_limit - len(output)]
    stdout.close()
    tool.wait()
    return scrub(bytes(output), secrets).decode(errors="replace").strip()


class _CommandBase:
    kind = "command"

    def __init__(self, settings: CommandSettings) -> None:
        self.settings = settings

    def _prepare(self, error: type[RunnerError]) -> tuple[list[str], dict[str, str], list[str]]:
        s = self.settings
        passed = {name: read_env(name, error) for name in s.pass_env}
        secret = {name: read_env(name, error) for name in s.secret_env}
        env = child_env({**s.env, **passed, **secret})
        return [*s.command, *s.args], env, list(secret.values())


class CommandSource(_CommandBase):
    """The command's stdout is the backup; a non-zero exit fails it."""

    def start(self) -> ProcessDump:
        argv, env, secrets = self._prepare(SourceError)
        return ProcessDump(argv, env, secrets, cwd=self.settings.working_dir)


class CommandRestoreTarget(_CommandBase):
    """The command reads the dump on stdin; a non-zero exit fails the restore."""

    def start(self) -> ProcessSink:
        argv, env, secrets = self._prepare(RestoreError)
        return ProcessSink(argv, env, secrets, cwd=self.settings.working_dir)
