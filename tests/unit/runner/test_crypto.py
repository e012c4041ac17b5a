"""Chunked AES-256-GCM: round trips at every interesting size, and every way a stored stream can
be damaged or mismatched is detected with a reason a person can act on."""

from __future__ import annotations

import base64
import io
import os
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runbook_operator.runner.crypto import (
    DEFAULT_CHUNK_SIZE,
    HEADER_SIZE,
    MAGIC,
    TAG_SIZE,
    DecryptingReader,
    Encryptor,
    Key,
    parse_key,
)
from runbook_operator.runner.interfaces import RunnerError, VerificationError

KEY = Key(bytes(range(32)))
OTHER_KEY = Key(bytes(range(1, 33)))
CHUNK = 64
RECORD = CHUNK + TAG_SIZE


def encrypt(data: bytes, key: Key = KEY, chunk: int = CHUNK, feed: int = 7) -> bytes:
    encryptor = Encryptor(key, chunk)
    parts = [encryptor.update(data[i : i + feed]) for i in range(0, len(data), feed)]
    return b"".join(parts) + encryptor.finish()


def decrypt(blob: bytes, key: Key = KEY, read: int = 100) -> bytes:
    reader = DecryptingReader(io.BytesIO(blob), key)
    parts = []
    while part := reader.read(read):
        parts.append(part)
    return b"".join(parts)


def reason_of(blob: bytes, key: Key = KEY) -> str:
    with pytest.raises(VerificationError) as caught:
        decrypt(blob, key)
    return caught.value.reason


sizes = st.one_of(
    st.integers(0, 6 * CHUNK),
    st.integers(0, 6).map(lambda n: n * CHUNK),
    st.integers(1, 6).map(lambda n: n * CHUNK - 1),
    st.integers(0, 6).map(lambda n: n * CHUNK + 1),
)


@given(
    data=sizes.flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    feed=st.integers(1, 300),
    read=st.integers(1, 300),
)
def test_round_trip_at_any_size_and_any_feed(data: bytes, feed: int, read: int) -> None:
    blob = encrypt(data, feed=feed)
    assert decrypt(blob, read=read) == data
    chunks = len(data) // CHUNK + 1  # the final chunk is always shorter than a full one
    assert len(blob) == HEADER_SIZE + len(data) + chunks * TAG_SIZE


@pytest.mark.parametrize("size", [0, 1, DEFAULT_CHUNK_SIZE, 3 * DEFAULT_CHUNK_SIZE + 5])
def test_round_trip_with_default_chunk_size(size: int) -> None:
    data = os.urandom(size)
    blob = encrypt(data, chunk=DEFAULT_CHUNK_SIZE, feed=300_000)
    assert decrypt(blob, read=1 << 20) == data


def test_header_layout_names_the_key_without_revealing_it() -> None:
    blob = encrypt(b"hello")
    magic, version, algorithm, key_id, _prefix, chunk = struct.unpack(">6sBB8s8sI", blob[:28])
    assert (magic, version, algorithm, chunk) == (MAGIC, 1, 1, CHUNK)
    assert key_id.hex() == KEY.id
    assert KEY.material.hex()[:16] != KEY.id
    assert KEY.material not in blob


def test_each_stream_has_a_fresh_nonce_prefix() -> None:
    first, second = encrypt(b"same data"), encrypt(b"same data")
    assert first[16:24] != second[16:24]
    assert first[HEADER_SIZE:] != second[HEADER_SIZE:]


def test_reader_releases_at_most_one_chunk_per_read() -> None:
    reader = DecryptingReader(io.BytesIO(encrypt(os.urandom(10 * CHUNK))), KEY)
    assert len(reader.read(10_000)) == CHUNK


DATA = bytes(range(256)) * 2 + b"tail"  # 8 full chunks and a short final one
BLOB = encrypt(DATA)


def test_every_single_byte_corruption_is_detected() -> None:
    for position in range(len(BLOB)):
        damaged = bytearray(BLOB)
        damaged[position] ^= 0x01
        reason = reason_of(bytes(damaged))
        if position >= HEADER_SIZE:
            assert reason == "Corrupted", position
        elif 8 <= position < 16:
            assert reason == "WrongKey", position  # the key id names another key
        else:
            assert reason in {"Corrupted", "UnsupportedFormat"}, position


def records(blob: bytes) -> tuple[bytes, list[bytes]]:
    body = blob[HEADER_SIZE:]
    return blob[:HEADER_SIZE], [body[i : i + RECORD] for i in range(0, len(body), RECORD)]


def test_reordered_chunks_are_detected() -> None:
    header, chunks = records(BLOB)
    chunks[0], chunks[1] = chunks[1], chunks[0]
    assert reason_of(header + b"".join(chunks)) == "Corrupted"


def test_duplicated_chunk_is_detected() -> None:
    header, chunks = records(BLOB)
    assert reason_of(header + b"".join([chunks[0], *chunks])) == "Corrupted"


def test_dropping_the_final_chunks_is_truncation() -> None:
    header, chunks = records(BLOB)
    assert reason_of(header + b"".join(chunks[:-1])) == "Truncated"
    assert reason_of(header + b"".join(chunks[:-3])) == "Truncated"
    assert reason_of(header) == "Truncated"


def test_every_cut_is_detected() -> None:
    for length in range(len(BLOB)):
        reason = reason_of(BLOB[:length])
        if length <= HEADER_SIZE or (length - HEADER_SIZE) % RECORD == 0:
            assert reason == "Truncated", length
        else:
            assert reason in {"Truncated", "Corrupted"}, length


def test_empty_stream_is_truncation() -> None:
    assert reason_of(b"") == "Truncated"


@pytest.mark.parametrize(
    "extra",
    [b"\0", b"more data", records(BLOB)[1][-1], records(BLOB)[1][0], encrypt(b"another stream")],
    ids=["byte", "text", "final-chunk-again", "first-chunk-again", "second-stream"],
)
def test_appended_data_is_detected(extra: bytes) -> None:
    assert reason_of(BLOB + extra) == "Corrupted"


def test_a_chunk_from_another_stream_with_the_same_key_is_detected() -> None:
    header, chunks = records(BLOB)
    _, foreign = records(encrypt(DATA))
    chunks[2] = foreign[2]
    assert reason_of(header + b"".join(chunks)) == "Corrupted"


def test_wrong_key_fails_before_any_data_is_read() -> None:
    raw = io.BytesIO(BLOB)
    with pytest.raises(VerificationError) as caught:
        DecryptingReader(raw, OTHER_KEY)
    assert caught.value.reason == "WrongKey"
    assert KEY.id in str(caught.value) and OTHER_KEY.id in str(caught.value)
    assert raw.tell() == HEADER_SIZE


def test_a_forged_key_id_does_not_help_a_wrong_key() -> None:
    forged = BLOB[:8] + bytes.fromhex(OTHER_KEY.id) + BLOB[16:]
    assert reason_of(forged, OTHER_KEY) == "Corrupted"


def test_unknown_format_version_is_reported_as_such() -> None:
    newer = BLOB[:6] + b"\x02" + BLOB[7:]
    assert reason_of(newer) == "UnsupportedFormat"


def test_chunk_size_is_bounded() -> None:
    with pytest.raises(RunnerError):
        Encryptor(KEY, 1)


class TestKeys:
    material = bytes(range(100, 132))

    @pytest.mark.parametrize(
        "text",
        [
            material.hex(),
            material.hex().upper(),
            base64.b64encode(material).decode(),
            base64.urlsafe_b64encode(material).decode(),
            base64.b64encode(material).decode() + "\n",
            "  " + material.hex() + "\r\n",
        ],
        ids=["hex", "HEX", "base64", "base64url", "trailing-newline", "padded-hex"],
    )
    def test_accepted_forms(self, text: str) -> None:
        assert parse_key(text).material == self.material

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "correct horse battery staple",
            base64.b64encode(bytes(16)).decode(),
            base64.b64encode(bytes(33)).decode(),
            "ab" * 31,
            "zz" * 32,
            "é" * 44,
        ],
        ids=["empty", "passphrase", "16-bytes", "33-bytes", "short-hex", "not-hex", "non-ascii"],
    )
    def test_rejected_forms_never_echo_the_value(self, text: str) -> None:
        with pytest.raises(RunnerError) as caught:
            parse_key(text)
        assert caught.value.reason == "InvalidKey"
        if text.strip():
            assert text.strip() not in str(caught.value)

    def test_key_id_is_a_stable_fingerprint(self) -> None:
        key = Key(self.material)
        assert key.id == Key(self.material).id
        assert len(key.id) == 16 and int(key.id, 16) >= 0
        assert key.id != OTHER_KEY.id
        assert key.id not in self.material.hex()

    def test_repr_shows_only_the_key_id(self) -> None:
        key = Key(self.material)
        assert repr(key) == f"Key(id={key.id})"
        assert self.material.hex() not in repr(key) and str(self.material) not in repr(key)

    def test_key_must_be_32_bytes(self) -> None:
        with pytest.raises(RunnerError) as caught:
            Key(bytes(16))
        assert caught.value.reason == "InvalidKey"
