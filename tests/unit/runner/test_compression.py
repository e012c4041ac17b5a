"""Streaming compression: round trips, standard formats, bounded reads, and damage reported."""

from __future__ import annotations

import gzip
import io
import os
import random

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from runbook_operator.runner.compression import Compression, compressor, decompressing_reader
from runbook_operator.runner.interfaces import RunnerError, VerificationError

KINDS: list[Compression] = ["gzip", "zstd", "none"]


def compress(kind: Compression, data: bytes, feed: int = 1000, level: int | None = None) -> bytes:
    stage = compressor(kind, level)
    parts = [stage.update(data[i : i + feed]) for i in range(0, len(data), feed)]
    return b"".join(parts) + stage.finish()


def decompress(kind: Compression, blob: bytes, read: int = 4096) -> bytes:
    reader = decompressing_reader(io.BytesIO(blob), kind)
    parts = []
    while part := reader.read(read):
        assert len(part) <= read
        parts.append(part)
    return b"".join(parts)


@pytest.mark.parametrize("kind", KINDS)
@given(data=st.binary(max_size=5000), feed=st.integers(1, 2000), read=st.integers(1, 3000))
def test_round_trip(kind: Compression, data: bytes, feed: int, read: int) -> None:
    assert decompress(kind, compress(kind, data, feed), read) == data


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_of_megabytes(kind: Compression) -> None:
    data = os.urandom(1 << 20) + bytes(3 << 20) + os.urandom(12345)
    assert decompress(kind, compress(kind, data, feed=1 << 20), read=1 << 20) == data


def test_outputs_are_the_standard_formats() -> None:
    data = b"pg_dump output " * 1000
    assert gzip.decompress(compress("gzip", data)) == data
    zstd_blob = compress("zstd", data)
    assert zstandard.ZstdDecompressor().decompress(zstd_blob, max_output_size=len(data)) == data
    assert zstandard.get_frame_parameters(zstd_blob).has_checksum
    assert compress("none", data) == data


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_compresses_and_levels_apply(kind: Compression) -> None:
    rng = random.Random(7)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"epsilon", b"zeta", b"eta", b"theta"]
    data = b"\n".join(b",".join(rng.choices(words, k=6)) for _ in range(50_000))
    fast, strong = compress(kind, data, level=1), compress(kind, data, level=9)
    assert len(strong) < len(data) // 3
    assert len(strong) <= len(fast)


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_reads_stay_bounded_on_highly_compressible_data(kind: Compression) -> None:
    blob = compress(kind, bytes(64 << 20), feed=1 << 20)
    assert len(blob) < 200_000
    reader = decompressing_reader(io.BytesIO(blob), kind)
    assert len(reader.read(65536)) <= 65536


@pytest.mark.parametrize(("kind", "level"), [("gzip", 0), ("gzip", 10), ("zstd", 20), ("none", 3)])
def test_invalid_levels_are_config_errors(kind: Compression, level: int) -> None:
    with pytest.raises(RunnerError) as caught:
        compressor(kind, level)
    assert caught.value.reason == "InvalidConfig"


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_corruption_is_reported(kind: Compression) -> None:
    blob = bytearray(compress(kind, os.urandom(2000) * 50))
    blob[len(blob) // 2] ^= 0xFF
    with pytest.raises(VerificationError) as caught:
        decompress(kind, bytes(blob))
    assert caught.value.reason in {"Corrupted", "Truncated"}


def test_truncated_gzip_is_reported() -> None:
    blob = compress("gzip", os.urandom(50_000))
    with pytest.raises(VerificationError) as caught:
        decompress("gzip", blob[:-10])
    assert caught.value.reason == "Truncated"


def test_corrupted_zstd_is_caught_by_its_checksum() -> None:
    blob = bytearray(compress("zstd", b"abc" * 10_000))
    blob[-2] ^= 0x01  # inside the content checksum
    with pytest.raises(VerificationError) as caught:
        decompress("zstd", bytes(blob))
    assert caught.value.reason == "Corrupted"
