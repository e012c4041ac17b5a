"""AES-256-GCM over a stream, in authenticated chunks, with constant memory.

A single GCM tag over a whole multi-gigabyte dump would mean buffering it all before anything can
be trusted; sealing fixed-size chunks lets the reader release only authenticated data while
streaming. On its own, chunking would let an attacker reorder, drop or append chunks, so every
chunk's associated data binds the stream header, the chunk index and whether it is the final
chunk (the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár).

Format (all integers big-endian)::

    header (28 bytes)
      0  6  magic            b"RBKENC"
      6  1  format version   1
      7  1  algorithm        1 = AES-256-GCM
      8  8  key id           first 8 bytes of sha256("runbook-operator/key-id/v1\\0" || key)
     16  8  nonce prefix     random, fresh for every stream
     24  4  chunk size       plaintext bytes per non-final chunk
    chunk i = 0, 1, ...: AES-256-GCM(key, nonce, plaintext, aad) = ciphertext || 16-byte tag
      nonce = nonce prefix || uint32(i)
      aad   = header || uint64(i) || uint8(final)
      every chunk but the last holds exactly `chunk size` plaintext bytes; the last one holds
      fewer (possibly zero), so a reader knows the final chunk by its length alone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import re
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Literal

from runbook_operator.runner.interfaces import RunnerError, VerificationError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

Encryption = Literal["aes-256-gcm", "none"]

MAGIC = b"RBKENC"
FORMAT_VERSION = 1
ALGORITHM_AES_256_GCM = 1
KEY_SIZE = 32
TAG_SIZE = 16
KEY_ID_SIZE = 8
NONCE_PREFIX_SIZE = 8
DEFAULT_CHUNK_SIZE = 1024 * 1024
MIN_CHUNK_SIZE = 64
MAX_CHUNK_SIZE = 64 * 1024 * 1024
MAX_CHUNKS = 2**32

_HEADER = struct.Struct(f">{len(MAGIC)}sBB{KEY_ID_SIZE}s{NONCE_PREFIX_SIZE}sI")
HEADER_SIZE = _HEADER.size
_KEY_ID_DOMAIN = b"runbook-operator/key-id/v1\0"
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")


def _aead(key: Key) -> AESGCM:
    """AES-GCM under `key`. `cryptography` is imported here, not with the module: the operator
    imports this module for the config models and names (parse_key, the chunk sizes) and
    never encrypts, and its OpenSSL bindings are 6.6 MiB of its memory."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key.material)


@dataclass(frozen=True)
class Key:
    """A 32-byte AES-256 key. Its repr shows only the key id, so it is safe in logs."""

    material: bytes

    def __post_init__(self) -> None:
        if len(self.material) != KEY_SIZE:
            raise RunnerError(
                f"an encryption key must be {KEY_SIZE} bytes, not {len(self.material)}",
                reason="InvalidKey",
            )

    @property
    def id(self) -> str:
        """A fingerprint that names the key in manifests without revealing it."""
        return _key_id_bytes(self.material).hex()

    def __repr__(self) -> str:
        return f"Key(id={self.id})"


def _key_id_bytes(material: bytes) -> bytes:
    return hashlib.sha256(_KEY_ID_DOMAIN + material).digest()[:KEY_ID_SIZE]


def parse_key(value: str) -> Key:
    """Read a key as stored in a Secret: 64 hex characters or base64 of 32 bytes.

    Error messages describe the expected shape only, never the value."""
    text = value.strip()
    if _HEX_KEY.fullmatch(text):
        return Key(bytes.fromhex(text))
    for altchars in (None, b"-_"):
        try:
            material = base64.b64decode(text, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(material) == KEY_SIZE:
            return Key(material)
    raise RunnerError(
        f"the encryption key must be {KEY_SIZE} random bytes written as 64 hex characters or "
        f"44 base64 characters (e.g. `openssl rand -base64 32`); the value given has "
        f"{len(text)} characters",
        reason="InvalidKey",
    )


@dataclass(frozen=True)
class Header:
    key_id: bytes
    nonce_prefix: bytes
    chunk_size: int

    def pack(self) -> bytes:
        return _HEADER.pack(
            MAGIC,
            FORMAT_VERSION,
            ALGORITHM_AES_256_GCM,
            self.key_id,
            self.nonce_prefix,
            self.chunk_size,
        )


def parse_header(data: bytes) -> Header:
    """Decode and sanity-check a header; any change to it also fails every chunk's tag."""
    if len(data) < HEADER_SIZE:
        raise VerificationError(
            f"the encrypted stream ends inside its {HEADER_SIZE}-byte header "
            f"({len(data)} bytes present)",
            reason="Truncated",
        )
    magic, version, algorithm, key_id, prefix, chunk_size = _HEADER.unpack(data)
    if magic != MAGIC:
        raise VerificationError(
            "the object does not start with the runbook encryption header", reason="Corrupted"
        )
    if version != FORMAT_VERSION or algorithm != ALGORITHM_AES_256_GCM:
        raise VerificationError(
            f"unsupported encryption format version {version} / algorithm {algorithm} "
            f"(corrupted, or written by a newer runner)",
            reason="UnsupportedFormat",
        )
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise VerificationError(
            f"the header's chunk size {chunk_size} is out of range", reason="Corrupted"
        )
    return Header(key_id=key_id, nonce_prefix=prefix, chunk_size=chunk_size)


def _nonce(header: Header, index: int) -> bytes:
    return header.nonce_prefix + struct.pack(">I", index)


def _aad(header_bytes: bytes, index: int, final: bool) -> bytes:
    return header_bytes + struct.pack(">QB", index, 1 if final else 0)


def _check_chunk_size(chunk_size: int) -> None:
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise RunnerError(
            f"chunk size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE} bytes",
            reason="InvalidConfig",
        )


class Encryptor:
    """Push-style encryption: feed plaintext to `update`, then call `finish` once.

    Output is released chunk by chunk, so memory stays near one chunk whatever the input size."""

    def __init__(self, key: Key, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        _check_chunk_size(chunk_size)
        self._aead = _aead(key)
        self._header = Header(
            key_id=_key_id_bytes(key.material),
            nonce_prefix=os.urandom(NONCE_PREFIX_SIZE),
            chunk_size=chunk_size,
        )
        self._header_bytes = self._header.pack()
        self._pending = bytearray()
        self._index = 0
        self._started = False
        self._finished = False

    def _seal(self, plaintext: bytes | bytearray | memoryview, final: bool) -> bytes:
        if self._index >= MAX_CHUNKS:
            raise RunnerError(
                "the stream has more chunks than one nonce prefix allows; use a larger chunk size",
                reason="EncryptionFailed",
            )
        sealed = self._aead.encrypt(
            _nonce(self._header, self._index),
            plaintext,
            _aad(self._header_bytes, self._index, final),
        )
        self._index += 1
        return sealed

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        return [self._header_bytes]

    def update(self, data: bytes) -> bytes:
        if self._finished:
            raise RunnerError("update() after finish()", reason="EncryptionFailed")
        out = self._start()
        self._pending += data
        size = self._header.chunk_size
        offset = 0
        with memoryview(self._pending) as view:
            while len(self._pending) - offset >= size:
                out.append(self._seal(view[offset : offset + size], final=False))
                offset += size
        del self._pending[:offset]
        return b"".join(out)

    def finish(self) -> bytes:
        if self._finished:
            raise RunnerError("finish() called twice", reason="EncryptionFailed")
        out = self._start()
        out.append(self._seal(self._pending, final=True))
        self._pending = bytearray()
        self._finished = True
        return b"".join(out)


class DecryptingReader(io.RawIOBase):
    """Pull-style decryption of a stream written by `Encryptor`.

    Only authenticated plaintext is ever returned. The header is read and the key checked on
    construction, so a wrong key fails before a single byte reaches a restore target."""

    def __init__(self, raw: BinaryIO, key: Key) -> None:
        super().__init__()
        self._raw = raw
        header_bytes = _read_exact(raw, HEADER_SIZE)
        self._header = parse_header(header_bytes)
        self._header_bytes = header_bytes
        if self._header.key_id != _key_id_bytes(key.material):
            raise VerificationError(
                f"the backup was encrypted with key {self._header.key_id.hex()}, "
                f"not with the given key {key.id}",
                reason="WrongKey",
            )
        self._aead = _aead(key)
        self._record_size = self._header.chunk_size + TAG_SIZE
        self._buffer = b""
        self._offset = 0
        self._index = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        """Up to `size` bytes of authenticated plaintext (at most one chunk per call)."""
        while self._offset >= len(self._buffer):
            if self._done:
                return b""
            self._buffer = self._next_chunk()
            self._offset = 0
        end = len(self._buffer) if size < 0 else min(len(self._buffer), self._offset + size)
        data = self._buffer[self._offset : end]
        self._offset = end
        return data

    def _next_chunk(self) -> bytes:
        index = self._index
        record = _read_exact(self._raw, self._record_size)
        if not record:
            raise VerificationError(
                f"the encrypted stream ends after chunk {index - 1} without its final chunk",
                reason="Truncated",
            )
        final = len(record) < self._record_size
        if len(record) < TAG_SIZE:
            raise VerificationError(
                f"the encrypted stream ends inside chunk {index}", reason="Truncated"
            )
        if index >= MAX_CHUNKS:
            raise VerificationError("the stream has too many chunks", reason="Corrupted")
        from cryptography.exceptions import InvalidTag

        try:
            plaintext = self._aead.decrypt(
                _nonce(self._header, index), record, _aad(self._header_bytes, index, final)
            )
        except InvalidTag:
            raise VerificationError(
                f"chunk {index} failed authentication: the data was corrupted, reordered or cut "
                f"short",
                reason="Corrupted",
            ) from None
        self._index += 1
        if final:
            self._done = True
            if self._raw.read(1):
                raise VerificationError(
                    f"unexpected data after the final chunk {index}", reason="Corrupted"
                )
        return plaintext


def _read_exact(raw: BinaryIO, size: int) -> bytes:
    """Read `size` bytes, fewer only at end of stream (pipes and sockets return short reads)."""
    parts: list[bytes] = []
    remaining = size
    while remaining:
        part = raw.read(remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)
