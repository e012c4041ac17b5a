"""Escalation: how far a problem has climbed a ladder of levels, as a pure function of when it
started, the policy and `now`.

A level applies from a delay after the start; delays are cumulative from the start (the
runbooks' L1 0 m → L2 30 m → L3 1 h → L4 2 h from opening). Each level reached may raise the
severity (never lower it) and add channels. With `repeats`, the ladder runs again every
`period` after the start, as PagerDuty's `num_loops` do: from its first level, or skipping
the levels before `repeat_from` (the others keep their delays within the pass). A stop (an
acknowledgement) ends escalation where it stands. Steps count every level reached across
passes, so "a step not notified yet" is one comparison for notification planning, and the next
deadline is where a scheduler wakes up. Everything derives from times kept in status, so a
restarted operator neither skips nor repeats a level.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, timedelta

from runbook_operator.api.notificationchannel import SEVERITIES

#: Lowest first (the one mapping, api.notificationchannel.SEVERITIES, reversed); a level
#: raises the severity to its own only when that is higher.
SEVERITY_ORDER: tuple[str, ...] = tuple(reversed(SEVERITIES))


def raised(severity: str, to: str | None) -> str:
    """`severity` raised to `to`, never lowered."""
    if to is None:
        return severity
    return max(severity, to, key=SEVERITY_ORDER.index)


@dataclass(frozen=True, slots=True)
class Level:
    """One rung: reached `after` the start; names the channels it adds (the caller resolves
    them) and the severity it raises to."""

    after: timedelta
    channels: tuple[str, ...] = ()
    severity: str | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """A ladder of levels in strictly increasing `after`, run `1 + repeats` times; pass `k`
    starts `k * period` after the start and reaches each level at its delay from there. The
    first pass climbs every level; the repeated ones skip those before index `repeat_from`."""

    levels: tuple[Level, ...] = ()
    repeats: int = 0
    period: timedelta = timedelta(0)
    repeat_from: int = 0

    def __post_init__(self) -> None:
        afters = [level.after for level in self.levels]
        if afters != sorted(set(afters)) or any(a < timedelta(0) for a in afters):
            raise ValueError("levels need strictly increasing, non-negative delays")
        if self.repeats < 0:
            raise ValueError("repeats must not be negative")
        if self.repeats and (not afters or self.period <= afters[-1]):
            raise ValueError("a repeated ladder needs a period longer than its last delay")
        if self.repeat_from < 0 or (self.repeats and self.repeat_from >= len(afters)):
            raise ValueError("repeats start from one of the levels")

    @property
    def repeated(self) -> tuple[Level, ...]:
        """The levels of every pass after the first."""
        return self.levels[self.repeat_from:]

    @property
    def steps(self) -> int:
        """Steps in all passes together."""
        return len(self.levels) + self.repeats * len(self.repeated)

    def position(self, step: int) -> tuple[int, int]:
        """The pass (0: the first) and the level index of step `step` (1-based, counting
        across passes; within 1..steps)."""
        first = len(self.levels)
        if step <= first:
            return 0, step - 1
        loop, offset = divmod(step - first - 1, len(self.repeated))
        return loop + 1, self.repeat_from + offset

    def deadline(self, start: datetime, step: int) -> datetime | None:
        """When step `step` (1-based, counting across passes) is reached; None past the end."""
        if not 1 <= step <= self.steps:
            return None
        loop, index = self.position(step)
        return start + loop * self.period + self.levels[index].after


def steps_reached(policy: Policy, start: datetime, now: datetime) -> int:
    """How many steps of `policy` a problem that started at `start` has reached at `now`."""
    if not policy.levels or now < start:
        return 0
    elapsed = now - start
    afters = [level.after for level in policy.levels]
    loop = min(elapsed // policy.period, policy.repeats) if policy.repeats else 0
    within = bisect_right(afters, elapsed - loop * policy.period)
    if loop == 0:
        return within
    return (len(afters) + (loop - 1) * len(policy.repeated)
            + max(0, within - policy.repeat_from))


@dataclass(frozen=True)
class Escalation:
    """Where a problem stands on its ladder."""

    step: int
    """Steps reached, counting every pass (0: none yet); never decreases as time passes."""
    level: int
    """The ladder's level of the newest step (1-based; 0: none yet)."""
    loop: int
    """The pass of the newest step (0: the first)."""
    severity: str
    """The base severity raised by every level reached."""
    channels: tuple[str, ...]
    """Channels added by the levels reached, in the order they were first added."""
    next_deadline: datetime | None
    """When the next step is reached; None when the ladder is done or escalation stopped."""


def escalation(
    policy: Policy,
    start: datetime,
    now: datetime,
    severity: str,
    stopped_at: datetime | None = None,
) -> Escalation:
    """The escalation at `now` of a problem that started at `start`; a stop at or before
    `now` (an acknowledgement) freezes it at the steps reached by then."""
    stopped = stopped_at is not None and stopped_at <= now
    step = steps_reached(policy, start, now if stopped_at is None else min(now, stopped_at))
    reached = policy.levels[: min(step, len(policy.levels))]
    for level in reached:
        severity = raised(severity, level.severity)
    channels: list[str] = []
    for level in reached:
        channels += [c for c in level.channels if c not in channels]
    loop, index = policy.position(step) if step else (0, -1)
    return Escalation(
        step=step,
        level=index + 1,
        loop=loop,
        severity=severity,
        channels=tuple(channels),
        next_deadline=None if stopped else policy.deadline(start, step + 1),
    )
