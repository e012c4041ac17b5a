"""core.rotation: who is on call, PagerDuty's schedule-layer arithmetic, with handovers at a
local time of day that stay put across DST, checked on fixed dates and over random rotations
and moments."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runbook_operator.api.escalationpolicy import Rotation as RotationSpec
from runbook_operator.core.rotation import (
    Rotation,
    next_change,
    rotation_of,
    shift_at,
    turn_number,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
HOUR = timedelta(hours=1)
WEEK = timedelta(days=7)
#: Monday 2026-03-23 09:00 in Berlin (CET, UTC+1); DST begins on Sunday 2026-03-29.
MONDAY = datetime(2026, 3, 23, 9, 0, tzinfo=BERLIN).astimezone(UTC)
WEEKLY = Rotation(size=3, turn=WEEK, start=MONDAY, zone=BERLIN, handoff=time(9, 0))


def local(moment: datetime, zone: ZoneInfo = BERLIN) -> datetime:
    return moment.astimezone(zone)


def test_the_first_member_is_on_call_from_the_start_and_nobody_before() -> None:
    assert shift_at(WEEKLY, MONDAY - timedelta(seconds=1)) is None
    first = shift_at(WEEKLY, MONDAY)
    assert first is not None and (first.member, first.number, first.since) == (0, 0, MONDAY)
    assert next_change(WEEKLY, MONDAY - HOUR) == MONDAY


def test_a_weekly_handover_stays_at_nine_across_the_start_of_dst() -> None:
    first = shift_at(WEEKLY, MONDAY)
    assert first is not None
    assert local(first.until) == datetime(2026, 3, 30, 9, 0, tzinfo=BERLIN)
    assert first.until - first.since == WEEK - HOUR  # the clocks went forward on Sunday
    second = shift_at(WEEKLY, first.until)
    assert second is not None and (second.member, second.since) == (1, first.until)
    assert shift_at(WEEKLY, first.until - timedelta(seconds=1)).member == 0


def test_and_across_its_end() -> None:
    october = datetime(2026, 10, 19, 9, 0, tzinfo=BERLIN).astimezone(UTC)  # DST ends Oct 25
    rotation = Rotation(size=2, turn=WEEK, start=october, zone=BERLIN)
    first = shift_at(rotation, october)
    assert first is not None
    assert local(first.until) == datetime(2026, 10, 26, 9, 0, tzinfo=BERLIN)
    assert first.until - first.since == WEEK + HOUR


def test_members_take_turns_in_order_and_wrap() -> None:
    members = [shift_at(WEEKLY, MONDAY + n * WEEK + 2 * HOUR).member for n in range(7)]
    assert members == [0, 1, 2, 0, 1, 2, 0]


def test_a_handoff_time_other_than_the_starts_shortens_the_first_turn() -> None:
    start = datetime(2026, 6, 1, 15, 0, tzinfo=NEW_YORK).astimezone(UTC)
    rotation = Rotation(size=2, turn=timedelta(days=1), start=start, zone=NEW_YORK,
                        handoff=time(8, 30))
    first = shift_at(rotation, start)
    assert first is not None
    assert local(first.until, NEW_YORK) == datetime(2026, 6, 2, 8, 30, tzinfo=NEW_YORK)
    second = shift_at(rotation, first.until + HOUR)
    assert second is not None and second.member == 1
    assert local(second.until, NEW_YORK) == datetime(2026, 6, 3, 8, 30, tzinfo=NEW_YORK)


def test_a_handoff_in_the_dst_gap_happens_when_the_clock_jumps_past_it() -> None:
    start = datetime(2026, 3, 27, 2, 30, tzinfo=BERLIN).astimezone(UTC)
    rotation = Rotation(size=2, turn=timedelta(days=1), start=start, zone=BERLIN)
    gap = rotation.boundary(2)  # 2026-03-29 02:30 does not exist in Berlin
    assert local(gap) == datetime(2026, 3, 29, 3, 30, tzinfo=BERLIN)
    assert local(rotation.boundary(3)) == datetime(2026, 3, 30, 2, 30, tzinfo=BERLIN)


def test_short_turns_are_real_time_whatever_the_zone() -> None:
    rotation = Rotation(size=3, turn=8 * HOUR, start=MONDAY, zone=BERLIN)
    dst_night = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
    shift = shift_at(rotation, dst_night)
    assert shift is not None
    assert shift.until - shift.since == 8 * HOUR
    assert shift.member == ((dst_night - MONDAY) // (8 * HOUR)) % 3


def test_the_spec_becomes_the_rotation() -> None:
    spec = RotationSpec.model_validate({
        "name": "primary", "turn": "168h", "start": "2026-03-23T08:00:00Z",
        "handoffTime": "09:00", "timeZone": "Europe/Berlin",
        "members": [{"name": "alice"}, {"name": "bob"}, {"name": "carol"}]})
    assert rotation_of(spec) == WEEKLY
    utc = rotation_of(RotationSpec.model_validate({
        "name": "p", "turn": "12h", "start": "2026-03-23T08:00:00Z",
        "members": [{"name": "alice"}]}))
    assert (utc.zone, utc.handoff, utc.turn) == (ZoneInfo("UTC"), None, 12 * HOUR)


@pytest.mark.parametrize("fields", [
    {"size": 0}, {"turn": timedelta(0)}, {"turn": 12 * HOUR, "handoff": time(9, 0)}])
def test_impossible_rotations_are_refused(fields) -> None:
    with pytest.raises(ValueError):
        Rotation(**{"size": 2, "turn": WEEK, "start": MONDAY, "zone": BERLIN, **fields})


# --- properties ------------------------------------------------------------------------------

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]


@st.composite
def rotations(draw) -> Rotation:
    zone = ZoneInfo(draw(st.sampled_from(ZONES)))
    start = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(
        minutes=draw(st.integers(0, 2 * 365 * 24 * 60)))
    if draw(st.booleans()):
        turn = timedelta(days=draw(st.integers(1, 14)))
        handoff = draw(st.none() | st.builds(time, st.integers(0, 23), st.integers(0, 59)))
    else:
        turn = timedelta(minutes=draw(st.integers(1, 3 * 24 * 60)))
        handoff = None
    return Rotation(size=draw(st.integers(1, 6)), turn=turn, start=start, zone=zone,
                    handoff=handoff)


offsets = st.integers(0, 3 * 365 * 24 * 3600).map(lambda s: timedelta(seconds=s))


@settings(max_examples=400, deadline=None)
@given(rotation=rotations(), offset=offsets)
def test_the_shift_holds_the_moment_and_hands_over_to_the_next_member(
        rotation: Rotation, offset: timedelta) -> None:
    at = rotation.start + offset
    shift = shift_at(rotation, at)
    assert shift is not None
    assert shift.since <= at < shift.until
    assert shift.member == shift.number % rotation.size
    following = shift_at(rotation, shift.until)
    assert following is not None
    assert (following.number, following.since) == (shift.number + 1, shift.until)
    assert next_change(rotation, at) == shift.until


@settings(max_examples=300, deadline=None)
@given(rotation=rotations(), offset=offsets)
def test_whole_day_turns_change_at_the_same_local_time_and_short_ones_follow_the_formula(
        rotation: Rotation, offset: timedelta) -> None:
    at = rotation.start + offset
    number = turn_number(rotation, at)
    assert number is not None
    if not rotation.follows_wall_clock:
        assert number == (at - rotation.start) // rotation.turn
        return
    start = local(rotation.start, rotation.zone)
    handoff = rotation.handoff or start.time()
    days = timedelta(days=rotation.turn // timedelta(days=1))
    for n in (number + 1, number + 2):
        begins = local(rotation.boundary(n), rotation.zone).replace(tzinfo=None)
        handover = datetime.combine(start.date() + n * days, handoff)
        round_trip = handover.replace(tzinfo=rotation.zone).astimezone(UTC)
        if round_trip.astimezone(rotation.zone).replace(tzinfo=None) == handover:
            assert begins == handover
        else:  # in a DST gap: when the clock jumps past it
            assert timedelta(0) < begins - handover <= HOUR
