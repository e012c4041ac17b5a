"""One active replica: the instance holding the operator's Lease runs kopf — its watches, every
kind's handlers, background loops and schedulers — in a term that ends when it stops leading;
the others only watch the Lease, ready to take over (controller-runtime's model).

Each term starts from nothing (a fresh registry, fresh schedulers, a fresh LIST of every
kind), so what a standby would have cached cannot be stale when it takes over.

A leader renews its Lease from a thread of its own, as client-go renews from a goroutine of
its own: an event loop starved by thousands of watch events or a long synchronous section
delays the term's work, never a renewal (when the renew loop was an asyncio task, a starved
loop renewed late and the Lease expired under a healthy process). The thread tells the loop
when leadership is lost (another holder, or no renewal within the renew deadline); the loop
then ends the term. The thread also checks that the loop still runs: each renewal posts a
callback to it, and when none has run for a whole lease duration — far beyond the seconds a
busy loop lags — the loop is taken to be hung, and a hung leader must not keep the Lease
forever: the thread stops renewing (it does not release the Lease: a loop that wakes up must
find the others still waiting a lease duration from the last renewal, not already leading),
so a standby takes over once the Lease expires, and the term ends as soon as the loop runs.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from urllib3.exceptions import HTTPError

from runbook_operator.core.leadership import (
    Move,
    Observed,
    Timing,
    claimed,
    next_move,
    observe,
    released,
    renews_unread,
    still_leading,
)
from runbook_operator.integrations.kubeapi import ApiError, Conflict
from runbook_operator.integrations.lease import Leases

log = logging.getLogger(__name__)
#: Failures of one Lease request: the next try repeats it.
LEASE_ERRORS = (ApiError, HTTPError, OSError)
#: The operator proper, run until the event is set.
Term = Callable[[asyncio.Event], Awaitable[None]]
_T = TypeVar("_T")

#: The Lease's requests, and a leader's renew loop, run on a thread of their own: in the
#: default executor, which the resync loops and handlers share, a renewal queued behind
#: thousands of status writes missed its deadline and the leader lost its term again and
#: again (bench/load.py, bench/alert_rules.py at 5,000 rules). One thread, so a release
#: waits for the renew loop's last request.
_LEASE_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lease")


class Elector:
    """This instance's view of the Lease and its attempts to hold it."""

    def __init__(self, leases: Leases, identity: str, timing: Timing, *,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.leases, self.identity, self.timing = leases, identity, timing
        self.clock, self.wall = clock, wall
        self.observed: Observed | None = None
        self.last_renewed = -float("inf")
        self.leading = False
        self.loop_seen = -float("inf")
        """When (monotonic) the event loop last ran a callback the renew thread posted."""

    async def _call(self, request: Callable[..., _T], *args: Any) -> _T:
        """One Lease request, on the Lease's own thread."""
        return await asyncio.get_running_loop().run_in_executor(
            _LEASE_THREAD, partial(request, *args))

    async def attempt(self, *, renewing: bool) -> bool:
        """Read the Lease and write ourselves into it if it is ours to take (`renewing`: only
        if we hold it). True when we hold it now."""
        return await self._call(self._attempt, renewing)

    def _attempt(self, renewing: bool) -> bool:
        """`attempt`, blocking (on the Lease's thread). A holder renews by writing over what it
        last saw, as client-go does, and reads the Lease only when that write conflicts: one
        request per renewal instead of a read and a write."""
        started = self.clock()
        try:
            if renewing and renews_unread(self.observed, self.identity, started):
                return self._claim(started)
        except Conflict:
            log.debug("Lease %s/%s changed since it was renewed: reading it",
                      self.leases.ref.namespace, self.leases.ref.name)
        except LEASE_ERRORS as error:
            log.debug("Lease %s/%s not renewed: %s", self.leases.ref.namespace,
                      self.leases.ref.name, error)
            return False
        try:
            found = self.leases.read()
            self.observed = None if found is None else observe(self.observed, *found, started)
            move = next_move(self.observed, self.identity, started)
            if move is Move.WAIT or (renewing and move is not Move.RENEW):
                return False
            return self._claim(started)
        except LEASE_ERRORS as error:
            log.debug("Lease %s/%s not written: %s", self.leases.ref.namespace,
                      self.leases.ref.name, error)
            return False

    def _claim(self, started: float) -> bool:
        """Write this instance into the Lease as last observed (create it if there was none)."""
        record = claimed(None if self.observed is None else self.observed.record,
                         self.identity, round(self.timing.lease_seconds), self.wall())
        if self.observed is None:
            version = self.leases.create(record)
        else:
            version = self.leases.write(record, self.observed.resource_version)
        self.observed = Observed(record, version, started)
        self.last_renewed = started
        return True

    async def acquire(self) -> None:
        """Return once this instance holds the Lease."""
        while not await self.attempt(renewing=False):
            await asyncio.sleep(self.timing.retry_seconds)
        self.leading = True
        log.info("leading: %s holds Lease %s/%s", self.identity, self.leases.ref.namespace,
                 self.leases.ref.name)

    async def hold(self) -> None:
        """Renew the Lease every retry period from the Lease's thread (see the module
        docstring); return once leadership is lost: another holder, no renewal within the
        renew deadline, or this event loop hung for a lease duration. Cancelled, the renew
        loop stops after its current request."""
        loop = asyncio.get_running_loop()
        stopped = threading.Event()
        try:
            await loop.run_in_executor(_LEASE_THREAD, self._renew_until_lost, loop, stopped)
        finally:
            stopped.set()

    def _renew_until_lost(self, loop: asyncio.AbstractEventLoop,
                          stopped: threading.Event) -> None:
        """`hold`'s renew loop, blocking (on the Lease's thread) until leadership is lost or
        `stopped` is set."""
        self.loop_seen = self.clock()
        while not stopped.wait(self.timing.retry_seconds):
            if not self._loop_runs(loop):
                self.leading = False
                log.error("the event loop has not run for %.0f s: no longer renewing the "
                          "Lease %s/%s, a standby takes over when it expires",
                          self.clock() - self.loop_seen, self.leases.ref.namespace,
                          self.leases.ref.name)
                return
            renewed = self._attempt(renewing=True)
            holder = None if self.observed is None else self.observed.record.holder
            if not renewed and (holder != self.identity
                                or not still_leading(self.last_renewed, self.clock(),
                                                     self.timing)):
                self.leading = False
                log.warning("lost the Lease %s/%s (holder now: %s): standing by",
                            self.leases.ref.namespace, self.leases.ref.name, holder or "none")
                return

    def _loop_runs(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether the event loop ran a callback of ours within the last lease duration; posts
        the next one."""
        alive = self.clock() - self.loop_seen < self.timing.lease_seconds
        try:
            loop.call_soon_threadsafe(self._loop_ran)
        except RuntimeError:  # the loop is closed
            return False
        return alive

    def _loop_ran(self) -> None:
        self.loop_seen = self.clock()

    async def release(self) -> None:
        """Leave the Lease free, so that a standby takes over at its next try."""
        self.leading = False
        await self._call(self._release)

    def _release(self) -> None:
        """`release`, blocking (on the Lease's thread, so after the renew loop's last write)."""
        if self.observed is None or self.observed.record.holder != self.identity:
            return
        try:
            self.leases.write(released(self.observed.record), self.observed.resource_version)
        except LEASE_ERRORS as error:
            log.warning("Lease not released (it expires instead): %s", error)
            return
        log.info("released the Lease %s/%s", self.leases.ref.namespace, self.leases.ref.name)


async def lead_in_terms(elector: Elector, term: Term) -> None:
    """Stand by until this instance leads, run `term` while it does, and stand by again when
    it stops leading. Returns when the process should exit: SIGTERM/SIGINT (while leading,
    kopf receives it and ends the term gracefully, the Lease renewed meanwhile), or a term
    that ended by itself; the Lease is released first."""
    shutdown = asyncio.Event()
    loop = asyncio.get_running_loop()
    while True:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, shutdown.set)
        acquiring = asyncio.create_task(elector.acquire())
        stopping = asyncio.create_task(shutdown.wait())
        await asyncio.wait({acquiring, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not acquiring.done():
            acquiring.cancel()
            return
        stop = asyncio.Event()
        running = asyncio.create_task(term(stop))
        holding = asyncio.create_task(elector.hold())
        await asyncio.wait({running, holding}, return_when=asyncio.FIRST_COMPLETED)
        if not holding.done():
            holding.cancel()
            await running
            await elector.release()
            return
        stop.set()
        await stop_before_expiry(elector, running)


async def stop_before_expiry(elector: Elector, running: asyncio.Task[None]) -> None:
    """Let a term whose leadership was lost stop gracefully while the Lease is still ours in
    everyone else's eyes, and cut it short when it would expire: a new leader may act then."""
    left = elector.last_renewed + elector.timing.lease_seconds - elector.clock()
    try:
        await asyncio.wait_for(running, max(left, 0))
    except TimeoutError:
        log.warning("the term was cut short: the lost Lease expires for the other instances")
