"""controllers.scheduler: the due queue, preparing once per generation, the in-flight set,
the newer-copy cache, deletes, and a loop that survives failures — with a fake kind and clock."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runbook_operator.controllers.scheduler import (Item, Key, Scheduler, newer, next_due,
                                                    pack, resource_version, unpack)

SHOP = "shop"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeKind:
    """Prepares a body's spec (counting calls), due at once, again after `spec.every`; what it
    dispatches is recorded, and each item's work waits until released."""

    def __init__(self, scheduler_clock: Clock) -> None:
        self.clock = scheduler_clock
        self.prepared: list[tuple[Key, int]] = []
        self.dispatched: list[list[Key]] = []
        self.forgot: list[Key] = []
        self.fail_dispatch = False
        self.scheduler: Scheduler[float] = Scheduler(self, "fake work", clock=scheduler_clock,
                                                     tick_seconds=0)
        self.release: dict[Key, asyncio.Event] = {}

    def prepare(self, body: Mapping[str, Any]) -> float:
        meta = body["metadata"]
        self.prepared.append(((meta["namespace"], meta["name"]), meta["generation"]))
        return float(body["spec"]["every"])

    def first_due(self, body: Mapping[str, Any], prepared: float, now: float) -> float:
        return now + body["spec"].get("delay", 0)

    def period(self, prepared: float) -> float:
        return prepared

    async def dispatch(self, items: list[Item[float]]) -> None:
        self.dispatched.append([item.key for item in items])
        if self.fail_dispatch:
            raise RuntimeError("dispatch broke")
        for item in items:
            self.release[item.key] = asyncio.Event()
            self.scheduler.start(self.work(item.key), [item.key])

    async def work(self, key: Key) -> None:
        await self.release[key].wait()

    def forgotten(self, key: Key) -> None:
        self.forgot.append(key)


def body(name: str, version: int = 1, generation: int = 1, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": SHOP, "name": name, "generation": generation,
                         "resourceVersion": str(version)},
            "spec": {"every": 10, **spec}}


@pytest.fixture
def kind() -> FakeKind:
    return FakeKind(Clock())


def test_newer_compares_resource_versions_as_numbers() -> None:
    def at(version: str) -> dict[str, Any]:
        return {"metadata": {"resourceVersion": version}}

    assert newer(at("100"), "99")
    assert newer(at("100"), "100")
    assert not newer(at("99"), "100")
    assert newer(at("opaque-b"), "opaque-a")


def test_a_spec_is_prepared_once_per_generation(kind: FakeKind) -> None:
    scheduler = kind.scheduler
    scheduler.upsert(body("a", version=1, delay=5))
    assert scheduler.items[(SHOP, "a")].due == 105
    scheduler.upsert(body("a", version=2, delay=0))  # a status write: same generation
    item = scheduler.items[(SHOP, "a")]
    assert (item.body["metadata"]["resourceVersion"], item.due) == ("2", 105)
    scheduler.upsert(body("a", version=3, generation=2, every=30))
    item = scheduler.items[(SHOP, "a")]
    assert (item.prepared, item.generation, item.due) == (30.0, 2, 100)
    assert kind.prepared == [((SHOP, "a"), 1), ((SHOP, "a"), 2)]


def test_the_copy_kept_has_no_managed_fields_and_leaves_the_original_alone(
        kind: FakeKind) -> None:
    watched = body("a")
    watched["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
    for version in (1, 2):  # a new object, then a new copy of it
        watched["metadata"]["resourceVersion"] = str(version)
        kind.scheduler.upsert(watched)
        assert kind.scheduler.items[(SHOP, "a")].body == {
            "metadata": {"namespace": SHOP, "name": "a", "generation": 1,
                         "resourceVersion": str(version)},
            "spec": {"every": 10}}
    assert "managedFields" in watched["metadata"]
    assert unpack(pack({"spec": {}})) == {"spec": {}}


def test_a_kept_copy_is_compressed_and_unpacks_to_the_object() -> None:
    rule = body("a", version=3)
    rule["status"] = {"conditions": [{"type": t, "status": "False", "reason": "Idle",
                                      "message": "", "lastTransitionTime": "2026-12-03T14:00:00Z"}
                                     for t in ("Ready", "Reconciling", "Stalled", "Firing")]}
    assert unpack(pack(rule)) == rule
    assert len(pack(rule)) < len(json.dumps(rule, separators=(",", ":"))) / 2


def test_each_access_decodes_a_copy_of_its_own_when_first_read(kind: FakeKind) -> None:
    kind.scheduler.upsert(body("a", version=3))
    item = kind.scheduler.items[(SHOP, "a")]
    snapshot = item.body
    assert resource_version(snapshot) == "3" and "_decoded" not in vars(snapshot)
    snapshot["spec"]["every"] = 1
    assert snapshot["spec"] == {"every": 1} and item.body["spec"] == {"every": 10}
    assert dict(item.body) == body("a", version=3)


def test_a_released_snapshot_holds_no_decoded_copy_and_decodes_again(kind: FakeKind) -> None:
    kind.scheduler.upsert(body("a", version=3))
    snapshot = kind.scheduler.items[(SHOP, "a")].body
    snapshot["spec"]["every"] = 1
    snapshot.release()
    assert "_decoded" not in vars(snapshot)
    assert snapshot["spec"] == {"every": 10} and resource_version(snapshot) == "3"


def test_the_same_version_again_is_not_packed_again(kind: FakeKind) -> None:
    kind.scheduler.upsert(body("a", version=4))
    item = kind.scheduler.items[(SHOP, "a")]
    packed = item.packed
    kind.scheduler.done((SHOP, "a"), body("a", version=4))
    assert item.packed is packed and item.resource_version == "4"


def test_an_older_copy_never_replaces_a_newer_one(kind: FakeKind) -> None:
    kind.scheduler.upsert(body("a", version=7))
    kind.scheduler.upsert(body("a", version=6, generation=2))
    item = kind.scheduler.items[(SHOP, "a")]
    assert (item.body["metadata"]["resourceVersion"], item.generation) == ("7", 1)


def test_a_tick_dispatches_what_is_due_and_reschedules_it_by_its_period(
        kind: FakeKind) -> None:
    scheduler = kind.scheduler

    async def scenario() -> None:
        scheduler.upsert(body("now"))
        scheduler.upsert(body("later", delay=30))
        await scheduler.tick()
        assert kind.dispatched == [[(SHOP, "now")]]
        assert scheduler.items[(SHOP, "now")].due == 110
        assert scheduler.in_flight == {(SHOP, "now")}
        kind.clock.now = 130
        await scheduler.tick()  # "now" is due again, but still in flight
        assert kind.dispatched[-1] == [(SHOP, "later")]
        kind.release[(SHOP, "now")].set()
        kind.release[(SHOP, "later")].set()
        await asyncio.wait_for(scheduler.settle(), 10)
        assert scheduler.in_flight == set()
        await scheduler.tick()
        assert kind.dispatched[-1] == [(SHOP, "now")]
        kind.release[(SHOP, "now")].set()
        await asyncio.wait_for(scheduler.settle(), 10)

    asyncio.run(scenario())


@pytest.mark.parametrize("due, now, expected", [
    (100.0, 100.0, 110.0),
    (100.0, 100.9, 110.0),  # a tick late by 0.9 s: the next is still due at 110, not 110.9
    (100.0, 125.0, 130.0),  # a stalled loop: what it missed is skipped, not caught up
    (100.0, 130.0, 140.0),
])
def test_the_next_due_time_stays_on_the_schedule(due: float, now: float,
                                                 expected: float) -> None:
    assert next_due(due, 10.0, now) == expected
    assert next_due(due, math.inf, now) == math.inf


def test_ticks_that_run_late_do_not_shift_the_schedule(kind: FakeKind) -> None:
    scheduler = kind.scheduler

    async def scenario() -> None:
        scheduler.upsert(body("a"))
        for late in (0.9, 0.1, 0.6):
            kind.clock.now = scheduler.items[(SHOP, "a")].due + late
            await scheduler.tick()
            kind.release[(SHOP, "a")].set()
            await asyncio.wait_for(scheduler.settle(), 10)
        assert scheduler.items[(SHOP, "a")].due == 130.0  # 100 + 3 periods exactly

    asyncio.run(scenario())


def test_an_item_is_rescheduled_even_when_dispatch_fails(kind: FakeKind) -> None:
    kind.fail_dispatch = True
    kind.scheduler.upsert(body("a"))
    with pytest.raises(RuntimeError):
        asyncio.run(kind.scheduler.tick())
    assert kind.scheduler.items[(SHOP, "a")].due == 110
    asyncio.run(kind.scheduler.tick())
    assert kind.dispatched == [[(SHOP, "a")]]


def test_schedule_moves_an_item_and_ignores_unknown_ones(kind: FakeKind) -> None:
    kind.scheduler.upsert(body("a"))
    kind.scheduler.schedule((SHOP, "a"), math.inf)
    kind.scheduler.schedule((SHOP, "gone"), 0)
    asyncio.run(kind.scheduler.tick())
    assert kind.dispatched == [] and list(kind.scheduler.items) == [(SHOP, "a")]


def test_done_caches_the_newest_copy_and_frees_the_item(kind: FakeKind) -> None:
    scheduler = kind.scheduler
    scheduler.upsert(body("a", version=1))
    scheduler.in_flight.add((SHOP, "a"))
    scheduler.done((SHOP, "a"), body("a", version=9))
    assert scheduler.in_flight == set()
    assert scheduler.items[(SHOP, "a")].body["metadata"]["resourceVersion"] == "9"
    scheduler.done((SHOP, "a"))
    assert scheduler.items[(SHOP, "a")].body["metadata"]["resourceVersion"] == "9"


def test_a_delete_forgets_and_work_finishing_after_it_is_dropped(kind: FakeKind) -> None:
    scheduler = kind.scheduler
    scheduler.upsert(body("a"))
    scheduler.in_flight.add((SHOP, "a"))
    scheduler.forget((SHOP, "a"))
    assert kind.forgot == [(SHOP, "a")] and scheduler.items == {}
    scheduler.done((SHOP, "a"), body("a", version=5))  # the evaluation's own write
    assert scheduler.items == {} and scheduler.in_flight == set()
    assert kind.forgot == [(SHOP, "a"), (SHOP, "a")]


def test_failing_work_is_logged_and_leaves_flight(kind: FakeKind,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        raise ValueError("bug")

    async def scenario() -> None:
        kind.scheduler.start(broken(), [(SHOP, "a"), (SHOP, "b")])
        assert kind.scheduler.in_flight == {(SHOP, "a"), (SHOP, "b")}
        await asyncio.wait_for(kind.scheduler.settle(), 10)

    asyncio.run(scenario())
    assert kind.scheduler.in_flight == set()
    assert "fake work of shop/a, shop/b failed" in caplog.text


def test_the_loop_outlives_a_failing_tick_and_cancels_work_when_stopped(
        kind: FakeKind, caplog: pytest.LogCaptureFixture) -> None:
    scheduler = kind.scheduler

    async def scenario() -> None:
        kind.fail_dispatch = True
        scheduler.upsert(body("a"))
        loop = asyncio.create_task(scheduler.run_forever())
        await asyncio.wait_for(_until(lambda: kind.dispatched), 10)
        kind.fail_dispatch = False
        kind.clock.now = 110
        await asyncio.wait_for(_until(lambda: scheduler.in_flight == {(SHOP, "a")}), 10)
        work = next(iter(scheduler.tasks))
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop
        await asyncio.wait_for(asyncio.gather(work, return_exceptions=True), 10)
        assert work.cancelled()

    asyncio.run(scenario())
    assert "fake work: tick failed" in caplog.text


async def _until(condition) -> None:
    """Let the loop run until `condition` holds (callers put a deadline on it)."""
    while not condition():
        await asyncio.sleep(0)


def test_a_woken_item_is_dispatched_without_waiting_for_the_next_tick(kind: FakeKind) -> None:
    scheduler = Scheduler(kind, "fake work", clock=kind.clock, tick_seconds=3600)
    kind.scheduler = scheduler

    async def scenario() -> None:
        scheduler.upsert(body("a", delay=600))
        loop = asyncio.create_task(scheduler.run_forever())
        scheduler.wake((SHOP, "gone"))
        scheduler.wake((SHOP, "a"))
        await asyncio.wait_for(_until(lambda: kind.dispatched), 10)
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)

    asyncio.run(scenario())
    assert kind.dispatched == [[(SHOP, "a")]]


def test_an_item_woken_in_flight_is_due_again_when_done_whatever_its_work_scheduled(
        kind: FakeKind) -> None:
    scheduler = kind.scheduler
    scheduler.upsert(body("a"))
    scheduler.upsert(body("b"))
    scheduler.in_flight.update({(SHOP, "a"), (SHOP, "b")})
    scheduler.wake((SHOP, "a"))
    assert scheduler.items[(SHOP, "a")].due == 100
    scheduler.schedule((SHOP, "a"), 160)
    scheduler.schedule((SHOP, "b"), 160)
    kind.clock.now = 105
    scheduler.done((SHOP, "a"))
    scheduler.done((SHOP, "b"))
    assert scheduler.items[(SHOP, "a")].due == 105 and scheduler.items[(SHOP, "b")].due == 160
    scheduler.done((SHOP, "a"))
    assert scheduler.woken == set()


def test_work_leaving_flight_without_done_still_honours_a_wake(kind: FakeKind) -> None:
    scheduler = kind.scheduler

    async def scenario() -> None:
        scheduler.upsert(body("a"))
        await scheduler.tick()
        scheduler.wake((SHOP, "a"))
        scheduler.schedule((SHOP, "a"), 500)
        kind.release[(SHOP, "a")].set()
        await asyncio.wait_for(scheduler.settle(), 10)

    asyncio.run(scenario())
    assert scheduler.items[(SHOP, "a")].due == 100 and scheduler.woken == set()


def test_a_forgotten_item_is_no_longer_woken(kind: FakeKind) -> None:
    scheduler = kind.scheduler
    scheduler.upsert(body("a"))
    scheduler.in_flight.add((SHOP, "a"))
    scheduler.wake((SHOP, "a"))
    scheduler.forget((SHOP, "a"))
    scheduler.upsert(body("a", version=2))
    scheduler.schedule((SHOP, "a"), 300)
    scheduler.done((SHOP, "a"))
    assert scheduler.items[(SHOP, "a")].due == 300


class RecordingKind:
    """Dispatch only marks the items in flight; the test ends their work with `done`."""

    def __init__(self, clock: Clock) -> None:
        self.dispatched: list[list[Key]] = []
        self.scheduler: Scheduler[float] = Scheduler(self, "recorded work", clock=clock,
                                                     tick_seconds=0)

    def prepare(self, body: Mapping[str, Any]) -> float:
        return float(body["spec"]["every"])

    def first_due(self, body: Mapping[str, Any], prepared: float, now: float) -> float:
        return now + body["spec"]["delay"]

    def period(self, prepared: float) -> float:
        return prepared

    async def dispatch(self, items: list[Item[float]]) -> None:
        self.dispatched.append(sorted(item.key for item in items))
        self.scheduler.in_flight.update(item.key for item in items)

    def forgotten(self, key: Key) -> None:
        pass


NAMES = st.sampled_from(["a", "b"])
TICK = st.tuples(st.just("tick"), st.sampled_from([0.0, 1.0, 5.0, 15.0]))
STEPS = st.lists(st.one_of(
    st.tuples(st.just("upsert"), NAMES, st.integers(1, 3), st.sampled_from([5.0, 10.0, math.inf]),
              st.sampled_from([0, 3, 20])),
    st.tuples(st.just("schedule"), NAMES, st.sampled_from([-5.0, 0.0, 2.0, math.inf])),
    st.tuples(st.just("wake"), NAMES),
    st.tuples(st.just("forget"), NAMES),
    st.tuples(st.just("done"), NAMES),
    TICK, TICK, TICK,
), min_size=10, max_size=80)


@settings(max_examples=300, deadline=None)
@given(STEPS)
def test_a_tick_dispatches_exactly_the_due_items_not_in_flight(steps: list[tuple]) -> None:
    """Whatever moved, woke, finished or was forgotten before, a tick dispatches exactly
    what a scan of every item would, and its queue stays bounded by the items it holds."""
    clock = Clock()
    kind = RecordingKind(clock)
    scheduler = kind.scheduler
    versions = 0
    for step in steps:
        action, *args = step
        key = (SHOP, args[0]) if action != "tick" else None
        if action == "upsert":
            name, generation, every, delay = args
            versions += 1
            scheduler.upsert(body(name, version=versions, generation=generation, every=every,
                                  delay=delay))
        elif action == "schedule":
            scheduler.schedule(key, clock.now + args[1])
        elif action == "wake":
            scheduler.wake(key)
        elif action == "forget":
            scheduler.forget(key)
        elif action == "done":
            if key in scheduler.in_flight:
                scheduler.done(key)
        else:
            clock.now += args[0]
            expected = sorted(k for k, item in scheduler.items.items()
                              if item.due <= clock.now and k not in scheduler.in_flight)
            before = len(kind.dispatched)
            asyncio.run(scheduler.tick())
            assert (kind.dispatched[before:] or [[]]) == [expected]
        assert len(scheduler._queue) <= 2 * len(scheduler.items) + 65
