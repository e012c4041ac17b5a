"""The verifier that decodes a backup while it is written: what it accepts, what it refuses,
and that the writer can always get rid of it."""

from __future__ import annotations

import os

import pytest

from runbook_operator.runner.compression import Compression, compressor
from runbook_operator.runner.crypto import Encryptor
from runbook_operator.runner.interfaces import RunnerError, VerificationError
from runbook_operator.runner.verification import STREAM_VERIFY_DEPTH, StreamVerifier
from tests.support.streams import KEY

DUMP = os.urandom(300_000) + b"COPY public.t (id) FROM stdin;\n" * 20_000
READ_SIZE = 64 * 1024


def encoded(data: bytes, compression: Compression = "zstd") -> list[bytes]:
    """`data` as the pipeline stores it (compressed, then encrypted), in its written blocks."""
    stage, encryptor = compressor(compression), Encryptor(KEY, 64 * 1024)
    blocks = [encryptor.update(stage.update(data[i : i + READ_SIZE]))
              for i in range(0, len(data), READ_SIZE)]
    blocks.append(encryptor.update(stage.finish()) + encryptor.finish())
    return [b for b in blocks if b]


class Sink:
    def __init__(self, fail: bool = False) -> None:
        self.received = bytearray()
        self.fail = fail
        self.finished = False
        self.stream = self

    def write(self, data: bytes) -> int:
        self.received += data
        return len(data)

    def close(self) -> None:
        pass

    def finish(self) -> None:
        self.finished = True
        if self.fail:
            raise RunnerError("not a dump")


class Checker:
    kind = "memory"

    def __init__(self, fail: bool = False) -> None:
        self.sink = Sink(fail)

    def start(self) -> Sink:
        return self.sink


def verify(blocks: list[bytes], raw_size: int, checker: Checker | None = None,
           compression: Compression = "zstd") -> None:
    verifier = StreamVerifier(compression, KEY, checker, READ_SIZE)
    try:
        for block in blocks:
            verifier.write(block)
        verifier.finish(raw_size)
    finally:
        verifier.abandon()


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_a_valid_stream_passes_and_feeds_the_checker(compression: Compression) -> None:
    checker = Checker()
    verify(encoded(DUMP, compression), len(DUMP), checker, compression)
    assert bytes(checker.sink.received) == DUMP and checker.sink.finished


def test_a_flipped_byte_is_refused() -> None:
    blocks = encoded(DUMP)
    middle = bytearray(blocks[len(blocks) // 2])
    middle[10] ^= 1
    blocks[len(blocks) // 2] = bytes(middle)
    with pytest.raises(VerificationError) as caught:
        verify(blocks, len(DUMP))
    assert caught.value.reason == "Corrupted"


def test_a_missing_tail_is_refused() -> None:
    with pytest.raises(VerificationError) as caught:
        verify(encoded(DUMP)[:-1], len(DUMP))
    assert caught.value.reason == "Truncated"


def test_the_decoded_size_must_be_the_dump_size() -> None:
    with pytest.raises(VerificationError, match="decompresses to"):
        verify(encoded(DUMP), len(DUMP) + 1)


def test_a_failing_content_check_fails_the_stream() -> None:
    checker = Checker(fail=True)
    with pytest.raises(VerificationError) as caught:
        verify(encoded(DUMP), len(DUMP), checker)
    assert caught.value.reason == "CheckFailed"


def test_after_a_failure_the_writer_is_told_and_never_blocked() -> None:
    """Far more blocks than the queue holds follow the bad first one: every write returns,
    and the failure surfaces on a write rather than only at the end."""
    verifier = StreamVerifier("zstd", KEY, None, READ_SIZE)
    raised = None
    for index in range(STREAM_VERIFY_DEPTH * 20):
        try:
            verifier.write(b"not the encryption header" if index == 0 else b"x" * 1000)
        except VerificationError as failure:
            raised = failure
            break
    assert raised is not None and raised.reason == "Corrupted"
    verifier.abandon()


def test_abandon_ends_the_thread_and_the_check() -> None:
    checker = Checker()
    verifier = StreamVerifier("zstd", KEY, checker, READ_SIZE)
    for block in encoded(DUMP)[:3]:
        verifier.write(block)
    verifier.abandon()
    assert checker.sink.finished
    verifier.abandon()  # a second time is harmless
