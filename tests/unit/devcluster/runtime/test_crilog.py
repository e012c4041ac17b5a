from __future__ import annotations

import os
from datetime import UTC, datetime

from runbook_operator.devcluster.runtime.crilog import LogWriter, cri_line, message_text


def test_a_cri_line_has_an_rfc3339_time_the_stream_and_the_full_tag() -> None:
    when = datetime(2026, 5, 1, 2, 3, 4, 567890, tzinfo=UTC)
    assert cri_line(when, "stderr", b"pg_dump: error") == (
        b"2026-05-01T02:03:04.567890Z stderr F pg_dump: error\n")


def test_message_text_is_what_kubectl_logs_prints() -> None:
    raw = (cri_line(datetime.now(UTC), "stdout", b"one two") +
           cri_line(datetime.now(UTC), "stderr", b"") +
           cri_line(datetime.now(UTC), "stdout", b"three"))
    assert message_text(raw) == "one two\n\nthree"


def test_the_writer_copies_both_streams_line_by_line(tmp_path) -> None:
    out = (tmp_path / "0.log").open("ab")
    writer = LogWriter(out)
    read_out, write_out = os.pipe()
    read_err, write_err = os.pipe()
    writer.follow(os.fdopen(read_out, "rb"), "stdout")
    writer.follow(os.fdopen(read_err, "rb"), "stderr")
    os.write(write_out, b"hello\nworld\n")
    os.write(write_err, b"oops\n")
    os.close(write_out)
    os.close(write_err)
    writer.close()
    lines = (tmp_path / "0.log").read_bytes().splitlines()
    assert sorted(line.split(b" ", 1)[1] for line in lines) == [
        b"stderr F oops", b"stdout F hello", b"stdout F world"]
