"""integrations.lease: the Lease's MicroTime as the API server parses it, and records that
survive the trip through the API's JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from runbook_operator.core.leadership import Record
from runbook_operator.integrations.lease import _record, _spec, micro_time


def test_micro_time_always_has_six_fractional_digits_in_utc() -> None:
    assert micro_time(datetime(2026, 12, 1, 12, 0, tzinfo=UTC)) == "2026-12-01T12:00:00.000000Z"
    plus_two = timezone(timedelta(hours=2))
    assert micro_time(datetime(2026, 12, 1, 14, 0, 0, 1500, tzinfo=plus_two)) == (
        "2026-12-01T12:00:00.001500Z")
    assert micro_time(None) is None


def test_a_free_lease_has_no_holder() -> None:
    spec = _spec(Record(None, 1, transitions=2))
    assert "holderIdentity" not in spec
    assert _record(spec) == Record(None, 1, transitions=2)


def test_a_held_lease_survives_the_trip_through_json() -> None:
    moment = datetime(2026, 12, 1, 12, 0, 0, 250000, tzinfo=UTC)
    record = Record("operator-0", 15, acquired=moment, renewed=moment, transitions=3)
    assert _record(_spec(record)) == record
