"""What a runner reports through its Job's termination message: the contract between the runner
and its readers (the operator, the kubectl plugin).

Kept light on purpose: pydantic and the standard library only, nothing of the pipeline (no
zstandard, cryptography or boto3) and nothing of `runbook_operator.core`, so readers import it
without loading the runner, and the runner without loading the operator."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

from pydantic import AfterValidator, Field

from runbook_operator.api.common import ApiModel

TERMINATION_MESSAGE_LIMIT = 4096
SUCCEEDED = "Succeeded"
PRUNED_KEYS_REPORTED = 10


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


def _shorten(text: str, length: int) -> str:
    if len(text) <= length:
        return text
    if length < 8:
        return text[:length]
    head = length // 3
    return text[:head] + " … " + text[len(text) - (length - head - 3) :]


class RunResult(ApiModel):
    """What every run reports; `key` is the backup's `<policy>/<timestamp>` in its namespace."""

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


class BackupResult(RunResult):
    """A backup (or the re-verification of one)."""

    size_bytes: int | None = None
    raw_size_bytes: int | None = None
    sha256: str | None = None
    key_id: str | None = Field(
        default=None, description="Fingerprint of the encryption key; absent when unencrypted."
    )
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
