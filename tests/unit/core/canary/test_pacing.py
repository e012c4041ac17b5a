from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from runbook_operator.api.canaryrollout import CanaryRolloutStatus, Rollback, RouterStatus
from runbook_operator.core.canary.pacing import (
    IN_FLIGHT,
    LONGEST_WAIT,
    REST_LONGEST,
    REST_SHORTEST,
    next_look,
    rest_period,
    waits_on_route,
)
from tests.support.canary_world import START, initialized, rolled_back, spec

PHASES = ("Initializing", "Initialized", "Progressing", "Paused", "WaitingPromotion",
          "Promoting", "Finalising", "Succeeded", "Failed")


@st.composite
def statuses(draw: st.DrawFn) -> CanaryRolloutStatus:
    weight = draw(st.integers(0, 100))
    router = draw(st.none() | st.builds(
        RouterStatus, weight=st.integers(0, 100), verified=st.sampled_from(["Yes", "No",
                                                                            "Unknown"]),
        time=st.just(START)))
    rollback = draw(st.none() | st.builds(
        Rollback, reason=st.just("FailureLimit"), message=st.just("m"),
        started_at=st.just(START), completed_at=st.none() | st.just(START)))
    return CanaryRolloutStatus(phase=draw(st.sampled_from(PHASES)), weight=weight,
                               router=router, rollback=rollback)


@given(statuses(), st.integers(1, 3600), st.none() | st.integers(-600, 3600))
def test_every_rollout_is_looked_at_again_within_its_rest_and_in_flight_ones_within_seconds(
        status: CanaryRolloutStatus, interval: int, wake_in: int | None) -> None:
    wake_at = None if wake_in is None else START + timedelta(seconds=wake_in)
    looked = next_look(spec(analysis={"interval": f"{interval}s"}), status, wake_at, START)
    assert timedelta(0) <= looked <= REST_LONGEST
    router = status.router
    confirmed = router is not None and router.verified == "Yes" and router.weight == status.weight
    if not confirmed:
        assert looked <= LONGEST_WAIT
    awaiting_report = router is not None and router.verified == "Unknown" \
        and router.weight == status.weight
    if status.phase in ("Initializing", "Progressing", "WaitingPromotion", "Promoting",
                        "Finalising") and wake_at is None:
        assert looked == (LONGEST_WAIT if awaiting_report else IN_FLIGHT)


@given(st.integers(1, 24 * 3600))
def test_a_resting_rollout_is_looked_at_once_per_interval_clamped(interval: int) -> None:
    period = rest_period(spec(analysis={"interval": f"{interval}s"}))
    assert REST_SHORTEST <= period <= REST_LONGEST
    if REST_SHORTEST.total_seconds() <= interval <= REST_LONGEST.total_seconds():
        assert period == timedelta(seconds=interval)


def test_initialized_succeeded_and_rolled_back_rollouts_rest_for_their_interval() -> None:
    sim = initialized(analysis={"interval": "15s"})
    assert next_look(sim.spec, sim.status, sim.decisions[-1].wake_at, sim.now) \
        == timedelta(seconds=15)
    sim.target.change(revision="r2")
    sim.run_until(sim.phase_is("Succeeded"), seconds=5)
    sim.tick()
    assert next_look(sim.spec, sim.status, sim.decisions[-1].wake_at, sim.now) \
        == timedelta(seconds=15)
    sim.verdict = lambda step: "Fail"
    sim.target.change(revision="r3")
    sim.run_until(rolled_back, seconds=5)
    sim.tick()
    assert next_look(sim.spec, sim.status, sim.decisions[-1].wake_at, sim.now) \
        == timedelta(seconds=15)


def test_a_rollout_paused_until_promoted_rests_once_its_weight_is_confirmed() -> None:
    sim = initialized(canary={"steps": [{"setWeight": 20}, {"pause": {}}]})
    sim.target.change(revision="r2")
    sim.run_until(sim.phase_is("Paused"))
    sim.tick()
    assert sim.status.weight == 20
    assert next_look(sim.spec, sim.status, sim.decisions[-1].wake_at, sim.now) == rest_period(
        sim.spec)
    unconfirmed = sim.status.model_copy(update={"router": sim.status.router.model_copy(
        update={"verified": "Unknown"})})
    assert next_look(sim.spec, unconfirmed, None, sim.now) == LONGEST_WAIT


def test_a_rollout_in_flight_is_looked_at_soon_or_when_its_time_comes() -> None:
    sim = initialized()
    sim.target.change(revision="r2")
    sim.tick()
    assert sim.status.phase == "Progressing"
    assert next_look(sim.spec, sim.status, None, sim.now) == IN_FLIGHT
    assert next_look(sim.spec, sim.status, sim.now + timedelta(seconds=2), sim.now) \
        == timedelta(seconds=2)
    assert next_look(sim.spec, sim.status, sim.now + timedelta(minutes=5), sim.now) \
        == LONGEST_WAIT
    assert next_look(sim.spec, sim.status, sim.now - timedelta(seconds=3), sim.now) \
        == timedelta(0)


def test_a_rollout_waits_on_its_own_route_unconfirmed_or_while_a_tick_may_write_it() -> None:
    writing = CanaryRolloutStatus(phase="Progressing", weight=30, router=RouterStatus(
        weight=30, verified="Unknown", time=START))
    confirmed = writing.model_copy(update={"router": RouterStatus(weight=30, verified="Yes",
                                                                  time=START)})
    moving = writing.model_copy(update={"weight": 55, "router": confirmed.router})
    assert waits_on_route(spec(), writing, "checkout", False)
    assert waits_on_route(spec(), moving, "checkout", False)
    assert waits_on_route(spec(), CanaryRolloutStatus(), "checkout", False)
    assert not waits_on_route(spec(), confirmed, "checkout", False)
    assert waits_on_route(spec(), confirmed, "checkout", True)
    assert not waits_on_route(spec(), writing, "cart", True)
    assert not waits_on_route(spec(router={"replicaRatio": {}}), writing, "checkout", True)


def test_a_route_carrying_the_weight_waits_for_its_report_event_and_looks_at_the_latest() -> None:
    awaiting = CanaryRolloutStatus(phase="Progressing", weight=30, router=RouterStatus(
        weight=30, verified="Unknown", time=START))
    elsewhere = awaiting.model_copy(update={"router": RouterStatus(weight=5, verified="Unknown",
                                                                   time=START)})
    assert next_look(spec(), awaiting, None, START) == LONGEST_WAIT
    assert next_look(spec(), elsewhere, None, START) == IN_FLIGHT
    assert next_look(spec(router={"istio": {"virtualService": "checkout"}}), awaiting, None,
                     START) == IN_FLIGHT
