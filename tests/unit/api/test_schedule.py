"""The cron pattern in the CRD accepts what CronJobs accept and rejects the rest."""

import re
from datetime import timedelta

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from runbook_operator.api.common import Duration, GoDuration, parse_duration
from runbook_operator.api.schedule import CRON_PATTERN, TimeZone

CRON = re.compile(CRON_PATTERN)


@pytest.mark.parametrize(
    "schedule",
    ["0 2 * * *", "*/15 * * * *", "0 0 1,15 * MON-FRI", "30 3 * JAN-MAR 0", "@daily",
     "@hourly", "5-10/2 0-6 ? * ?", "0 0 31 12 6"],
)
def test_valid_schedules_match(schedule: str) -> None:
    assert CRON.fullmatch(schedule)


@pytest.mark.parametrize(
    "schedule",
    ["every day at 2", "61 * * * *", "0 24 * * *", "0 0 32 * *", "0 0 * 13 *", "0 0 * * 7x",
     "* * * *", "* * * * * *", "@every 5m", "", "0 2 * * * extra"],
)
def test_invalid_schedules_do_not_match(schedule: str) -> None:
    assert not CRON.fullmatch(schedule)


def _beyond_the_pattern(schedule: str) -> bool:
    """Month/day names, zero steps and reversed ranges pass the pattern; the CronJob API server
    rejects them and the operator reports that as Stalled."""
    reversed_range = any(
        int(a) > int(b) for a, b in re.findall(r"(?<![0-9])([0-9]+)-([0-9]+)", schedule)
    )
    return bool(re.search(r"[A-Za-z]|/0+(,|\s|$)", schedule)) or reversed_range


@settings(max_examples=150, deadline=None)
@given(st.from_regex(CRON, fullmatch=True))
def test_everything_the_pattern_accepts_is_a_cron_schedule(schedule: str) -> None:
    if schedule.startswith("@") or _beyond_the_pattern(schedule):
        return
    assert croniter.is_valid(schedule), schedule


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])
def test_known_time_zones_are_accepted(zone: str) -> None:
    assert TypeAdapter(TimeZone).validate_python(zone) == zone


@pytest.mark.parametrize("zone", ["Mars/Olympus", "Europe/Nowhere", "not a zone"])
def test_unknown_time_zones_are_rejected(zone: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(TimeZone).validate_python(zone)


@pytest.mark.parametrize(
    "text, expected",
    [("30s", timedelta(seconds=30)), ("5m", timedelta(minutes=5)), ("1h30m", timedelta(minutes=90)),
     ("7d", timedelta(days=7)), ("250ms", timedelta(milliseconds=250))],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", "m5", "1.5h", "-1s", "5 m"])
def test_parse_duration_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("text", ["36501d", "302225641640591590087618729657ms8106844m33s26h"])
def test_parse_duration_rejects_more_than_a_century(text: str) -> None:
    """The pattern lets any number through; timedelta and datetime arithmetic do not (a
    generated AlertRule's anomaly.step raised OverflowError in the model)."""
    with pytest.raises(ValueError, match="longer than 36500d"):
        parse_duration(text)


@pytest.mark.parametrize("duration", [Duration, GoDuration])
def test_durations_over_a_century_are_invalid(duration: object) -> None:
    assert TypeAdapter(duration).validate_python("36500d" if duration is Duration else "1h")
    with pytest.raises(ValidationError, match="longer than 36500d"):
        TypeAdapter(duration).validate_python("9" * 20 + "h")
