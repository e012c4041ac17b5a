"""Container output in the CRI log format (``<RFC 3339 time> <stream> F <line>``): the format
kwok's server reads for ``kubectl logs``, as a kubelet's container runtime writes it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import IO


def cri_line(when: datetime, stream: str, line: bytes) -> bytes:
    """One full (``F``) log line; `line` without its newline."""
    stamp = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{stamp} {stream} F ".encode() + line + b"\n"


def message_text(raw: bytes) -> str:
    """The container's own text of a CRI log file (what ``kubectl logs`` prints)."""
    lines = []
    for line in raw.decode(errors="replace").splitlines():
        parts = line.split(" ", 3)
        lines.append(parts[3] if len(parts) == 4 else "")
    return "\n".join(lines)


class LogWriter:
    """Copies a process's stdout and stderr into one CRI log file, a thread per stream."""

    def __init__(self, path_open: IO[bytes]) -> None:
        self._out = path_open
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def follow(self, stream: IO[bytes], name: str) -> None:
        thread = threading.Thread(target=self._copy, args=(stream, name), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _copy(self, stream: IO[bytes], name: str) -> None:
        with stream:
            for line in iter(stream.readline, b""):
                with self._lock:
                    self._out.write(cri_line(datetime.now(UTC), name, line.rstrip(b"\n")))
                    self._out.flush()

    def close(self, timeout: float = 5.0) -> None:
        """Wait for both streams to reach their end (the process and its children exited)."""
        for thread in self._threads:
            thread.join(timeout)
        self._out.close()
