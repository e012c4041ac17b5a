"""What is stored beside a backup's data: `manifest.json`, written once the backup has been
verified, and `restore-test.json`, written by every restore of it that succeeded.

A backup directory without a manifest is an incomplete run and is ignored by every reader, so
the manifest's presence is the commit point of a backup. It is created once and never
rewritten; what is learned about a backup later (a restore test) goes into its own object."""

from __future__ import annotations

from typing import Annotated, Final, Literal, TypeVar

from pydantic import Field, ValidationError

from runbook_operator.api.common import ApiModel
from runbook_operator.runner.compression import Compression
from runbook_operator.runner.crypto import Encryption
from runbook_operator.runner.interfaces import VerificationError
from runbook_operator.runner.results import RUNNER_VERSION, UtcDatetime

MANIFEST_NAME = "manifest.json"
RESTORE_TEST_NAME = "restore-test.json"
MANIFEST_FORMAT_VERSION: Final = 1
MAX_MANIFEST_BYTES = 64 * 1024

Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class EncryptionInfo(ApiModel):
    """How the data object is encrypted; the key itself is named by its fingerprint only."""

    algorithm: Encryption
    key_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$")
    chunk_size: int | None = Field(default=None, gt=0)


class Verification(ApiModel):
    """The post-backup verification the backup passed before its manifest was written: the
    stream decrypted (authenticated) and decompressed to exactly `rawSizeBytes`, the stored
    object read back with the recorded size and sha256, and the source kind's content check."""

    verified_at: UtcDatetime
    content_check: str | None = Field(
        default=None,
        description="The source kind whose content check passed (postgres: pg_restore --list, "
        "mysql: the dump's completion trailer, files: a full tar listing); absent when the "
        "kind has none (command).",
    )


class Manifest(ApiModel):
    format_version: Literal[1] = MANIFEST_FORMAT_VERSION
    policy: str
    namespace: str
    source_kind: str
    started_at: UtcDatetime
    finished_at: UtcDatetime
    data_object: str = Field(description="Name of the data object beside the manifest.")
    compression: Compression
    encryption: EncryptionInfo
    sha256: Sha256Hex = Field(description="sha256 of the stored (compressed, encrypted) object.")
    size_bytes: int = Field(ge=0, description="Size of the stored object.")
    raw_size_bytes: int = Field(ge=0, description="Size of the dump before compression.")
    runner_version: str = RUNNER_VERSION
    verification: Verification | None = Field(
        default=None,
        description="Absent in manifests written before verification was recorded (they "
        "carried a constant `verified: true`).",
    )

    def to_json(self) -> bytes:
        return _to_json(self)


class RestoreTest(ApiModel):
    """The newest successful restore of a backup (a scheduled restore test or a restore asked
    for by a person): proof that the backup restores, which retention protects."""

    format_version: Literal[1] = MANIFEST_FORMAT_VERSION
    restored_at: UtcDatetime
    target_kind: str
    duration_seconds: float = Field(ge=0)
    sha256: Sha256Hex = Field(description="sha256 of the data object that was restored.")
    runner_version: str = RUNNER_VERSION

    def to_json(self) -> bytes:
        return _to_json(self)


def _to_json(model: ApiModel) -> bytes:
    return model.model_dump_json(by_alias=True, exclude_none=True, indent=2).encode() + b"\n"


StoredRecord = TypeVar("StoredRecord", Manifest, RestoreTest)


def parse_stored(model: type[StoredRecord], data: bytes, what: str) -> StoredRecord:
    """Parse a stored record; a malformed one is reported, never half-trusted."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise VerificationError(
            f"the {what} is larger than {MAX_MANIFEST_BYTES} bytes", reason="InvalidManifest"
        )
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise VerificationError(
            f"the {what} is not valid: {exc.error_count()} error(s), first: "
            f"{exc.errors()[0]['msg']} at {'.'.join(map(str, exc.errors()[0]['loc']))}",
            reason="InvalidManifest",
        ) from None
