"""Leader election on a coordination.k8s.io Lease, as client-go's leaderelection does: pure
decisions on what was observed of the Lease and when.

Expiry is judged on this instance's own monotonic clock from the moment it saw the Lease's
record last change, never by comparing `renewTime` with the local wall clock, so clock skew
between nodes cannot make a live leader look dead. A leader that has not renewed within the
renew deadline stops acting; the deadline is shorter than the lease duration, so it has
stopped before any other instance may take over.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime


@dataclass(frozen=True)
class Timing:
    """How long a Lease holds, how long a leader may fail to renew it, how often to try."""

    lease_seconds: float
    renew_deadline_seconds: float
    retry_seconds: float

    @classmethod
    def for_lease(cls, lease_seconds: float) -> Timing:
        """client-go's proportions (15 s / 10 s / 2 s) scaled to `lease_seconds`."""
        return cls(lease_seconds, lease_seconds * 2 / 3, lease_seconds * 2 / 15)


@dataclass(frozen=True)
class Record:
    """What a Lease's spec says."""

    holder: str | None
    lease_seconds: int
    acquired: datetime | None = None
    renewed: datetime | None = None
    transitions: int = 0


@dataclass(frozen=True)
class Observed:
    """A Lease as last read, and when (monotonic) its record was first seen as it is."""

    record: Record
    resource_version: str
    since: float


class Move(enum.Enum):
    CREATE = "create"
    """No Lease yet: create it, holding it."""
    TAKE = "take"
    """Free or expired: write ourselves as the holder."""
    RENEW = "renew"
    """Ours: write a new renew time."""
    WAIT = "wait"
    """Someone else holds it and is live."""


def observe(previous: Observed | None, record: Record, resource_version: str,
            now: float) -> Observed:
    """The new observation: `since` moves only when the record changed, so a holder that
    stopped renewing expires on our clock however often we read its Lease."""
    if previous is not None and previous.record == record:
        return replace(previous, resource_version=resource_version)
    return Observed(record, resource_version, now)


def next_move(observed: Observed | None, identity: str, now: float) -> Move:
    """What an instance should do about the Lease it observed (None: there is none)."""
    if observed is None:
        return Move.CREATE
    record = observed.record
    if record.holder == identity:
        return Move.RENEW
    if not record.holder or now >= observed.since + record.lease_seconds:
        return Move.TAKE
    return Move.WAIT


def claimed(record: Record | None, identity: str, lease_seconds: int,
            wall: datetime) -> Record:
    """The record that makes `identity` the holder at wall time `wall`: a renewal keeps the
    acquire time; a change of holder counts a transition."""
    if record is not None and record.holder == identity:
        return replace(record, lease_seconds=lease_seconds, renewed=wall)
    transitions = 0 if record is None else record.transitions + 1
    return Record(identity, lease_seconds, acquired=wall, renewed=wall, transitions=transitions)


def released(record: Record) -> Record:
    """The record a leader that stops cleanly leaves: no holder, so another instance takes
    over at its next try instead of after the lease duration."""
    return replace(record, holder=None, lease_seconds=1)


def renews_unread(observed: Observed | None, identity: str, now: float) -> bool:
    """Whether a holder may renew by writing over the Lease as it last saw it, without reading
    it first (client-go's fast path): it held the Lease then and that term has not expired.
    Were the Lease written since, the write names an old resourceVersion and is refused."""
    return (observed is not None and observed.record.holder == identity
            and now < observed.since + observed.record.lease_seconds)


def still_leading(last_renewed: float, now: float, timing: Timing) -> bool:
    """Whether a leader whose last successful renewal was at `last_renewed` may still act."""
    return now - last_renewed < timing.renew_deadline_seconds
