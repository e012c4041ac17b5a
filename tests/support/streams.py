"""Stream plumbing the runner tests share: sources made by shell scripts, a stepping clock,
pipeline settings, and what the pipeline does minus compression and storage."""

from __future__ import annotations

import hashlib
import io
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from runbook_operator.runner.compression import Compression
from runbook_operator.runner.crypto import Key
from runbook_operator.runner.interfaces import Dump, RestoreSink, RestoreTarget, Source, SourceError
from runbook_operator.runner.pipeline import BackupSettings

CHUNK = 256 * 1024
KEY = Key(bytes(range(32)))
START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class Clock:
    """A controllable clock: each reading is `step` later than the previous one."""

    def __init__(self, start: datetime = START, step: float = 1.5) -> None:
        self.now = start
        self.step = timedelta(seconds=step)

    def __call__(self) -> datetime:
        current = self.now
        self.now += self.step
        return current


class ShellDump:
    def __init__(self, script: str, stderr_path: Path) -> None:
        self._stderr = open(stderr_path, "w+b")  # noqa: SIM115 - closed in finish
        self._process = subprocess.Popen(
            ["sh", "-c", script], stdout=subprocess.PIPE, stderr=self._stderr
        )
        self.stream: BinaryIO = self._process.stdout  # type: ignore[assignment]

    def finish(self) -> None:
        code = self._process.wait()
        self.stream.close()
        self._stderr.seek(0, io.SEEK_END)
        self._stderr.seek(max(0, self._stderr.tell() - 2000))
        tail = self._stderr.read().decode(errors="replace")
        self._stderr.close()
        if code:
            raise SourceError(f"the dump exited with {code}: {tail}")

    @property
    def returncode(self) -> int | None:
        return self._process.returncode


class ShellSource:
    """A dump made by a shell script's stdout; stderr goes to a file so it can never block."""

    kind = "command"

    def __init__(self, script: str, workdir: Path) -> None:
        self.script = script
        self.workdir = workdir
        self.dumps: list[ShellDump] = []

    def start(self) -> ShellDump:
        dump = ShellDump(self.script, self.workdir / f"stderr-{len(self.dumps)}")
        self.dumps.append(dump)
        return dump


def settings(
    compression: Compression = "zstd", key: Key | None = KEY, **extra: object
) -> BackupSettings:
    return BackupSettings(
        policy="db",
        namespace="team-a",
        encryption="aes-256-gcm" if key else "none",
        key=key,
        compression=compression,
        chunk_size=64 * 1024,
        **extra,  # type: ignore[arg-type]
    )




def read_dump(source: Source) -> bytes:
    """Run a source to the end and return its bytes (tests only: the runner never does this)."""
    dump = source.start()
    data = bytearray()
    while chunk := dump.stream.read(CHUNK):
        data += chunk
    dump.finish()
    return bytes(data)


def feed(target: RestoreTarget, data: bytes) -> RestoreSink:
    """Write `data` to a fresh sink in chunks, close it and finish it."""
    sink = target.start()
    for offset in range(0, len(data), CHUNK):
        sink.stream.write(data[offset : offset + CHUNK])
    sink.stream.close()
    sink.finish()
    return sink


def pump(dump: Dump, sink: RestoreSink) -> int:
    """Stream a running dump into a running sink, as the pipeline does; returns bytes moved."""
    moved = 0
    while chunk := dump.stream.read(CHUNK):
        sink.stream.write(chunk)
        moved += len(chunk)
    dump.finish()
    sink.stream.close()
    sink.finish()
    return moved


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
