"""A policy's committed backups as read from storage: what `list` prints, what a restore takes as
the newest, and what retention plans over.

Every backup is `<policy>/<timestamp>/` in its namespace's part of the storage, holding the data
object, `manifest.json` (the commit point) and, once a restore of it succeeded,
`restore-test.json`."""

from __future__ import annotations

import logging

from runbook_operator.api.common import ApiModel
from runbook_operator.runner.compression import Compression
from runbook_operator.runner.crypto import Encryption
from runbook_operator.runner.interfaces import RunnerError, Storage, StorageError
from runbook_operator.runner.manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    RESTORE_TEST_NAME,
    Manifest,
    RestoreTest,
    StoredRecord,
    parse_stored,
)
from runbook_operator.runner.results import UtcDatetime

log = logging.getLogger(__name__)


class BackupInfo(ApiModel):
    """One committed backup, as read from its manifest and restore-test record."""

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
    content_check: str | None = None
    restore_tested_at: UtcDatetime | None = None


def _read(storage: Storage, key: str, model: type[StoredRecord], what: str) -> StoredRecord:
    with storage.reader(key) as handle:
        return parse_stored(model, handle.read(MAX_MANIFEST_BYTES + 1), what)


def read_manifest(storage: Storage, backup_key: str) -> Manifest:
    """The manifest of a committed backup; a missing one means there is no such backup."""
    try:
        return _read(storage, f"{backup_key}/{MANIFEST_NAME}", Manifest, "manifest")
    except StorageError as exc:
        if exc.reason == "NotFound":
            raise RunnerError(
                f"no committed backup at {storage.location(backup_key)}", reason="BackupNotFound"
            ) from None
        raise


def record_restore_test(storage: Storage, backup_key: str, test: RestoreTest) -> None:
    """Keep the newest successful restore of a backup beside it (replacing an older one)."""
    with storage.writer(f"{backup_key}/{RESTORE_TEST_NAME}") as out:
        out.write(test.to_json())


def _restore_test(storage: Storage, backup_key: str, manifest: Manifest) -> RestoreTest | None:
    """The backup's restore-test record, if it has a readable one about this very data."""
    try:
        test = _read(storage, f"{backup_key}/{RESTORE_TEST_NAME}", RestoreTest, "restore test")
    except RunnerError as exc:
        log.warning("ignoring the restore test of %s: %s", backup_key, exc)
        return None
    if test.sha256 != manifest.sha256:
        log.warning("ignoring the restore test of %s: it restored other data", backup_key)
        return None
    return test


def list_backups(storage: Storage, policy: str, namespace: str | None = None) -> list[BackupInfo]:
    """Committed backups of one policy, oldest first. Directories without a readable manifest
    are incomplete runs and are skipped; with `namespace`, so are manifests of another
    namespace."""
    committed: list[str] = []
    restore_tested: set[str] = set()
    for object_key in storage.list(f"{policy}/"):
        parts = object_key.split("/")
        if len(parts) != 3:
            continue
        backup_key = f"{parts[0]}/{parts[1]}"
        if parts[2] == MANIFEST_NAME:
            committed.append(backup_key)
        elif parts[2] == RESTORE_TEST_NAME:
            restore_tested.add(backup_key)
    backups: list[BackupInfo] = []
    for backup_key in committed:
        try:
            manifest = read_manifest(storage, backup_key)
        except RunnerError as exc:
            log.warning("ignoring %s: %s", backup_key, exc)
            continue
        if manifest.policy != policy or (namespace and manifest.namespace != namespace):
            continue
        test = _restore_test(storage, backup_key, manifest) if (
            backup_key in restore_tested) else None
        backups.append(_info(storage, backup_key, manifest, test))
    return sorted(backups, key=lambda info: (info.started_at, info.key))


def _info(
    storage: Storage, backup_key: str, manifest: Manifest, test: RestoreTest | None
) -> BackupInfo:
    verification = manifest.verification
    return BackupInfo(
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
        verified=verification is not None,
        content_check=verification.content_check if verification else None,
        restore_tested_at=test.restored_at if test else None,
    )
