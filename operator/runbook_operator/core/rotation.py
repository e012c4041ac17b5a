"""On-call rotations: who is on call at a moment, as a pure function of the rotation and the
moment (PagerDuty's schedule layer: `members[floor((t - start) / turn) % n]`).

Turns of whole days follow the wall clock of the rotation's time zone: turn `k` begins at the
handoff time of day on the local date `k × days` after the start's, so a weekly handover at
09:00 in Europe/Berlin stays at 09:00 when DST begins or ends (that turn is an hour shorter or
longer in real time). A handoff time that falls in a DST gap takes effect when the clock jumps
past it (02:30 on the spring-forward night is 03:30). The first turn runs from `start` to the
first handover. Shorter turns are fixed lengths of real time from `start`, and the formula
above holds exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from runbook_operator.api.common import parse_duration
from runbook_operator.api.escalationpolicy import Rotation as RotationSpec

DAY = timedelta(days=1)


@dataclass(frozen=True)
class Rotation:
    """A rotation in the core's terms: `size` members taking turns of `turn` from `start`."""

    size: int
    turn: timedelta
    start: datetime
    zone: ZoneInfo
    handoff: time | None = None
    """Local time of day of handovers (whole-day turns only); None: the start's."""

    def __post_init__(self) -> None:
        if self.size < 1 or self.turn <= timedelta(0):
            raise ValueError("a rotation needs members and a positive turn")
        if self.handoff is not None and self.turn % DAY:
            raise ValueError("a handoff time needs a turn of whole days")

    @property
    def follows_wall_clock(self) -> bool:
        return not self.turn % DAY

    def boundary(self, number: int) -> datetime:
        """When turn `number` (0: the first) begins."""
        if number <= 0 or not self.follows_wall_clock:
            return self.start + number * self.turn
        local_start = self.start.astimezone(self.zone)
        handoff = self.handoff or local_start.time()
        date = local_start.date() + timedelta(days=number * (self.turn // DAY))
        return datetime.combine(date, handoff, tzinfo=self.zone).astimezone(UTC)


@dataclass(frozen=True)
class Shift:
    """One member's turn."""

    member: int
    """Index into the rotation's members."""
    number: int
    """Turns since the start (0: the first)."""
    since: datetime
    until: datetime


def turn_number(rotation: Rotation, at: datetime) -> int | None:
    """The turn under way at `at` (None before the start)."""
    if at < rotation.start:
        return None
    number = (at - rotation.start) // rotation.turn
    # Wall-clock turns drift from the real-time estimate by a handoff shift (< 1 day) and DST.
    while number > 0 and rotation.boundary(number) > at:
        number -= 1
    while rotation.boundary(number + 1) <= at:
        number += 1
    return number


def shift_at(rotation: Rotation, at: datetime) -> Shift | None:
    """Who is on call at `at`, since and until when; None before the rotation starts."""
    number = turn_number(rotation, at)
    if number is None:
        return None
    return Shift(member=number % rotation.size, number=number,
                 since=rotation.boundary(number), until=rotation.boundary(number + 1))


def next_change(rotation: Rotation, at: datetime) -> datetime:
    """The first moment after `at` at which who is on call changes (the start, or the end of
    the current turn)."""
    shift = shift_at(rotation, at)
    return rotation.start if shift is None else shift.until


def rotation_of(spec: RotationSpec) -> Rotation:
    """The core's rotation of a validated spec."""
    handoff = None
    if spec.handoff_time is not None:
        hours, minutes = spec.handoff_time.split(":")
        handoff = time(int(hours), int(minutes))
    start = spec.start if spec.start.tzinfo is not None else spec.start.replace(tzinfo=UTC)
    return Rotation(size=len(spec.members), turn=parse_duration(spec.turn), start=start,
                    zone=ZoneInfo(spec.time_zone), handoff=handoff)
