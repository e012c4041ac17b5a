"""The contracts between the backup runner's parts: sources produce a byte stream, storages
keep objects under keys, restore targets consume a byte stream. Everything streams: no part may
hold a whole dump in memory or on a temporary disk."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import BinaryIO, Protocol


class RunnerError(Exception):
    """A failure with a CamelCase reason for status and a message for people.

    Messages must never contain secret values (passwords, keys, tokens)."""

    reason = "RunnerFailed"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class SourceError(RunnerError):
    reason = "DumpFailed"


class StorageError(RunnerError):
    reason = "StorageFailed"


#: The reason of a StorageError from `Storage.writer(key, exclusive=True)` when `key` exists.
ALREADY_EXISTS = "AlreadyExists"


class VerificationError(RunnerError):
    reason = "VerificationFailed"


class RestoreError(RunnerError):
    reason = "RestoreFailed"


class Dump(Protocol):
    """A running dump: read `stream` to the end, then call `finish()`."""

    stream: BinaryIO

    def finish(self) -> None:
        """Wait for the dump to end; raise SourceError (with the tool's stderr tail, scrubbed
        of secrets) if it failed. A dump that failed is never reported as a success."""


class Source(Protocol):
    kind: str  # "postgres" | "mysql" | "files" | "command"

    def start(self) -> Dump: ...


class Storage(Protocol):
    """Objects under `/`-separated keys, relative to the policy's own prefix."""

    def writer(self, key: str, *, exclusive: bool = False) -> AbstractContextManager[BinaryIO]:
        """A file-like to stream an object into; the object exists only after a clean exit
        of the context (an exception leaves nothing behind). With `exclusive`, the clean exit
        fails with ALREADY_EXISTS instead of replacing an existing object, atomically where
        the store can (a local hard link, an S3 conditional write)."""

    def reader(self, key: str) -> AbstractContextManager[BinaryIO]: ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under `prefix` (never outside the storage's own root/prefix, which includes
        the policy's namespace)."""

    def delete(self, keys: list[str]) -> None: ...

    def location(self, key: str = "") -> str:
        """A human-readable URL, e.g. s3://bucket/prefix/key or file:///backups/key."""


class RestoreTarget(Protocol):
    kind: str

    def start(self) -> RestoreSink: ...


class RestoreSink(Protocol):
    """A running restore: write the decrypted, decompressed dump to `stream`, then finish()."""

    stream: BinaryIO

    def finish(self) -> None:
        """Wait for the restore to end; raise RestoreError if it failed."""
