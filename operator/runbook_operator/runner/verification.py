"""Checking backups: that a stored object is exactly what was written, and that it decrypts,
decompresses and passes its source kind's content check (e.g. `pg_restore --list`).

Right after a backup the two halves run apart. `StreamVerifier` decodes the bytes as they are
written, on a second thread: that proves the stream handed to storage is a valid backup, but not
that storage kept it. `check_stored_copy` then reads the stored object back and compares its
size and sha256 with the written stream's: equal bytes decode equally, so together they prove
the stored backup readable and valid, and the read-back costs a hash instead of a second decode.
Later checks (`verify`, a restore's first pass) decode the stored object itself:
`verify_object`."""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from dataclasses import dataclass
from typing import BinaryIO

from runbook_operator.runner.compression import Compression, decompressing_reader
from runbook_operator.runner.crypto import DecryptingReader, Key
from runbook_operator.runner.interfaces import (
    RestoreSink,
    RestoreTarget,
    RunnerError,
    Storage,
    StorageError,
    VerificationError,
)

log = logging.getLogger(__name__)

#: Written blocks the decoding thread may lag behind; bounds its memory to a few blocks.
STREAM_VERIFY_DEPTH = 8


@dataclass(frozen=True)
class StoredObject:
    """The facts a reader must reproduce for a stored object to be trusted."""

    sha256: str
    size: int
    raw_size: int


def describe_failure(exc: BaseException) -> tuple[str, str]:
    """Reason and message of a failure; unexpected exceptions also name their type."""
    if isinstance(exc, RunnerError):
        return exc.reason, str(exc)
    return RunnerError.reason, f"unexpected {type(exc).__name__}: {exc}"


class CountingReader:
    """Hashes and counts the stored bytes as the decoders pull them."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._raw.read(size)
        except RunnerError:
            raise
        except Exception as exc:
            raise StorageError(f"reading the stored object failed: {exc}") from None
        self.digest.update(data)
        self.size += len(data)
        return data

    def drain(self, read_size: int) -> None:
        while self.read(read_size):
            pass


def _check_stored(counted: CountingReader, expected: StoredObject) -> None:
    if counted.size < expected.size:
        raise VerificationError(
            f"the stored object has {counted.size} bytes, {expected.size} expected",
            reason="Truncated",
        )
    if counted.size > expected.size:
        raise VerificationError(
            f"the stored object has {counted.size} bytes, {expected.size} expected "
            f"(data was appended)",
            reason="Corrupted",
        )
    if counted.digest.hexdigest() != expected.sha256:
        raise VerificationError(
            f"sha256 of the stored object is {counted.digest.hexdigest()}, "
            f"{expected.sha256} expected",
            reason="Corrupted",
        )


def check_whole_object(counted: CountingReader, expected: StoredObject, read_size: int) -> None:
    """Read the stored object to its end and compare it with the record. After a decoding
    error this is also the clearer explanation: a cut-off object reads as `Truncated` rather
    than as a failed chunk."""
    counted.drain(read_size)
    _check_stored(counted, expected)


def _check_raw_size(raw_size: int, expected: int) -> None:
    if raw_size != expected:
        raise VerificationError(
            f"the backup decompresses to {raw_size} bytes, {expected} expected",
            reason="Corrupted",
        )


def check_complete(
    counted: CountingReader, expected: StoredObject, raw_size: int, read_size: int
) -> None:
    """After decoding: the stored bytes and the decoded size must be exactly as recorded."""
    check_whole_object(counted, expected, read_size)
    _check_raw_size(raw_size, expected.raw_size)


def plain_reader(raw: BinaryIO, compression: Compression, key: Key | None) -> BinaryIO:
    decrypted: BinaryIO = DecryptingReader(raw, key) if key is not None else raw  # type: ignore[assignment]
    return decompressing_reader(decrypted, compression)


class Feed:
    """Writes to a sink's stream, noting when the consumer stopped reading (a closed pipe)."""

    def __init__(self, sink: RestoreSink) -> None:
        self.sink = sink
        self.stopped_reading = False

    def write(self, data: bytes) -> None:
        if self.stopped_reading:
            return
        try:
            self.sink.stream.write(data)
        except BrokenPipeError:
            self.stopped_reading = True

    def close(self) -> None:
        try:
            self.sink.stream.close()
        except BrokenPipeError:
            self.stopped_reading = True

    def abandon(self) -> None:
        """After a failure: end the consumer's input and reap it, keeping the first error."""
        try:
            self.close()
            self.sink.finish()
        except Exception as exc:  # the original failure is what gets reported
            log.warning("the consumer failed after an earlier error: %s", describe_failure(exc)[1])


def _finish_check(feed: Feed | None, checker: RestoreTarget | None) -> None:
    """End the content check's input and require it to pass."""
    if checker is None or feed is None:
        return
    feed.close()
    try:
        feed.sink.finish()
    except VerificationError:
        raise
    except RunnerError as exc:
        raise VerificationError(
            f"the {checker.kind} check failed: {exc}", reason="CheckFailed"
        ) from None


def verify_object(
    storage: Storage,
    data_key: str,
    expected: StoredObject,
    compression: Compression,
    key: Key | None,
    checker: RestoreTarget | None,
    read_size: int,
) -> None:
    """Read a stored object back end to end: size, sha256, authenticated decryption,
    decompression, the decompressed size, and the optional checker (e.g. pg_restore --list)."""
    with storage.reader(data_key) as raw:
        counted = CountingReader(raw)
        feed = Feed(checker.start()) if checker is not None else None
        try:
            plain = plain_reader(counted, compression, key)  # type: ignore[arg-type]
            raw_size = 0
            while block := plain.read(read_size):
                raw_size += len(block)
                if feed is not None:
                    feed.write(block)
            check_complete(counted, expected, raw_size, read_size)
        except VerificationError:
            if feed is not None:
                feed.abandon()
            check_whole_object(counted, expected, read_size)
            raise
        except BaseException:
            if feed is not None:
                feed.abandon()
            raise
    _finish_check(feed, checker)


def check_stored_copy(
    storage: Storage, data_key: str, expected: StoredObject, read_size: int
) -> None:
    """Read the stored object back and require the size and sha256 that were written."""
    with storage.reader(data_key) as raw:
        check_whole_object(CountingReader(raw), expected, read_size)


class _End:
    """The writer's last word to the decoding thread: the stream is complete."""


class _Abandon(Exception):
    """The writer gave up (its own failure); the decoding thread stops without a verdict."""


class _QueueReader:
    """The decoders' raw input: the written blocks, in order, as they arrive."""

    def __init__(self, blocks: queue.Queue[bytes | type[_End] | type[_Abandon]]) -> None:
        self._blocks = blocks
        self._pending = b""
        self._ended = False

    def read(self, size: int = -1) -> bytes:
        while not self._pending and not self._ended:
            item = self._blocks.get()
            if item is _Abandon:
                raise _Abandon
            if item is _End:
                self._ended = True
            else:
                self._pending = item  # type: ignore[assignment]
        if size < 0 or size >= len(self._pending):
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:size], self._pending[size:]
        return data


class StreamVerifier:
    """Decodes a backup's stored bytes while they are being written, on its own thread:
    authenticated decryption, decompression to exactly the dump's size, and the content check
    fed as a restore would feed a target.

    `write` every stored block in order, then `finish()` for the verdict, or `abandon()` after
    a failure elsewhere. A failure found by the thread is raised by the next `write` (so the
    dump stops early) or by `finish`; the thread consumes blocks until told to stop, so the
    writer never blocks on it."""

    def __init__(
        self,
        compression: Compression,
        key: Key | None,
        checker: RestoreTarget | None,
        read_size: int,
    ) -> None:
        self._compression = compression
        self._key = key
        self._checker = checker
        self._read_size = read_size
        self._blocks: queue.Queue[bytes | type[_End] | type[_Abandon]] = queue.Queue(
            STREAM_VERIFY_DEPTH
        )
        self._decoded = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="stream-verify", daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._blocks.put(data)

    def finish(self, raw_size: int) -> None:
        """Wait for the verdict on the complete stream of a `raw_size`-byte dump."""
        self._blocks.put(_End)
        self._thread.join()
        if self._error is not None:
            raise self._error
        _check_raw_size(self._decoded, raw_size)

    def abandon(self) -> None:
        if self._thread.is_alive():
            self._blocks.put(_Abandon)
            self._thread.join()

    def _run(self) -> None:
        reader = _QueueReader(self._blocks)
        feed: Feed | None = None
        try:
            feed = Feed(self._checker.start()) if self._checker is not None else None
            plain = plain_reader(reader, self._compression, self._key)  # type: ignore[arg-type]
            while block := plain.read(self._read_size):
                self._decoded += len(block)
                if feed is not None:
                    feed.write(block)
            if self._rest(reader):
                raise VerificationError(
                    "data follows the end of the compressed stream", reason="Corrupted"
                )
            _finish_check(feed, self._checker)
        except _Abandon:
            if feed is not None:
                feed.abandon()
        except BaseException as exc:  # reported to the writer, never lost with the thread
            self._error = exc
            if feed is not None:
                feed.abandon()
            try:
                self._rest(reader)
            except _Abandon:
                pass

    def _rest(self, reader: _QueueReader) -> int:
        """Consume what is left until the writer's end, so a full queue never blocks it."""
        left = 0
        while block := reader.read(self._read_size):
            left += len(block)
        return left
