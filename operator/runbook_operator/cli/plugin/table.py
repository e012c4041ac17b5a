"""Text for people: one table printer (aligned as kubectl aligns columns), ages, durations,
sizes and numbers with a few significant digits, as Prometheus' `humanize` prints them."""

from __future__ import annotations

import math
import shutil
import sys
from collections.abc import Sequence
from datetime import datetime

COLUMN_GAP = "   "  # kubectl's spacing between columns
MIN_LAST_COLUMN_WIDTH = 20  # below this a cut message says nothing; let the line wrap instead
ELLIPSIS = "..."
SIGNIFICANT_DIGITS = 4
_LARGE_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
_BINARY_UNITS = ("KiB", "MiB", "GiB", "TiB")
_DURATION_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: max(limit - len(ELLIPSIS), 0)] + ELLIPSIS


def one_line(text: str) -> str:
    """Messages may span lines; a table cell or a report line must not."""
    return " ".join(text.split())


def format_columns(
    headers: Sequence[str], rows: Sequence[Sequence[str]], width: int | None = None
) -> str:
    """Columns aligned as kubectl aligns them; with `width`, the last (free text) column is cut
    so each line fits a terminal that wide."""
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers[:-1])]
    if width is not None:
        room = width - sum(widths) - len(COLUMN_GAP) * len(widths)
        limit = max(room, MIN_LAST_COLUMN_WIDTH)
        rows = [(*row[:-1], truncate(row[-1], limit)) for row in rows]
    lines = []
    for cells in [headers, *rows]:
        padded = [cell.ljust(w) for cell, w in zip(cells, widths)]
        lines.append(COLUMN_GAP.join([*padded, cells[-1]]).rstrip())
    return "\n".join(lines) + "\n"


def terminal_width() -> int | None:
    """The terminal's width when stdout is one; None (cut nothing) for pipes and files."""
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def format_age(seconds: float) -> str:
    """Age in kubectl's short form (`45s`, `3m`, `2h`, `5d`, `2y`).

    Slightly negative ages come from clock skew between the client and the API server and are
    shown as `0s`, as kubectl does.
    """
    if seconds < -1:
        return "<invalid>"
    whole = max(int(seconds), 0)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m"
    if whole < 86400:
        return f"{whole // 3600}h"
    if whole < 365 * 86400:
        return f"{whole // 86400}d"
    return f"{whole // (365 * 86400)}y"


def age_of(created: str | None, now: datetime) -> str:
    """Age of an RFC 3339 timestamp at `now` (timezone-aware)."""
    if not created:
        return "<unknown>"
    return format_age((now - datetime.fromisoformat(created)).total_seconds())


def human_number(value: float) -> str:
    """Four significant digits, with k/M/G/T from a thousand up: `0.59` for
    0.5900000000000001, `607.5` for 607.4649238586426, `12.35k` for 12345.6. Unlike
    Prometheus' `humanize` no milli/micro prefixes: a ratio of 0.05 reads as 0.05, not 50m."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    for size, prefix in _LARGE_PREFIXES:
        if abs(value) >= size:
            return f"{value / size:.{SIGNIFICANT_DIGITS}g}{prefix}"
    return f"{value:.{SIGNIFICANT_DIGITS}g}"


def human_value(text: str | None) -> str:
    """A value the API keeps as text (Prometheus' sample format) shown as a human number;
    text that is not a number is shown as it is."""
    if not text:
        return "-"
    try:
        return human_number(float(text))
    except ValueError:
        return text


def human_duration(seconds: float) -> str:
    """`12.5s` under a minute; above, the two largest units (`10m7s`, `2h5m`, `1d3h`)."""
    if seconds < 60:
        return f"{human_number(max(seconds, 0))}s"
    remaining = round(seconds)
    parts: list[tuple[int, str]] = []
    for unit, size in _DURATION_UNITS:
        if remaining >= size or parts:  # the largest unit, then the next one (kept when 0)
            value, remaining = divmod(remaining, size)
            parts.append((value, unit))
        if len(parts) == 2:
            break
    return "".join(f"{value}{unit}" for value, unit in parts if value)


def human_size(size: int | None) -> str:
    """Bytes in binary units with four significant digits (`4 KiB`, `1.5 MiB`), `-` when
    unknown."""
    if size is None:
        return "-"
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in _BINARY_UNITS:
        value /= 1024
        if value < 1024 or unit == _BINARY_UNITS[-1]:
            break
    return f"{value:.{SIGNIFICANT_DIGITS}g} {unit}"
