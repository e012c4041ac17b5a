"""Cron schedules and time zones as CronJobs accept them, validated at apply time."""

from __future__ import annotations

import zoneinfo
from typing import Annotated

from pydantic import AfterValidator, Field

from runbook_operator.api.common import cel, validations


def _cron_field(value: str, question_mark: bool = False) -> str:
    item = rf"(\*|{value}(-{value})?)(/[0-9]{{1,2}})?"
    items = rf"{item}(,{item})*"
    return rf"(\?|{items})" if question_mark else items


_MINUTE = _cron_field(r"[0-5]?[0-9]")
_HOUR = _cron_field(r"(2[0-3]|1[0-9]|0?[0-9])")
_DAY_OF_MONTH = _cron_field(r"(3[01]|[12][0-9]|0?[1-9])", question_mark=True)
_MONTH = _cron_field(r"(1[0-2]|0?[1-9]|[A-Za-z]{3})")
_DAY_OF_WEEK = _cron_field(r"([0-6]|[A-Za-z]{3})", question_mark=True)
_MACROS = r"@(yearly|annually|monthly|weekly|daily|midnight|hourly)"

CRON_PATTERN = (
    rf"^({_MACROS}|{_MINUTE} +{_HOUR} +{_DAY_OF_MONTH} +{_MONTH} +{_DAY_OF_WEEK})$"
)

TIME_ZONE_RULE = cel(
    "self == 'UTC' || timestamp('2000-01-01T00:00:00Z').getHours(self) >= 0",
    "must be an IANA time zone name such as Europe/Berlin or UTC",
)


def _known_time_zone(name: str) -> str:
    if name != "UTC":
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"{TIME_ZONE_RULE['message']}: {name!r} is unknown") from error
    return name


CronSchedule = Annotated[
    str,
    Field(pattern=CRON_PATTERN, max_length=256),
]

TimeZone = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_+\-/]*$",
        max_length=64,
        json_schema_extra=validations(TIME_ZONE_RULE),
    ),
    AfterValidator(_known_time_zone),
]
