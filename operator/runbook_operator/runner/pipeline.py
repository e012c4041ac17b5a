"""The runner's operations: back up (stream, verify, commit), verify, restore, list.

A backup is `<policy>/<timestamp>/` holding one data object and `manifest.json`. The data is
streamed dump → compress → encrypt → sha256 → storage through fixed-size blocks, so memory does
not grow with the dump. It is then read back from storage and checked end to end; only a backup
that passed is committed by writing its manifest, last. Readers ignore directories without a
manifest, so an interrupted or failed run can never be mistaken for a backup.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO, TypeVar

from pydantic import Field

from runbook_operator.api.common import ApiModel
from runbook_operator.runner.compression import (
    SUFFIXES,
    Compression,
    Transform,
    compressor,
    decompressing_reader,
)
from runbook_operator.runner.crypto import (
    DEFAULT_CHUNK_SIZE,
    DecryptingReader,
    Encryption,
    Encryptor,
    Key,
)
from runbook_operator.runner.interfaces import (
    Dump,
    RestoreError,
    RestoreSink,
    RestoreTarget,
    RunnerError,
    Source,
    SourceError,
    Storage,
    StorageError,
    VerificationError,
)
from runbook_operator.runner.manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    RUNNER_VERSION,
    EncryptionInfo,
    Manifest,
    UtcDatetime,
    parse_manifest,
)

log = logging.getLogger(__name__)

DEFAULT_READ_SIZE = 1024 * 1024
TERMINATION_MESSAGE_LIMIT = 4096
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
SUCCEEDED = "Succeeded"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class RunResult(ApiModel):
    """What a run reports through the Job's termination message."""

    ok: bool
    reason: str
    message: str = ""
    started_at: UtcDatetime
    finished_at: UtcDatetime
    duration_seconds: float = Field(ge=0)
    location: str | None = None
    key: str | None = None
    runner_version: str = RUNNER_VERSION

    def to_json(self, limit: int = TERMINATION_MESSAGE_LIMIT) -> str:
        """Compact JSON of at most `limit` bytes: the message is shortened (keeping its head
        and its tail, where tools print the actual error) until the whole fits."""
        text = self.model_dump_json(by_alias=True, exclude_none=True)
        message = self.message
        while len(text.encode()) > limit and message:
            excess = len(text.encode()) - limit
            message = _shorten(message, max(0, len(message) - excess - 16))
            text = self.model_copy(update={"message": message}).model_dump_json(
                by_alias=True, exclude_none=True
            )
        return text


PRUNED_KEYS_REPORTED = 10


class BackupResult(RunResult):
    size_bytes: int | None = None
    raw_size_bytes: int | None = None
    sha256: str | None = None
    key_id: str | None = Field(
        default=None, description="Id of the encryption key (as in the manifest); none when "
        "the backup is not encrypted.")
    verified: bool = False
    pruned_count: int = 0
    pruned: list[str] = Field(
        default_factory=list,
        description=f"Up to {PRUNED_KEYS_REPORTED} of the backups pruned (or, in a dry run, "
        "that would be pruned).",
    )
    prune_dry_run: bool = False


class RestoreResult(RunResult):
    """`durationSeconds` is the measured recovery time (RTO) of this backup."""

    size_bytes: int | None = None
    raw_size_bytes: int | None = None
    sha256: str | None = None
    verified: bool = False
    target_kind: str | None = None


class ListResult(RunResult):
    count: int = 0
    newest: str | None = None


class BackupInfo(ApiModel):
    """One committed backup, as read from its manifest."""

    key: str
    location: str
    started_at: UtcDatetime
    finished_at: UtcDatetime
    source_kind: str
    size_bytes: int
    raw_size_bytes: int
    sha256: str
    compression: Compression
    encryption: Encryption
    key_id: str | None = None
    verified: bool


@dataclass(frozen=True)
class BackupSettings:
    """How to back up one policy. `key` is required unless `encryption` is "none"."""

    policy: str
    namespace: str
    encryption: Encryption
    key: Key | None = None
    compression: Compression = "zstd"
    compression_level: int | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    verifier: RestoreTarget | None = None
    read_size: int = DEFAULT_READ_SIZE


@dataclass(frozen=True)
class StoredObject:
    """The facts a reader must reproduce for a stored object to be trusted."""

    sha256: str
    size: int
    raw_size: int


def _shorten(text: str, length: int) -> str:
    if len(text) <= length:
        return text
    if length < 8:
        return text[:length]
    head = length // 3
    return text[:head] + " … " + text[len(text) - (length - head - 3) :]


def backup_prefix(policy: str, started: datetime) -> str:
    return f"{policy}/{started.astimezone(UTC).strftime(TIMESTAMP_FORMAT)}"


def data_object_name(compression: Compression, encryption: Encryption) -> str:
    return "backup.dump" + SUFFIXES[compression] + (".enc" if encryption != "none" else "")


def elapsed_seconds(started: datetime, finished: datetime) -> float:
    return round(max(0.0, (finished - started).total_seconds()), 3)


ResultT = TypeVar("ResultT", bound=RunResult)


def ended(result_type: type[ResultT], started: datetime, finished: datetime,
          **fields: Any) -> ResultT:
    """A run's result, stamped with when it finished and its duration."""
    return result_type(started_at=started, finished_at=finished,
                       duration_seconds=elapsed_seconds(started, finished), **fields)


def failed(result_type: type[ResultT], started: datetime, finished: datetime, what: str,
           exc: Exception, **fields: Any) -> ResultT:
    """The result of a run that failed with `exc`, logged once with its reason."""
    reason, message = describe_failure(exc)
    log.error("%s failed: %s: %s", what, reason, message)
    return ended(result_type, started, finished, ok=False, reason=reason, message=message, **fields)


def verified_copy(size: int, raw_size: int, sha256: str) -> dict[str, Any]:
    """The result fields describing a stored object that was read back and checked."""
    return {"size_bytes": size, "raw_size_bytes": raw_size, "sha256": sha256, "verified": True}


def describe_failure(exc: BaseException) -> tuple[str, str]:
    """Reason and message of a failure; unexpected exceptions also name their type."""
    if isinstance(exc, RunnerError):
        return exc.reason, str(exc)
    return RunnerError.reason, f"unexpected {type(exc).__name__}: {exc}"


def _check_key(encryption: Encryption, expected_key_id: str | None, key: Key | None) -> Key | None:
    """The key to decrypt with, or None for plain data; fails before any data is touched."""
    if encryption == "none":
        return None
    if key is None:
        raise RunnerError(
            f"the backup is encrypted (key {expected_key_id}) but no key was given",
            reason="MissingKey",
        )
    if expected_key_id is not None and key.id != expected_key_id:
        raise VerificationError(
            f"the backup was encrypted with key {expected_key_id}, not with the given key {key.id}",
            reason="WrongKey",
        )
    return key


class _CountingReader:
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


def _check_stored(counted: _CountingReader, expected: StoredObject) -> None:
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


def _plain_reader(raw: BinaryIO, compression: Compression, key: Key | None) -> BinaryIO:
    decrypted: BinaryIO = DecryptingReader(raw, key) if key is not None else raw  # type: ignore[assignment]
    return decompressing_reader(decrypted, compression)


class _Feed:
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


def _check_whole_object(counted: _CountingReader, expected: StoredObject, read_size: int) -> None:
    """Read the stored object to its end and compare it with the record. After a decoding
    error this is also the clearer explanation: a cut-off object reads as `Truncated` rather
    than as a failed chunk."""
    counted.drain(read_size)
    _check_stored(counted, expected)


def _check_complete(
    counted: _CountingReader, expected: StoredObject, raw_size: int, read_size: int
) -> None:
    """After decoding: the stored bytes and the decoded size must be exactly as recorded."""
    _check_whole_object(counted, expected, read_size)
    if raw_size != expected.raw_size:
        raise VerificationError(
            f"the backup decompresses to {raw_size} bytes, {expected.raw_size} expected",
            reason="Corrupted",
        )


def _verify_object(
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
        counted = _CountingReader(raw)
        feed = _Feed(checker.start()) if checker is not None else None
        try:
            plain = _plain_reader(counted, compression, key)  # type: ignore[arg-type]
            raw_size = 0
            while block := plain.read(read_size):
                raw_size += len(block)
                if feed is not None:
                    feed.write(block)
            _check_complete(counted, expected, raw_size, read_size)
        except VerificationError:
            if feed is not None:
                feed.abandon()
            _check_whole_object(counted, expected, read_size)
            raise
        except BaseException:
            if feed is not None:
                feed.abandon()
            raise
    if checker is not None and feed is not None:
        feed.close()
        try:
            feed.sink.finish()
        except VerificationError:
            raise
        except RunnerError as exc:
            raise VerificationError(
                f"the {checker.kind} check failed: {exc}", reason="CheckFailed"
            ) from None


def _store(dump: Dump, out: BinaryIO, stages: list[Transform], read_size: int) -> StoredObject:
    """The streaming core: fixed-size blocks through every stage, hashed as they are written."""
    digest = hashlib.sha256()
    size = 0
    raw_size = 0

    def emit(data: bytes) -> None:
        nonlocal size
        if not data:
            return
        digest.update(data)
        size += len(data)
        try:
            out.write(data)
        except RunnerError:
            raise
        except Exception as exc:
            raise StorageError(f"writing the backup failed: {exc}") from None

    while True:
        try:
            block = dump.stream.read(read_size)
        except OSError as exc:
            raise SourceError(f"reading the dump failed: {exc}") from None
        if not block:
            break
        raw_size += len(block)
        for stage in stages:
            block = stage.update(block)
        emit(block)
    tail = b""
    for stage in stages:
        tail = stage.update(tail) + stage.finish()
    emit(tail)
    return StoredObject(sha256=digest.hexdigest(), size=size, raw_size=raw_size)


def _abandon_dump(dump: Dump) -> None:
    """Stop a dump whose output is no longer wanted: closing the pipe ends the tool."""
    try:
        dump.stream.close()
        dump.finish()
    except Exception as exc:  # the original failure is what gets reported
        log.info("the dump ended after the run failed: %s", describe_failure(exc)[1])


def _stream_to_storage(
    source: Source, storage: Storage, data_key: str, settings: BackupSettings, key: Key | None
) -> StoredObject:
    stages: list[Transform] = [compressor(settings.compression, settings.compression_level)]
    if key is not None:
        stages.append(Encryptor(key, settings.chunk_size))
    dump = source.start()
    finished = False
    try:
        with storage.writer(data_key) as out:
            stored = _store(dump, out, stages, settings.read_size)
            finished = True
            dump.finish()
    except BaseException:
        if not finished:
            _abandon_dump(dump)
        raise
    return stored


def _discard(storage: Storage, keys: list[str]) -> None:
    try:
        storage.delete(keys)
    except Exception as exc:  # without a manifest the leftover is ignored anyway
        log.warning("could not remove the incomplete backup %s: %s", keys, describe_failure(exc)[1])


def run_backup(
    source: Source, storage: Storage, settings: BackupSettings, now: Clock = utc_now
) -> BackupResult:
    """Back up, verify, and commit with a manifest; any failure is a failed result (never an
    exception) and leaves no committed backup behind."""
    started = now()
    prefix = backup_prefix(settings.policy, started)
    data_key = f"{prefix}/{data_object_name(settings.compression, settings.encryption)}"
    location = storage.location(prefix)
    log.info(
        "backing up %s/%s (%s) to %s", settings.namespace, settings.policy, source.kind, location
    )
    written = False
    try:
        key = _check_key(settings.encryption, None, settings.key)
        if any(True for _ in storage.list(prefix + "/")):
            raise StorageError(f"{location} already holds a backup", reason="BackupExists")
        stored = _stream_to_storage(source, storage, data_key, settings, key)
        written = True
        log.info(
            "stored %d bytes (%d raw), sha256 %s; verifying",
            stored.size,
            stored.raw_size,
            stored.sha256,
        )
        _verify_object(
            storage,
            data_key,
            stored,
            settings.compression,
            key,
            settings.verifier,
            settings.read_size,
        )
        finished = now()
        manifest = Manifest(
            policy=settings.policy,
            namespace=settings.namespace,
            source_kind=source.kind,
            started_at=started,
            finished_at=finished,
            data_object=data_key.rsplit("/", 1)[1],
            compression=settings.compression,
            encryption=EncryptionInfo(
                algorithm=settings.encryption,
                key_id=key.id if key else None,
                chunk_size=settings.chunk_size if key else None,
            ),
            sha256=stored.sha256,
            size_bytes=stored.size,
            raw_size_bytes=stored.raw_size,
            verified=True,
        )
        with storage.writer(f"{prefix}/{MANIFEST_NAME}") as out:
            out.write(manifest.to_json())
    except Exception as exc:  # every failure becomes a reported result
        if written:
            _discard(storage, [data_key])
        return failed(BackupResult, started, now(), "backup", exc, location=location, key=prefix)
    log.info("backup %s verified and committed", prefix)
    return ended(
        BackupResult, started, finished, ok=True, reason=SUCCEEDED,
        message=f"verified backup of {stored.raw_size} bytes", location=location, key=prefix,
        key_id=manifest.encryption.key_id,
        **verified_copy(stored.size, stored.raw_size, stored.sha256),
    )


def _normalise_backup_key(backup_key: str) -> str:
    return backup_key.strip("/")


def read_manifest(storage: Storage, backup_key: str) -> Manifest:
    """The manifest of a committed backup; a missing one means there is no such backup."""
    try:
        with storage.reader(f"{backup_key}/{MANIFEST_NAME}") as handle:
            data = handle.read(MAX_MANIFEST_BYTES + 1)
    except StorageError as exc:
        if exc.reason == "NotFound":
            raise RunnerError(
                f"no committed backup at {storage.location(backup_key)}", reason="BackupNotFound"
            ) from None
        raise
    return parse_manifest(data)


def _expected(manifest: Manifest) -> StoredObject:
    return StoredObject(
        sha256=manifest.sha256, size=manifest.size_bytes, raw_size=manifest.raw_size_bytes
    )


def verify_backup(
    storage: Storage,
    backup_key: str,
    key: Key | None,
    checker: RestoreTarget | None = None,
    now: Clock = utc_now,
    read_size: int = DEFAULT_READ_SIZE,
) -> BackupResult:
    """Re-check a committed backup as `run_backup` did right after writing it."""
    started = now()
    backup_key = _normalise_backup_key(backup_key)
    location = storage.location(backup_key)
    try:
        manifest = read_manifest(storage, backup_key)
        decrypt_key = _check_key(manifest.encryption.algorithm, manifest.encryption.key_id, key)
        _verify_object(
            storage,
            f"{backup_key}/{manifest.data_object}",
            _expected(manifest),
            manifest.compression,
            decrypt_key,
            checker,
            read_size,
        )
    except Exception as exc:  # every failure becomes a reported result
        return failed(BackupResult, started, now(), f"verification of {backup_key}", exc,
                      location=location, key=backup_key)
    return ended(
        BackupResult, started, now(), ok=True, reason=SUCCEEDED, message="backup verified",
        location=location, key=backup_key,
        **verified_copy(manifest.size_bytes, manifest.raw_size_bytes, manifest.sha256),
    )


def _restore_stream(
    storage: Storage,
    data_key: str,
    manifest: Manifest,
    key: Key | None,
    target: RestoreTarget,
    read_size: int,
) -> None:
    """Stream a backup into a target. The target starts only once the first block has been
    authenticated and decoded, so a wrong key or a broken header overwrites nothing."""
    expected = _expected(manifest)
    with storage.reader(data_key) as raw:
        counted = _CountingReader(raw)
        plain = _plain_reader(counted, manifest.compression, key)  # type: ignore[arg-type]
        block = plain.read(read_size)
        feed = _Feed(target.start())
        try:
            raw_size = 0
            while block:
                raw_size += len(block)
                feed.write(block)
                if feed.stopped_reading:
                    break
                block = plain.read(read_size)
            if not feed.stopped_reading:
                _check_complete(counted, expected, raw_size, read_size)
        except VerificationError:
            feed.abandon()
            _check_whole_object(counted, expected, read_size)
            raise
        except BaseException:
            feed.abandon()
            raise
    feed.close()
    feed.sink.finish()
    if feed.stopped_reading:
        raise RestoreError(f"the {target.kind} target stopped reading before the end")


def run_restore(
    storage: Storage,
    backup_key: str,
    target: RestoreTarget,
    key: Key | None,
    *,
    verify_first: bool = True,
    now: Clock = utc_now,
    read_size: int = DEFAULT_READ_SIZE,
) -> RestoreResult:
    """Restore a committed backup into a target and measure how long it took (the RTO).

    With `verify_first` the whole backup is checked before the target sees a byte, so a
    corrupted or truncated backup never half-overwrites a target."""
    started = now()
    backup_key = _normalise_backup_key(backup_key)
    location = storage.location(backup_key)
    log.info("restoring %s into a %s target", location, target.kind)
    try:
        manifest = read_manifest(storage, backup_key)
        decrypt_key = _check_key(manifest.encryption.algorithm, manifest.encryption.key_id, key)
        data_key = f"{backup_key}/{manifest.data_object}"
        if verify_first:
            _verify_object(
                storage,
                data_key,
                _expected(manifest),
                manifest.compression,
                decrypt_key,
                None,
                read_size,
            )
        _restore_stream(storage, data_key, manifest, decrypt_key, target, read_size)
    except Exception as exc:  # every failure becomes a reported result
        return failed(RestoreResult, started, now(), f"restore of {backup_key}", exc,
                      location=location, key=backup_key, target_kind=target.kind)
    restored = ended(
        RestoreResult, started, now(), ok=True, reason=SUCCEEDED,
        message=f"restored {manifest.raw_size_bytes} bytes into the {target.kind} target",
        location=location, key=backup_key, target_kind=target.kind,
        **verified_copy(manifest.size_bytes, manifest.raw_size_bytes, manifest.sha256),
    )
    log.info("restored %s in %.1f s", backup_key, restored.duration_seconds)
    return restored


def list_backups(storage: Storage, policy: str, namespace: str | None = None) -> list[BackupInfo]:
    """Committed backups of one policy, oldest first. Directories without a readable manifest
    are incomplete runs and are skipped; with `namespace`, so are other namespaces' backups
    that share the prefix."""
    backups: list[BackupInfo] = []
    for object_key in storage.list(f"{policy}/"):
        parts = object_key.split("/")
        if len(parts) != 3 or parts[2] != MANIFEST_NAME:
            continue
        backup_key = f"{parts[0]}/{parts[1]}"
        try:
            manifest = read_manifest(storage, backup_key)
        except RunnerError as exc:
            log.warning("ignoring %s: %s", backup_key, exc)
            continue
        if manifest.policy != policy or (namespace and manifest.namespace != namespace):
            continue
        backups.append(
            BackupInfo(
                key=backup_key,
                location=storage.location(backup_key),
                started_at=manifest.started_at,
                finished_at=manifest.finished_at,
                source_kind=manifest.source_kind,
                size_bytes=manifest.size_bytes,
                raw_size_bytes=manifest.raw_size_bytes,
                sha256=manifest.sha256,
                compression=manifest.compression,
                encryption=manifest.encryption.algorithm,
                key_id=manifest.encryption.key_id,
                verified=manifest.verified,
            )
        )
    return sorted(backups, key=lambda info: (info.started_at, info.key))
