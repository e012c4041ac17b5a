"""controllers.leadership: the Elector against an in-memory Lease with the API server's
optimistic concurrency, and the terms the operator runs while it leads."""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from runbook_operator.controllers.leadership import Elector, lead_in_terms, stop_before_expiry
from runbook_operator.core.leadership import Record, Timing
from runbook_operator.devcluster.waiting import wait_for, wait_until
from runbook_operator.integrations.kubeapi import Conflict
from runbook_operator.integrations.lease import LeaseRef

TIMING = Timing(lease_seconds=15, renew_deadline_seconds=10, retry_seconds=2)


class MemoryLeases:
    """One Lease as the API server keeps it: writes conflict unless they name the current
    resourceVersion; `down` makes every request fail as an unreachable server does."""

    def __init__(self) -> None:
        self.ref = LeaseRef("runbook-system", "runbook-operator")
        self.record: Record | None = None
        self.version = 0
        self.down = False
        self.reads = 0
        self.requests = 0

    def _reachable(self) -> None:
        self.requests += 1
        if self.down:
            raise OSError("connection refused")

    def read(self) -> tuple[Record, str] | None:
        self._reachable()
        self.reads += 1
        return None if self.record is None else (self.record, str(self.version))

    def create(self, record: Record) -> str:
        self._reachable()
        if self.record is not None:
            raise Conflict(409, "Conflict", "")
        self.record, self.version = record, self.version + 1
        return str(self.version)

    def write(self, record: Record, resource_version: str) -> str:
        self._reachable()
        if resource_version != str(self.version):
            raise Conflict(409, "Conflict", "")
        self.record, self.version = record, self.version + 1
        return str(self.version)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def elector(leases: MemoryLeases, identity: str, clock: Clock) -> Elector:
    return Elector(leases, identity, TIMING, clock=clock,  # type: ignore[arg-type]
                   wall=lambda: datetime(2026, 12, 1, tzinfo=UTC))


def attempt(candidate: Elector, renewing: bool = False) -> bool:
    return asyncio.run(candidate.attempt(renewing=renewing))


def test_the_lease_is_renewed_while_the_default_executor_is_busy() -> None:
    """Handlers and resync loops fill the default executor under load; a renewal queued
    behind them lost the Lease (bench/load.py), so the Lease has a thread of its own."""
    leases, clock = MemoryLeases(), Clock()
    leader = elector(leases, "a", clock)
    assert attempt(leader)
    release = threading.Event()

    async def renew_beside_busy_threads() -> bool:
        loop = asyncio.get_running_loop()
        busy = [loop.run_in_executor(None, release.wait) for _ in range(64)]
        try:
            return await asyncio.wait_for(leader.attempt(renewing=True), 5)
        finally:
            release.set()
            await asyncio.gather(*busy)

    assert asyncio.run(renew_beside_busy_threads())


def test_one_instance_holds_and_the_other_takes_over_only_after_expiry() -> None:
    leases, clock = MemoryLeases(), Clock()
    first, second = elector(leases, "a", clock), elector(leases, "b", clock)
    assert attempt(first)
    assert not attempt(second)
    clock.now = 14.0
    assert not attempt(second)  # the record it saw at 0 s is 14 s old on its clock
    clock.now = 15.0
    assert attempt(second)
    assert leases.record is not None and leases.record.holder == "b"
    assert leases.record.transitions == 1
    assert not attempt(first, renewing=True)


def test_a_leader_renews_with_one_write_and_reads_only_when_the_lease_changed() -> None:
    """As client-go: a renewal writes over the Lease as last seen; a conflict means someone
    wrote it since, and only then is it read, which shows the new holder."""
    leases, clock = MemoryLeases(), Clock()
    leader = elector(leases, "a", clock)
    assert attempt(leader)
    for clock.now in (2.0, 4.0, 6.0):
        assert attempt(leader, renewing=True)
    assert leases.reads == 1 and leases.version == 4
    leases.record = Record("b", 15)
    leases.version += 1
    clock.now = 8.0
    assert not attempt(leader, renewing=True)
    assert leases.reads == 2 and leases.record.holder == "b"


def test_a_renewal_that_cannot_reach_the_server_fails_without_a_second_request() -> None:
    leases, clock = MemoryLeases(), Clock()
    leader = elector(leases, "a", clock)
    assert attempt(leader)
    leases.down, clock.now = True, 2.0
    before = leases.requests
    assert not attempt(leader, renewing=True)
    assert leases.requests == before + 1
    leases.down, clock.now = False, 4.0
    assert attempt(leader, renewing=True)
    assert leases.reads == 1


def test_a_standby_that_starts_late_waits_a_whole_lease_from_its_first_look() -> None:
    leases, clock = MemoryLeases(), Clock()
    assert attempt(elector(leases, "a", clock))
    clock.now = 100.0
    late = elector(leases, "b", clock)
    assert not attempt(late)
    clock.now = 114.0
    assert not attempt(late)
    clock.now = 115.0
    assert attempt(late)


class StaleRead(MemoryLeases):
    """Reads answer what the Lease was when this was made; writes go to the real one."""

    def __init__(self, real: MemoryLeases) -> None:
        super().__init__()
        self.real, self.snapshot = real, real.read()

    def read(self) -> tuple[Record, str] | None:
        return self.snapshot

    def write(self, record: Record, resource_version: str) -> str:
        return self.real.write(record, resource_version)


def test_a_write_based_on_a_stale_read_loses() -> None:
    leases, clock = MemoryLeases(), Clock()
    first = elector(leases, "a", clock)
    assert attempt(first)
    late = elector(StaleRead(leases), "b", clock)  # type: ignore[arg-type]
    assert not attempt(late)
    clock.now = 20.0
    assert attempt(first, renewing=True)  # renewed after the other's read
    assert not attempt(late)  # expired on its clock, but its write names an old version
    assert leases.record is not None and leases.record.holder == "a"


def test_a_released_lease_is_taken_at_once() -> None:
    leases, clock = MemoryLeases(), Clock()
    first, second = elector(leases, "a", clock), elector(leases, "b", clock)
    assert attempt(first)
    asyncio.run(first.release())
    assert attempt(second)


def test_a_restarted_holder_takes_its_own_lease_back_without_waiting() -> None:
    leases, clock = MemoryLeases(), Clock()
    assert attempt(elector(leases, "pod-0", clock))
    assert attempt(elector(leases, "pod-0", clock))


async def run_terms(leases: MemoryLeases, identity: str, breaks: list[str],
                    terms: list[str]) -> None:
    """Lead in terms on a fast timing; each term records itself and ends when told."""
    fast = Timing(lease_seconds=0.3, renew_deadline_seconds=0.2, retry_seconds=0.04)
    candidate = Elector(leases, identity, fast)  # type: ignore[arg-type]
    counter = itertools.count()

    async def term(stop: asyncio.Event) -> None:
        terms.append(f"term {next(counter)}")
        await stop.wait()
        breaks.append(f"stopped with leading={candidate.leading}")

    await lead_in_terms(candidate, term)


def test_a_leader_cut_off_from_the_api_server_stops_its_term_and_leads_again_later() -> None:
    leases, breaks, terms = MemoryLeases(), [], []

    async def scenario() -> None:
        leading = asyncio.create_task(run_terms(leases, "a", breaks, terms))
        await wait_until(lambda: terms, "the first term", timeout=5)
        leases.down = True
        await wait_until(lambda: breaks, "the term stopped while cut off", timeout=5)
        leases.down = False
        await wait_until(lambda: len(terms) >= 2, "a second term once reachable", timeout=5)
        leading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leading

    asyncio.run(scenario())
    assert terms == ["term 0", "term 1"]
    assert breaks[0] == "stopped with leading=False"


def test_a_term_that_ends_by_itself_releases_the_lease_and_returns() -> None:
    leases = MemoryLeases()

    async def scenario() -> None:
        candidate = Elector(leases, "a", Timing(0.3, 0.2, 0.04))  # type: ignore[arg-type]

        async def term(_: asyncio.Event) -> None:
            return None

        await asyncio.wait_for(lead_in_terms(candidate, term), 5)

    asyncio.run(scenario())
    assert leases.record is not None and leases.record.holder is None


def test_a_term_that_lost_its_lease_is_cut_short_when_the_lease_would_expire() -> None:
    leases, clock = MemoryLeases(), Clock()
    candidate = elector(leases, "a", clock)
    assert attempt(candidate)
    clock.now = 14.9  # 0.1 s before the Lease expires for everyone else

    async def scenario() -> asyncio.Task[None]:
        stubborn = asyncio.create_task(asyncio.Event().wait())
        await asyncio.wait_for(stop_before_expiry(candidate, stubborn), 5)
        return stubborn

    assert asyncio.run(scenario()).cancelled()



async def lead_blocking_the_loop(leases: MemoryLeases, timing: Timing,
                                 blocked: Callable[[Elector], None], breaks: list[str],
                                 terms: list[str]) -> None:
    """Lead in terms whose first one blocks the event loop with `blocked` (synchronous, as a
    long CPU-bound section does), then waits to be stopped; returns once a second term ran."""
    candidate = Elector(leases, "a", timing)  # type: ignore[arg-type]

    async def term(stop: asyncio.Event) -> None:
        terms.append(f"term {len(terms)}")
        if len(terms) == 1:
            await wait_until(lambda: candidate.loop_seen > -math.inf,
                             "the renew loop to start", timeout=10)
            blocked(candidate)
        await stop.wait()
        breaks.append(f"stopped with leading={candidate.leading}")

    leading = asyncio.create_task(lead_in_terms(candidate, term))
    await wait_until(lambda: len(terms) >= 2 or leading.done(), "a second term", timeout=10)
    leading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leading


def test_renewals_keep_their_period_while_the_event_loop_is_blocked() -> None:
    """The renew loop runs on its own thread: a loop blocked for many retry periods (a task
    in a synchronous wait) loses no renewal, and the term goes on."""
    leases, breaks, terms = MemoryLeases(), [], []
    timing = Timing(lease_seconds=30, renew_deadline_seconds=20, retry_seconds=0.02)
    renewals: list[int] = []

    def blocked(_: Elector) -> None:
        start = leases.version
        renewals.append(wait_for(lambda: leases.version - start >= 5 and leases.version,
                                 "five renewals while the event loop is blocked",
                                 timeout=10, interval=0.01))

    async def scenario() -> None:
        running = asyncio.create_task(lead_blocking_the_loop(leases, timing, blocked, breaks,
                                                             terms))
        await wait_until(lambda: renewals, "the loop blocked and released", timeout=15)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    asyncio.run(scenario())
    assert terms == ["term 0"] and breaks == []
    assert leases.record is not None and leases.record.holder == "a"


def test_a_leader_whose_event_loop_hangs_past_a_lease_duration_gives_up_the_lease() -> None:
    """A hung loop's leader stops renewing — it does not keep the Lease forever — without
    releasing it; once the loop runs again its term ends, and it leads again in a new term."""
    leases, breaks, terms = MemoryLeases(), [], []
    timing = Timing(lease_seconds=0.5, renew_deadline_seconds=0.35, retry_seconds=0.05)
    renewed_when_given_up: list[int] = []

    def hung(candidate: Elector) -> None:
        wait_for(lambda: not candidate.leading, "the renew thread to give up", timeout=10,
                 interval=0.01)
        renewed_when_given_up.append(leases.version)

    asyncio.run(lead_blocking_the_loop(leases, timing, hung, breaks, terms))
    assert breaks[0] == "stopped with leading=False"
    assert terms == ["term 0", "term 1"]
    assert leases.record is not None and leases.record.holder == "a"
    assert renewed_when_given_up[0] >= 2  # it renewed while the loop ran, then stopped
