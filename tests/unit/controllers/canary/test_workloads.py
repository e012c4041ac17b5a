from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from runbook_operator.controllers.canary.workloads import _route
from runbook_operator.integrations.routers import Verification
from tests.support.canary_world import START, Route


@dataclass
class CountingRouter:
    """A `Router` over the simulated route, counting its reads and writes."""

    route: Route = field(default_factory=Route)
    reads: int = 0

    def reconcile(self) -> None:
        pass

    def set_weight(self, weight: int) -> None:
        self.route.write(weight)

    def verify(self, weight: int) -> Verification:
        self.reads += 1
        return self.route.verify(weight)

    def finalize(self) -> None:
        self.set_weight(0)


def test_a_weight_the_ticks_own_read_confirmed_is_not_read_again() -> None:
    router = CountingRouter()
    router.route.write(30)
    router.route.processed = True
    known = router.verify(30)
    answered = _route(router, 30, None, START, known)
    assert router.reads == 1 and router.route.writes == [30]
    assert answered.verified == "Yes" and answered.confirmed_at is not None


def test_an_unconfirmed_or_other_weight_is_read_and_written_again() -> None:
    router = CountingRouter()
    router.route.write(30)
    router.route.processed = True
    answered = _route(router, 55, None, START, router.verify(30))
    assert router.reads == 3 and router.route.writes == [30, 55]
    assert (answered.weight, answered.verified) == (55, "Unknown")
    router.route.processed = False
    _route(router, 55, answered, START, Verification("Unknown", 55))
    assert router.reads == 4


def test_an_unchanged_answer_keeps_its_time_so_a_rollout_at_rest_writes_no_status() -> None:
    router = CountingRouter()
    router.route.write(0)
    router.route.processed = True
    first = _route(router, 0, None, START, None)
    later = START + timedelta(seconds=30)
    again = _route(router, 0, first, later, router.verify(0))
    assert again == first
    router.route.processed = False  # someone rewrote the route: the answer changes
    changed = _route(router, 0, first, later, None)
    assert changed.time == later and changed.verified == "Unknown"
    assert changed.confirmed_at is None
