"""Storage on an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, ...), with boto3.

Writes are an explicit multipart upload with a bounded buffer: one part fills while at most one
uploads, so memory stays at about two parts whatever the dump's size. The multipart upload is
completed only on a clean close and aborted otherwise, so a failed run leaves no object (a
dump smaller than one part is a single PUT, also only on a clean close). An exclusive write
sends `If-None-Match: *` with that PUT or CompleteMultipartUpload, so the server refuses to
replace an existing object atomically (AWS S3 and MinIO support it; a server that answers
NotImplemented gets the write without the condition). Every key is confined to
`<prefix>/<namespace>/`: keys with empty, `.` or `..` parts are rejected, and listing asks the
server only for keys under it, never a sibling such as `<prefix>-old/`.

Credentials come from environment variables whose names the settings hold (the Job fills them
from a Secret); without them boto3's default chain applies (IRSA, instance profiles).
"""

from __future__ import annotations

import builtins
import contextlib
import io
import logging
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from runbook_operator.runner.interfaces import ALREADY_EXISTS, StorageError

log = logging.getLogger(__name__)

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last
MAX_PARTS = 10_000  # S3's maximum parts per upload
#: Parts grow by the base size every this many parts, so an upload of 8 MiB parts can reach
#: ~440 GB within MAX_PARTS while memory stays bounded by the largest part (80 MiB).
PART_GROWTH_INTERVAL = 1_000
DELETE_BATCH = 1_000  # S3's maximum keys per DeleteObjects
READ_RETRIES = 3


class S3Settings(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    bucket: str = Field(min_length=3, max_length=63)
    prefix: str = Field(default="", description="Key prefix; the storage never leaves it.")
    endpoint_url: str | None = Field(default=None, description="For S3-compatible servers.")
    region: str = "us-east-1"
    access_key_id_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    secret_access_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    session_token_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    force_path_style: bool = Field(
        default=False, description="Path-style URLs (most S3-compatible servers need them)."
    )
    ca_bundle: str | None = Field(default=None, description="A CA bundle file for TLS.")
    part_size_mib: int = Field(default=8, ge=5, le=512)


def _check_key(key: str, allow_empty: bool = False) -> str:
    """Keys are relative, `/`-separated, with no empty, '.' or '..' parts."""
    if not key:
        if allow_empty:
            return key
        raise StorageError("an object key must not be empty", reason="InvalidKey")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts) or "\0" in key:
        raise StorageError(
            f"invalid object key {key!r}: empty, '.' or '..' parts", reason="InvalidKey"
        )
    return key


def _check_list_prefix(prefix: str) -> str:
    """A listing prefix may end with '/' (a "directory") or within a part ("2024-")."""
    if prefix:
        _check_key(prefix.removesuffix("/"))
    return prefix


def _describe(error: Exception) -> str:
    """A short, secret-free description of a boto error."""
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        return f"{info.get('Code', 'Error')}: {info.get('Message', '')}".rstrip(": ")
    return type(error).__name__ + (f": {error}" if str(error) else "")


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _reason(error: Exception) -> str:
    code = _code(error) if isinstance(error, ClientError) else ""
    if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return "StorageAccessDenied"
    if code in ("NoSuchBucket",):
        return "StorageUnavailable"
    return "StorageFailed"


class S3Storage:
    """The `Storage` contract on `s3://bucket/prefix/namespace/`."""

    def __init__(
        self, settings: S3Settings, client: Any | None = None, namespace: str = ""
    ) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        prefix = "/".join(part for part in (settings.prefix.strip("/"), namespace) if part)
        if prefix:
            _check_key(prefix)
        self.root = f"{prefix}/" if prefix else ""
        self.part_size = settings.part_size_mib * MiB
        self.client = client or self._client()

    @classmethod
    def from_settings(cls, settings: dict[str, Any], namespace: str = "") -> S3Storage:
        return cls(S3Settings.model_validate(settings), namespace=namespace)

    def _client(self) -> Any:
        s = self.settings
        credentials: dict[str, str] = {}
        for argument, name in (
            ("aws_access_key_id", s.access_key_id_env),
            ("aws_secret_access_key", s.secret_access_key_env),
            ("aws_session_token", s.session_token_env),
        ):
            if name is not None:
                value = os.environ.get(name)
                if value is None:
                    raise StorageError(
                        f"environment variable {name} is not set (expected from a Secret)",
                        reason="CredentialsMissing",
                    )
                credentials[argument] = value
        config = Config(
            s3={"addressing_style": "path" if s.force_path_style else "auto"},
            retries={"mode": "standard", "max_attempts": 5},
            connect_timeout=10,
            read_timeout=60,
        )
        return boto3.session.Session().client(
            "s3",
            endpoint_url=s.endpoint_url,
            region_name=s.region,
            verify=s.ca_bundle if s.ca_bundle else True,
            config=config,
            **credentials,
        )

    def _full(self, key: str) -> str:
        return self.root + _check_key(key)

    def location(self, key: str = "") -> str:
        path = self.root + _check_key(key, allow_empty=True)
        return f"s3://{self.bucket}/{path}"

    @contextmanager
    def writer(self, key: str, *, exclusive: bool = False) -> Iterator[BinaryIO]:
        upload = _MultipartWriter(self, self._full(key), self.location(key), exclusive)
        try:
            yield upload  # type: ignore[misc]
        except BaseException:
            upload.abort()
            raise
        upload.complete()

    @contextmanager
    def reader(self, key: str) -> Iterator[BinaryIO]:
        body = _ObjectReader(self, self._full(key), self.location(key))
        with io.BufferedReader(body, buffer_size=MiB) as stream:
            yield stream  # type: ignore[misc]

    def list(self, prefix: str = "") -> Iterator[str]:
        full = self.root + _check_list_prefix(prefix)
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Contents", []):
                    name = item["Key"]
                    if name.startswith(self.root):  # the server's word is not taken for it
                        yield name[len(self.root) :]
        except (BotoCoreError, ClientError) as error:
            raise StorageError(
                f"listing s3://{self.bucket}/{full} failed: {_describe(error)}",
                reason=_reason(error),
            ) from None

    def delete(self, keys: builtins.list[str]) -> None:
        full = [self._full(key) for key in keys]
        for start in range(0, len(full), DELETE_BATCH):
            batch = full[start : start + DELETE_BATCH]
            try:
                response = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
            except (BotoCoreError, ClientError) as error:
                raise StorageError(
                    f"deleting from {self.location()} failed: {_describe(error)}",
                    reason=_reason(error),
                ) from None
            failed = response.get("Errors", [])
            if failed:
                first = failed[0]
                raise StorageError(
                    f"deleting {len(failed)} object(s) from {self.location()} failed, e.g. "
                    f"{first.get('Key')}: {first.get('Code')} {first.get('Message', '')}".rstrip()
                )


class _MultipartWriter(io.RawIOBase):
    """Buffers one part while the previous one uploads in a single background thread."""

    def __init__(self, storage: S3Storage, key: str, location: str, exclusive: bool) -> None:
        super().__init__()
        self._storage = storage
        self._client = storage.client
        self._key = key
        self._location = location
        self._exclusive = exclusive
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._pending: Future[dict[str, Any]] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._finished = False

    def writable(self) -> bool:
        return True

    def _part_size(self) -> int:
        number = len(self._parts) + (self._pending is not None) + 1
        return self._storage.part_size * (1 + (number - 1) // PART_GROWTH_INTERVAL)

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self._finished or self.closed:
            raise ValueError(f"write to a finished upload of {self._location}")
        view = memoryview(data).cast("B")
        offset = 0
        while offset < view.nbytes:
            room = self._part_size() - len(self._buffer)
            chunk = view[offset : offset + room]
            self._buffer += chunk
            offset += chunk.nbytes
            if len(self._buffer) >= self._part_size():
                self._send_part()
        return view.nbytes

    def _fail(self, action: str, error: Exception) -> StorageError:
        return StorageError(
            f"{action} {self._location} failed: {_describe(error)}", reason=_reason(error)
        )

    def _send_part(self) -> None:
        """Hand the full buffer to the uploader, after the previous part finished (so at most
        two parts are ever held)."""
        self._collect()
        if self._upload_id is None:
            try:
                created = self._client.create_multipart_upload(
                    Bucket=self._storage.bucket, Key=self._key
                )
            except (BotoCoreError, ClientError) as error:
                raise self._fail("starting the upload of", error) from None
            self._upload_id = created["UploadId"]
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s3-part")
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise StorageError(f"{self._location} would need more than {MAX_PARTS} parts")
        body, self._buffer = self._buffer, bytearray()
        assert self._executor is not None
        self._pending = self._executor.submit(self._upload_part, number, body)

    def _upload_part(self, number: int, body: bytearray) -> dict[str, Any]:
        response = self._client.upload_part(
            Bucket=self._storage.bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
        )
        return {"PartNumber": number, "ETag": response["ETag"]}

    def _collect(self) -> None:
        if self._pending is None:
            return
        pending, self._pending = self._pending, None
        try:
            self._parts.append(pending.result())
        except (BotoCoreError, ClientError) as error:
            raise self._fail(f"uploading part {len(self._parts) + 1} of", error) from None

    def complete(self) -> None:
        """Make the object exist: the last part and CompleteMultipartUpload, or a single PUT."""
        if self._finished:
            return
        try:
            if self._upload_id is None:
                self._commit("writing", self._client.put_object, Body=self._buffer)
            else:
                if self._buffer:
                    self._send_part()
                self._collect()
                self._commit(
                    "completing the upload of",
                    self._client.complete_multipart_upload,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
        except BaseException:
            self.abort()
            raise
        self._release()

    def _commit(self, action: str, call: Any, **request: Any) -> None:
        """The request that makes the object appear; exclusive writes are conditional."""
        request.update(Bucket=self._storage.bucket, Key=self._key)
        try:
            if not self._exclusive:
                call(**request)
                return
            try:
                call(**request, IfNoneMatch="*")
            except ClientError as error:
                if _code(error) != "NotImplemented":
                    raise
                log.warning(
                    "%s does not support conditional writes; writing %s without checking "
                    "that it is new", self._storage.location(), self._location,
                )
                call(**request)
        except ClientError as error:
            if _code(error) in ("PreconditionFailed", "412"):
                raise StorageError(
                    f"{self._location} already exists", reason=ALREADY_EXISTS
                ) from None
            raise self._fail(action, error) from None
        except BotoCoreError as error:
            raise self._fail(action, error) from None

    def abort(self) -> None:
        """Drop everything uploaded so far; the object never appears."""
        if self._finished:
            return
        if self._pending is not None:
            self._pending.cancel()
            with contextlib.suppress(Exception):  # the upload is being thrown away
                self._pending.result()
            self._pending = None
        if self._upload_id is not None:
            try:
                self._client.abort_multipart_upload(
                    Bucket=self._storage.bucket, Key=self._key, UploadId=self._upload_id
                )
            except (BotoCoreError, ClientError) as error:
                log.warning(
                    "aborting the upload of %s failed: %s (a bucket lifecycle rule for "
                    "incomplete multipart uploads cleans it up)",
                    self._location,
                    _describe(error),
                )
        self._release()

    def _release(self) -> None:
        self._finished = True
        self._buffer = bytearray()
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        super().close()

    def close(self) -> None:
        """Closing is not committing: the writer context commits on a clean exit."""
        if not self.closed:
            self.flush()


class _ObjectReader(io.RawIOBase):
    """An object's body that resumes (with a Range request pinned to the same ETag) when the
    connection breaks mid-way, instead of failing a large restore near its end."""

    def __init__(self, storage: S3Storage, key: str, location: str) -> None:
        super().__init__()
        self._storage = storage
        self._key = key
        self._location = location
        self._position = 0
        self._etag: str | None = None
        self._body: Any = None
        self._open()

    def readable(self) -> bool:
        return True

    def _open(self) -> None:
        request: dict[str, Any] = {"Bucket": self._storage.bucket, "Key": self._key}
        if self._etag is not None:
            request.update(IfMatch=self._etag, Range=f"bytes={self._position}-")
        try:
            response = self._storage.client.get_object(**request)
        except ClientError as error:
            code = _code(error)
            if code in ("NoSuchKey", "404"):
                raise StorageError(f"no object at {self._location}", reason="NotFound") from None
            if code in ("PreconditionFailed", "412"):
                raise StorageError(f"{self._location} changed while it was being read") from None
            raise StorageError(
                f"reading {self._location} failed: {_describe(error)}", reason=_reason(error)
            ) from None
        except BotoCoreError as error:
            raise StorageError(f"reading {self._location} failed: {_describe(error)}") from None
        self._etag = response.get("ETag")
        self._body = response["Body"]

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        attempts = 0
        while True:
            try:
                data = self._body.read(view.nbytes)
                break
            except (BotoCoreError, OSError) as error:
                attempts += 1
                if attempts > READ_RETRIES:
                    raise StorageError(
                        f"reading {self._location} failed at byte {self._position}: "
                        f"{_describe(error)}"
                    ) from None
                log.warning(
                    "reading %s broke at byte %d (%s); resuming",
                    self._location,
                    self._position,
                    _describe(error),
                )
                self._close_body()
                self._open()
        view[: len(data)] = data
        self._position += len(data)
        return len(data)

    def _close_body(self) -> None:
        if self._body is not None:
            with contextlib.suppress(Exception):  # a broken connection may not close cleanly
                self._body.close()
            self._body = None

    def close(self) -> None:
        self._close_body()
        super().close()
