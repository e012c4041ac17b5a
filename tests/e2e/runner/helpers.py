"""Stream plumbing the runner tests share: what the pipeline does, minus compression/storage."""

from __future__ import annotations

import hashlib

from runbook_operator.runner.interfaces import Dump, RestoreSink, RestoreTarget, Source

CHUNK = 256 * 1024


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
