"""Text for people: the one table printer, ages, durations, sizes and numbers."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from runbook_operator.cli.plugin.table import (
    age_of,
    format_age,
    format_columns,
    human_duration,
    human_number,
    human_size,
    human_value,
    one_line,
    truncate,
)

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "seconds, expected",
    [
        (0, "0s"),
        (45, "45s"),
        (59.9, "59s"),
        (60, "1m"),
        (3 * 60 + 59, "3m"),
        (3599, "59m"),
        (3600, "1h"),
        (2 * 3600 + 1800, "2h"),
        (86399, "23h"),
        (86400, "1d"),
        (5 * 86400 + 7 * 3600, "5d"),
        (364 * 86400, "364d"),
        (365 * 86400, "1y"),
        (-0.5, "0s"),  # clock skew
        (-120, "<invalid>"),
    ],
)
def test_format_age(seconds: float, expected: str) -> None:
    assert format_age(seconds) == expected


def test_age_of_parses_rfc3339() -> None:
    assert age_of("2024-06-01T11:59:15Z", NOW) == "45s"
    assert age_of("2024-05-27T12:00:00+00:00", NOW) == "5d"


@pytest.mark.parametrize(
    "text, limit, expected",
    [("short", 10, "short"), ("exactly10!", 10, "exactly10!"), ("abcdefghijk", 10, "abcdefg...")],
)
def test_truncate(text: str, limit: int, expected: str) -> None:
    assert truncate(text, limit) == expected


@pytest.mark.parametrize(
    "size, text",
    [(None, "-"), (0, "0 B"), (1023, "1023 B"), (1024, "1 KiB"), (4096, "4 KiB"),
     (1536 * 1024, "1.5 MiB"), (3 * 1024**3, "3 GiB"), (1234567, "1.177 MiB"),
     (5 * 1024**5, "5120 TiB")],
)
def test_human_size(size: int | None, text: str) -> None:
    assert human_size(size) == text


@pytest.mark.parametrize("value, text", [
    (0.5900000000000001, "0.59"),
    (607.4649238586426, "607.5"),
    (0.09, "0.09"),
    (5.0, "5"),
    (0, "0"),
    (-0.25, "-0.25"),
    (12345.6, "12.35k"),
    (2.5e9, "2.5G"),
    (0.000123456, "0.0001235"),
    (math.nan, "NaN"),
    (math.inf, "+Inf"),
    (-math.inf, "-Inf"),
])
def test_human_number_keeps_four_significant_digits(value: float, text: str) -> None:
    assert human_number(value) == text


@pytest.mark.parametrize("text, shown", [
    ("0.5900000000000001", "0.59"), ("NaN", "NaN"), ("+Inf", "+Inf"), (None, "-"), ("", "-"),
    ("not a number", "not a number"),
])
def test_human_value_reads_the_apis_text(text: str | None, shown: str) -> None:
    assert human_value(text) == shown


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (0.04, "0.04s"), (12.5, "12.5s"), (30.0, "30s"), (59.96, "59.96s"),
    (60, "1m"), (607.4649238586426, "10m7s"), (3600, "1h"), (3725.2, "1h2m"),
    (86400 + 5, "1d"), (90061, "1d1h"), (-1, "0s"),
])
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_one_line() -> None:
    assert one_line("pg_dump: error:\n  connection\trefused ") == (
        "pg_dump: error: connection refused")


def test_columns_align_and_only_the_last_one_is_cut() -> None:
    headers = ("NAME", "STATE", "MESSAGE")
    rows = [("a", "Firing", "short"), ("longer-name", "Normal", "m" * 80)]
    lines = format_columns(headers, rows).splitlines()
    assert [line.index("STATE") for line in lines[:1]] == [lines[1].index("Firing")]
    assert lines[2].endswith("m" * 80)
    cut = format_columns(headers, rows, width=50).splitlines()
    assert all(len(line) <= 50 for line in cut) and cut[2].endswith("...")
    assert format_columns(headers, rows, width=50).endswith("\n")
