"""The runner's operations: back up (stream and verify, read back, commit), verify, restore.

A backup is `<policy>/<timestamp>/` in its namespace's part of the storage, holding one data
object and `manifest.json`. The data is streamed dump → compress → encrypt → sha256 → storage
through fixed-size blocks, so memory does not grow with the dump, and decoded on a second
thread as it is written (`verification.StreamVerifier`). The stored object is then read back and
must match what was written; only a backup that passed both is committed by writing its
manifest, last. Readers ignore directories without a manifest, so an interrupted or failed run
can never be mistaken for a backup.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO, TypeVar

from runbook_operator.runner.catalog import read_manifest, record_restore_test
from runbook_operator.runner.compression import SUFFIXES, Compression, Transform, compressor
from runbook_operator.runner.crypto import DEFAULT_CHUNK_SIZE, Encryption, Encryptor, Key
from runbook_operator.runner.interfaces import (
    ALREADY_EXISTS,
    Dump,
    RestoreError,
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
    EncryptionInfo,
    Manifest,
    RestoreTest,
    Verification,
)
from runbook_operator.runner.results import (
    SUCCEEDED,
    BackupResult,
    RestoreResult,
    RunResult,
)
from runbook_operator.runner.verification import (
    CountingReader,
    Feed,
    StoredObject,
    StreamVerifier,
    check_complete,
    check_stored_copy,
    check_whole_object,
    describe_failure,
    plain_reader,
    verify_object,
)

log = logging.getLogger(__name__)

DEFAULT_READ_SIZE = 1024 * 1024
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


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


def _store(
    dump: Dump, out: BinaryIO, stages: list[Transform], read_size: int, verifier: StreamVerifier
) -> StoredObject:
    """The streaming core: fixed-size blocks through every stage, hashed as they are written
    and handed to the verifier."""
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
        verifier.write(data)

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
    """Stream the dump into a new object while a second thread decodes and checks it; the
    object is created only if the dump succeeded and the check passed."""
    stages: list[Transform] = [compressor(settings.compression, settings.compression_level)]
    if key is not None:
        stages.append(Encryptor(key, settings.chunk_size))
    dump = source.start()
    verifier = StreamVerifier(settings.compression, key, settings.verifier, settings.read_size)
    finished = False
    try:
        with storage.writer(data_key, exclusive=True) as out:
            stored = _store(dump, out, stages, settings.read_size, verifier)
            finished = True
            dump.finish()
            verifier.finish(stored.raw_size)
    except BaseException:
        verifier.abandon()
        if not finished:
            _abandon_dump(dump)
        raise
    return stored


def _discard(storage: Storage, keys: list[str]) -> None:
    try:
        storage.delete(keys)
    except Exception as exc:  # without a manifest the leftover is ignored anyway
        log.warning("could not remove the incomplete backup %s: %s", keys, describe_failure(exc)[1])


def _exists(location: str) -> StorageError:
    return StorageError(f"{location} already holds a backup", reason="BackupExists")


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
            raise _exists(location)
        try:
            stored = _stream_to_storage(source, storage, data_key, settings, key)
        except StorageError as exc:
            if exc.reason == ALREADY_EXISTS:  # another run made the same backup meanwhile
                raise _exists(location) from None
            raise
        written = True
        log.info(
            "stored %d bytes (%d raw), sha256 %s, decoded and checked while streaming; "
            "reading it back", stored.size, stored.raw_size, stored.sha256,
        )
        check_stored_copy(storage, data_key, stored, settings.read_size)
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
            verification=Verification(
                verified_at=finished,
                content_check=settings.verifier.kind if settings.verifier else None,
            ),
        )
        with storage.writer(f"{prefix}/{MANIFEST_NAME}", exclusive=True) as out:
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
    """Re-check a committed backup: decode the stored object itself, end to end."""
    started = now()
    backup_key = _normalise_backup_key(backup_key)
    location = storage.location(backup_key)
    try:
        manifest = read_manifest(storage, backup_key)
        decrypt_key = _check_key(manifest.encryption.algorithm, manifest.encryption.key_id, key)
        verify_object(
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
        location=location, key=backup_key, key_id=manifest.encryption.key_id,
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
        counted = CountingReader(raw)
        plain = plain_reader(counted, manifest.compression, key)  # type: ignore[arg-type]
        block = plain.read(read_size)
        feed = Feed(target.start())
        try:
            raw_size = 0
            while block:
                raw_size += len(block)
                feed.write(block)
                if feed.stopped_reading:
                    break
                block = plain.read(read_size)
            if not feed.stopped_reading:
                check_complete(counted, expected, raw_size, read_size)
        except VerificationError:
            feed.abandon()
            check_whole_object(counted, expected, read_size)
            raise
        except BaseException:
            feed.abandon()
            raise
    feed.close()
    feed.sink.finish()
    if feed.stopped_reading:
        raise RestoreError(f"the {target.kind} target stopped reading before the end")


def _record(storage: Storage, backup_key: str, restored: RestoreResult,
            manifest: Manifest) -> RestoreResult:
    """Note the successful restore beside the backup, where retention sees it. Failing to
    does not undo the restore: it is reported in the message."""
    test = RestoreTest(restored_at=restored.finished_at, target_kind=restored.target_kind or "",
                       duration_seconds=restored.duration_seconds, sha256=manifest.sha256)
    try:
        record_restore_test(storage, backup_key, test)
    except RunnerError as exc:
        log.warning("could not record the restore test of %s: %s", backup_key, exc)
        return restored.model_copy(
            update={"message": f"{restored.message}; recording the restore test failed: {exc}"})
    return restored


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
    """Restore a committed backup into a target and measure how long it took (the RTO); a
    success is recorded beside the backup as its newest restore test.

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
            verify_object(
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
    return _record(storage, backup_key, restored, manifest)
