"""Streaming gzip | zstd | none, in both directions, with bounded memory.

Compression is push-style (`Transform.update`/`finish`, output never much larger than input).
Decompression is pull-style (`read(n)` returns at most n bytes) because a few kilobytes of
compressed zeros can expand to gigabytes: only a reader with an output limit stays bounded.

zstd's streaming reader cannot tell a frame that was cut short from one that ended, so a
truncated stored object is caught by the sha256 and size checks of the pipeline (and by the
authenticated chunks when encrypted), not here.
"""

from __future__ import annotations

import gzip
import io
import zlib
from typing import BinaryIO, Literal, Protocol

import zstandard

from runbook_operator.runner.interfaces import RunnerError, VerificationError

Compression = Literal["gzip", "zstd", "none"]

DEFAULT_LEVELS: dict[Compression, int] = {"gzip": 6, "zstd": 3, "none": 0}
LEVEL_RANGES: dict[Compression, tuple[int, int]] = {"gzip": (1, 9), "zstd": (1, 19), "none": (0, 0)}
SUFFIXES: dict[Compression, str] = {"gzip": ".gz", "zstd": ".zst", "none": ""}
_GZIP_WBITS = 16 + zlib.MAX_WBITS


class Transform(Protocol):
    """One push-style stage of the backup stream."""

    def update(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class Passthrough:
    """The `none` stage: data goes through unchanged."""

    def update(self, data: bytes) -> bytes:
        return data

    def finish(self) -> bytes:
        return b""


class _ObjCompressor:
    """Adapts zlib/zstandard compress objects (compress + flush) to `Transform`."""

    def __init__(self, obj: zstandard.ZstdCompressionObj | zlib._Compress) -> None:
        self._obj = obj

    def update(self, data: bytes) -> bytes:
        return self._obj.compress(data)

    def finish(self) -> bytes:
        return self._obj.flush()


def compressor(kind: Compression, level: int | None = None) -> Transform:
    """A compressing stage; gzip output is a standard single-member .gz (with CRC32 and size),
    zstd output one frame with a content checksum."""
    chosen = DEFAULT_LEVELS[kind] if level is None else level
    low, high = LEVEL_RANGES[kind]
    if not low <= chosen <= high:
        raise RunnerError(
            f"{kind} compression level must be between {low} and {high}, not {chosen}",
            reason="InvalidConfig",
        )
    if kind == "gzip":
        return _ObjCompressor(zlib.compressobj(chosen, zlib.DEFLATED, _GZIP_WBITS))
    if kind == "zstd":
        return _ObjCompressor(
            zstandard.ZstdCompressor(level=chosen, write_checksum=True).compressobj()
        )
    return Passthrough()


class _DecompressingReader(io.RawIOBase):
    """Turns decoder errors into `VerificationError`s with a reason people can act on."""

    def __init__(self, inner: BinaryIO, kind: Compression) -> None:
        super().__init__()
        self._inner = inner
        self._kind = kind

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        try:
            return self._inner.read(size)
        except EOFError as exc:
            raise VerificationError(
                f"the {self._kind} stream ends early: {exc}", reason="Truncated"
            ) from None
        except (OSError, zlib.error, zstandard.ZstdError) as exc:
            raise VerificationError(
                f"the {self._kind} stream is corrupted: {exc}", reason="Corrupted"
            ) from None


def decompressing_reader(raw: BinaryIO, kind: Compression) -> BinaryIO:
    """A file-like whose `read(n)` returns at most n decompressed bytes."""
    if kind == "gzip":
        inner: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
    elif kind == "zstd":
        inner = zstandard.ZstdDecompressor().stream_reader(
            raw, read_across_frames=False, closefd=False
        )
    else:
        return raw
    return _DecompressingReader(inner, kind)  # type: ignore[return-value]
