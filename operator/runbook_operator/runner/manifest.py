"""`manifest.json`: what a backup is, written next to its data once it has been verified.

A backup directory without a manifest is an incomplete run and is ignored by every reader, so
the manifest's presence is the commit point of a backup."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, Field, ValidationError

from runbook_operator.api.common import ApiModel
from runbook_operator.runner.compression import Compression
from runbook_operator.runner.crypto import Encryption
from runbook_operator.runner.interfaces import VerificationError

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT_VERSION: Final = 1
MAX_MANIFEST_BYTES = 64 * 1024


def _runner_version() -> str:
    try:
        return version("runbook-operator")
    except PackageNotFoundError:
        return "0+unknown"


RUNNER_VERSION = _runner_version()


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("times must carry a time zone (RFC 3339)")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class EncryptionInfo(ApiModel):
    """How the data object is encrypted; the key itself is named by its fingerprint only."""

    algorithm: Encryption
    key_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$")
    chunk_size: int | None = Field(default=None, gt=0)


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
    verified: bool = False

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=True, indent=2).encode() + b"\n"


def parse_manifest(data: bytes) -> Manifest:
    """Parse a stored manifest; a malformed one is reported, never half-trusted."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise VerificationError(
            f"the manifest is larger than {MAX_MANIFEST_BYTES} bytes", reason="InvalidManifest"
        )
    try:
        return Manifest.model_validate_json(data)
    except ValidationError as exc:
        raise VerificationError(
            f"the manifest is not valid: {exc.error_count()} error(s), first: "
            f"{exc.errors()[0]['msg']} at {'.'.join(map(str, exc.errors()[0]['loc']))}",
            reason="InvalidManifest",
        ) from None
