from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from runbook_operator.api.canaryrollout import MEASUREMENT_LIMIT
from runbook_operator.core.canary.machine import NewCommand, capped
from runbook_operator.core.canary.objects import Autoscaler
from tests.support.canary_world import Simulation, initialized, rolled_back

PROGRESSING = ("Progressing", "Paused", "WaitingPromotion")


def test_the_first_reconcile_promotes_the_current_template_without_analysis() -> None:
    sim = initialized()
    assert sim.runs == 0
    assert sim.primary is not None and sim.primary.revision == "r1"
    assert sim.primary.ready == 2  # the target's replicas
    assert sim.route.writes == [0]
    assert sim.target.replicas == 0
    assert sim.status.primary_revision == "r1"
    assert [e.reason for d in sim.decisions for e in d.events] == ["Initialized"]


def test_a_healthy_revision_walks_every_step_and_is_promoted() -> None:
    sim = initialized()
    sim.target.change(revision="r2")
    sim.run_until(sim.phase_is("Succeeded"), seconds=5)
    assert sim.route.writes == [0, 5, 30, 55, 80, 100, 0]
    assert sim.runs == 4
    assert sim.primary is not None and sim.primary.revision == "r2"
    assert sim.target.replicas == 0
    assert sim.status.primary_revision == sim.status.revision == "r2"
    assert sim.status.failed_checks == 0
    phases = [d.status.phase for d in sim.decisions]
    assert phases.index("Promoting") < phases.index("Finalising") < phases.index("Succeeded")


def test_traffic_returns_to_the_promoted_primary_only_once_its_old_pods_have_stopped(
) -> None:
    """A draining pod of the old template answers what the gateway still sends it: all
    traffic back to the primary while one stops served a few requests of the old version."""
    sim = initialized()
    assert sim.primary is not None
    sim.primary.drains = 3
    sim.target.change(revision="r2")
    sim.run_until(lambda s: s.primary is not None and s.primary.stopping > 0, seconds=5)
    sim.run_until(lambda s: s.primary is not None and s.primary.stopping == 0)
    promoting = [d.status.message for d in sim.decisions if d.status.phase == "Promoting"]
    assert any("2 old pod(s) still stopping" in (message or "") for message in promoting)
    assert sim.route.writes[-1] == 100
    sim.run_until(sim.phase_is("Succeeded"))
    assert sim.route.writes == [0, 5, 30, 55, 80, 100, 0]


def test_failures_up_to_the_limit_roll_back_to_the_primary_scaled_first() -> None:
    sim = initialized()
    sim.verdict = lambda step: "Fail"
    sim.target.change(revision="r2")
    sim.run_until(rolled_back, seconds=5)
    assert sim.route.writes == [0, 5, 0]
    assert sim.status.rollback is not None and sim.status.rollback.reason == "FailureLimit"
    assert sim.status.failed_checks == 2 and sim.runs == 2
    assert sim.status.failed_revision == "r2"
    assert sim.primary is not None and sim.primary.revision == "r1"
    assert sim.target.replicas == 0
    assert all(ready >= (floor or 0) for _, ready, floor in sim.shifts)
    assert sim.status.rollback.primary_replicas == 2


def test_ticks_that_move_traffic_ask_to_be_run_again_at_once() -> None:
    """A tick that wrote a weight the router has not confirmed yet looks again soon, even
    when it had also found a later wake-up (the step's progress deadline): a rollback's
    read-back waited 5 s for the next tick in the canary bench."""
    sim = initialized(progressDeadline="10m")
    sim.verdict = lambda step: "Fail"
    sim.target.change(revision="r2")
    sim.run_until(rolled_back, seconds=5)
    moving = [d for d in sim.decisions if d.effects.weight is not None
              and (d.status.router is None or d.status.router.weight != d.effects.weight)]
    assert moving and all(d.wake_at is None for d in moving), [
        (d.status.phase, d.effects.weight, d.wake_at) for d in moving]


def test_the_failure_limit_is_cumulative_and_inconclusive_runs_do_not_count() -> None:
    verdicts = iter(["Fail", "Inconclusive", "Pass", "Inconclusive", "Fail"])
    sim = initialized()
    sim.verdict = lambda step: next(verdicts)
    sim.target.change(revision="r2")
    sim.run_until(rolled_back, seconds=5)
    assert sim.runs == 5
    assert sim.route.writes == [0, 5, 30, 0]  # the pass moved on; the second fail ended it


def test_a_rolled_back_revision_stays_out_until_it_changes_or_is_retried() -> None:
    sim = initialized()
    sim.verdict = lambda step: "Fail"
    sim.target.change(revision="r2")
    sim.run_until(rolled_back, seconds=5)
    for _ in range(20):
        sim.tick(5)
    assert sim.status.phase == "Failed" and sim.route.writes == [0, 5, 0]
    sim.verdict = lambda step: "Pass"
    sim.commands.append(NewCommand("retry", "t1"))
    sim.run_until(sim.phase_is("Succeeded"), seconds=5)
    assert sim.primary is not None and sim.primary.revision == "r2"
    assert sim.status.commands[0].result == "rolling the revision out again"


def test_no_progress_within_the_deadline_rolls_back() -> None:
    sim = initialized(progressDeadline="2m")
    sim.verdict = lambda step: "Inconclusive"
    sim.target.change(revision="r2")
    sim.run_until(rolled_back, seconds=5)
    assert sim.status.rollback is not None
    assert sim.status.rollback.reason == "ProgressDeadline"
    assert sim.status.failed_checks == 0
    started = sim.status.rollout_started_at
    assert started is not None
    # The deadline counts from the analysis step's first run being due (interval 1m) + 2m,
    # the step entered once the router confirmed 5 % (a few 5 s ticks).
    assert sim.status.rollback.started_at - started <= timedelta(minutes=3, seconds=30)


def test_canary_pods_that_never_become_ready_hit_the_deadline_without_traffic() -> None:
    sim = initialized(progressDeadline="1m")
    sim.target.broken = True
    sim.target.change(revision="r2")
    sim.run_until(rolled_back, seconds=5)
    assert sim.route.writes == [0]
    assert sim.status.rollback is not None
    assert sim.status.rollback.reason == "ProgressDeadline"


def test_a_newer_revision_mid_rollout_restarts_the_analysis_from_the_first_step() -> None:
    sim = initialized()
    sim.target.change(revision="r2")
    sim.run_until(lambda s: s.status.weight == 55, seconds=5)
    sim.target.change(revision="r3")
    sim.tick(5)
    assert sim.status.revision == "r3" and sim.status.step_index == 0
    assert sim.status.passes == 0 and sim.status.failed_checks == 0
    assert "NewRevision" in [e.reason for e in sim.decisions[-1].events]
    sim.run_until(sim.phase_is("Succeeded"), seconds=5)
    assert sim.primary is not None and sim.primary.revision == "r3"
    assert sim.route.writes == [0, 5, 30, 55, 5, 30, 55, 80, 100, 0]


def test_a_target_reverted_to_the_primary_ends_the_rollout_quietly() -> None:
    sim = initialized()
    sim.target.change(revision="r2")
    sim.run_until(lambda s: s.status.weight == 30, seconds=5)
    sim.target.change(revision="r1")
    sim.run_until(sim.phase_is("Initialized"), seconds=5)
    assert sim.route.weight == 0 and sim.target.replicas == 0
    assert sim.status.failed_revision is None


def test_abort_rolls_back_and_is_acknowledged_once() -> None:
    sim = initialized()
    sim.target.change(revision="r2")
    sim.run_until(lambda s: s.status.weight == 30, seconds=5)
    sim.commands.append(NewCommand("abort", "t1"))
    sim.run_until(rolled_back, seconds=5)
    assert sim.status.rollback is not None and sim.status.rollback.reason == "Aborted"
    assert [c.token for c in sim.status.commands] == ["t1"]
    assert sim.route.weight == 0


def test_pause_holds_every_clock_and_resume_shifts_them_by_the_pause() -> None:
    sim = initialized()
    sim.target.change(revision="r2")
    sim.run_until(lambda s: s.status.weight == 5, seconds=5)
    due = sim.status.next_analysis_at
    sim.commands.append(NewCommand("pause", "p1"))
    sim.tick(5)
    assert sim.status.phase == "Paused"
    runs = sim.runs
    for _ in range(60):
        sim.tick(5)
    assert sim.runs == runs and sim.route.weight == 5 and sim.status.phase == "Paused"
    sim.commands.append(NewCommand("resume", "r1"))
    sim.tick(5)
    assert sim.status.phase == "Progressing"
    assert due is not None and sim.status.next_analysis_at == due + timedelta(seconds=305)
    sim.run_until(sim.phase_is("Succeeded"), seconds=5)


def test_promote_skips_one_step_and_promote_full_goes_straight_to_promotion() -> None:
    sim = initialized()
    sim.target.change(revision="r2")
    sim.run_until(lambda s: s.status.weight == 5, seconds=5)
    sim.commands.append(NewCommand("promote", "a"))
    sim.run_until(lambda s: s.status.weight == 30, seconds=1)
    assert sim.runs == 0
    sim.commands.append(NewCommand("promoteFull", "b"))
    sim.run_until(sim.phase_is("Succeeded"), seconds=1)
    assert sim.runs == 0 and sim.route.writes == [0, 5, 30, 100, 0]


def test_a_pause_step_without_duration_waits_for_promote() -> None:
    sim = initialized(canary={"steps": [{"setWeight": 20}, {"pause": {}},
                                        {"setWeight": 60}, {"analysis": {}}]})
    sim.target.change(revision="r2")
    for _ in range(100):
        sim.tick(30)
    assert sim.status.phase == "Paused" and sim.route.weight == 20
    sim.commands.append(NewCommand("promote", "go"))
    sim.run_until(sim.phase_is("Succeeded"), seconds=5)
    assert sim.route.writes == [0, 20, 60, 100, 0]


def test_a_paused_rollout_keeps_the_time_it_began_waiting() -> None:
    """A tick that walks the steps back to where it waits is no phase transition: the
    lastTransitionTime of a Paused (or WaitingPromotion) rollout stays when it began."""
    sim = initialized(canary={"steps": [{"setWeight": 20}, {"pause": {}}]})
    sim.target.change(revision="r2")
    sim.run_until(sim.phase_is("Paused"), seconds=5)
    paused_at = sim.status.last_transition_time
    for _ in range(20):
        sim.tick(30)
    assert sim.status.phase == "Paused" and sim.status.last_transition_time == paused_at
    sim.commands.append(NewCommand("promote", "go"))
    sim.run_until(sim.phase_is("Succeeded"), seconds=5)
    assert sim.status.last_transition_time > paused_at


def test_a_timed_pause_step_ends_on_time() -> None:
    sim = initialized(canary={"steps": [{"setWeight": 20}, {"pause": {"duration": "90s"}},
                                        {"setWeight": 60}]})
    sim.target.change(revision="r2")
    sim.run_until(lambda s: s.route.weight == 20, seconds=5)
    written = sim.now
    sim.run_until(lambda s: s.route.weight == 60, seconds=5)
    assert timedelta(seconds=90) <= sim.now - written <= timedelta(seconds=105)


def test_a_closed_gate_holds_without_counting_a_failure() -> None:
    sim = initialized(progressDeadline="1h")
    sim.target.change(revision="r2")
    sim.run_until(lambda s: s.status.weight == 5, seconds=5)
    sim.holds = ("gate 'load-test': 500",)
    for _ in range(100):
        sim.tick(5)
    assert sim.route.weight == 5 and sim.status.failed_checks == 0
    assert sim.status.message == "held: gate 'load-test': 500"
    sim.holds = ()
    sim.run_until(sim.phase_is("Succeeded"), seconds=5)


def test_blue_green_instant_analyses_without_traffic_then_switches_at_once() -> None:
    sim = initialized(canary=None, strategy="blueGreen", blueGreen={"healthCheckPeriod": "3m"})
    sim.target.change(revision="r2")
    sim.run_until(sim.phase_is("Succeeded"), seconds=5)
    assert sim.runs == 3 and sim.route.writes == [0, 100, 0]


def test_blue_green_gradual_walks_its_steps() -> None:
    sim = initialized(canary=None, strategy="blueGreen",
                      blueGreen={"healthCheckPeriod": "1m", "switch": "gradual",
                                 "stepWeight": 50})
    sim.target.change(revision="r2")
    sim.run_until(sim.phase_is("Succeeded"), seconds=5)
    assert sim.route.writes == [0, 50, 100, 0]


def test_the_tick_that_ends_the_last_step_leaves_promotion_to_the_confirmation_gates(
        ) -> None:
    """confirmPromotion gates are asked once the rollout stands at promotion: the tick that
    finishes the last step must wait for them rather than promote unasked."""
    approve = {"name": "approve", "type": "confirmPromotion", "url": "http://hooks/approve"}
    sim = initialized(canary=None, strategy="blueGreen", blueGreen={"healthCheckPeriod": "1m"},
                      analysis={"interval": "1m", "webhooks": [approve]})
    sim.target.change(revision="r2")
    sim.run_until(lambda s: s.status.step_index == 1, seconds=5)
    assert sim.status.phase == "WaitingPromotion", sim.status.message
    assert "confirmPromotion" in sim.status.message
    assert sim.route.writes == [0] and sim.primary is not None and sim.primary.revision == "r1"
    sim.run_until(sim.phase_is("Succeeded"), seconds=5)  # the gates (here: none closed)
    assert sim.route.writes == [0, 100, 0]


def test_an_autoscaler_that_shrank_the_primary_is_outgrown_before_traffic_returns() -> None:
    sim = initialized(autoscalerRef={"name": "checkout"})
    sim.autoscaler = Autoscaler(min_replicas=1, max_replicas=10)
    sim.target.change(revision="r2")
    sim.run_until(lambda s: s.status.weight == 55, seconds=5)
    assert sim.primary is not None
    sim.primary.change(replicas=1)  # the autoscaler shrank the idle primary
    sim.tick(5)
    sim.commands.append(NewCommand("abort", "x"))
    sim.run_until(rolled_back, seconds=5)
    assert sim.shifts and all(floor is not None and ready >= floor
                              for _, ready, floor in sim.shifts)
    assert sim.shifts[0][2] == 3  # primary 1 + canary 2, within the autoscaler's bounds


def test_measurements_are_capped_newest_first() -> None:
    sim = initialized(progressDeadline="1h", analysis={"interval": "1m", "failureLimit": 100})
    sim.verdict = lambda step: "Inconclusive"
    sim.target.change(revision="r2")
    for _ in range(400):
        sim.tick(30)
    assert sim.runs > MEASUREMENT_LIMIT
    assert len(sim.status.measurements) == MEASUREMENT_LIMIT
    times = [m.time for m in sim.status.measurements]
    assert times == sorted(times, reverse=True)


def test_the_command_log_keeps_each_commands_newest_token() -> None:
    sim = initialized()
    for i in range(30):
        sim.commands.append(NewCommand("pause", f"p{i:02}"))
        sim.tick()
    sim.commands.append(NewCommand("resume", "r"))
    sim.tick()
    log = capped(sim.status.commands)
    assert {c.command for c in log} == {"pause", "resume"}
    assert log[0].token == "r" and any(c.token == "p29" for c in log)


VERDICTS = st.sampled_from(["Pass", "Pass", "Pass", "Fail", "Inconclusive"])
COMMANDS = st.sampled_from(["promote", "promoteFull", "abort", "pause", "resume", "retry"])


@settings(max_examples=60, deadline=None)
@given(verdicts=st.lists(VERDICTS, min_size=1, max_size=30),
       events=st.lists(st.tuples(st.integers(0, 200), COMMANDS | st.just("revision")),
                       max_size=6),
       seconds=st.sampled_from([1.0, 7.0, 31.0]))
def test_weights_never_go_backwards_and_a_rollback_ends_at_the_primary(
        verdicts: list[str], events: list[tuple[int, str]], seconds: float) -> None:
    sim = initialized(progressDeadline="5m")
    runs = iter(verdicts * 100)
    sim.verdict = lambda step: next(runs)  # type: ignore[assignment, return-value]
    sim.target.change(revision="r2")
    revisions = iter(f"r{i}" for i in range(3, 100))
    schedule = dict(sorted(events))
    previous: tuple[str | None, int] | None = None
    for tick in range(300):
        what = schedule.get(tick)
        if what == "revision":
            sim.target.change(revision=next(revisions))
        elif what is not None:
            sim.commands.append(NewCommand(what, f"{tick:04}"))  # type: ignore[arg-type]
        decision = sim.tick(seconds)
        status = decision.status
        if status.phase in ("Progressing",) and decision.effects.weight is not None:
            current = (status.revision, decision.effects.weight)
            if previous is not None and previous[0] == current[0]:
                assert current[1] >= previous[1], (previous, current)
            previous = current
        elif status.phase not in PROGRESSING:
            previous = None
    assert all(floor is None or ready >= floor for _, ready, floor in sim.shifts)
    if sim.status.rollback is not None and sim.status.rollback.completed_at is not None \
            and sim.status.phase == "Failed":
        assert sim.route.weight == 0 and sim.target.replicas == 0
    sim.verdict = lambda step: "Fail"
    sim.commands.append(NewCommand("abort", "zzzz"))
    sim.run_until(lambda s: s.status.phase in ("Failed", "Succeeded", "Initialized")
                  and (s.status.rollback is None or s.status.rollback.completed_at is not None),
                  seconds=5)
    sim.run_until(lambda s: s.route.weight == 0 and s.target.replicas == 0, seconds=5)
    assert sim.primary is not None and sim.primary.ready >= 1


REPLICA_RATIO = {"replicaRatio": {"totalReplicas": 4}}


def _replicas(sim: Simulation) -> tuple[int, int]:
    assert sim.primary is not None
    return sim.primary.replicas, sim.target.replicas


def _scales(sim: Simulation) -> list[object]:
    """The Deployment scalings the decisions asked the controller for."""
    return [d.effects for d in sim.decisions
            if d.effects.primary_floor is not None or d.effects.canary is not None]


def _totals_through_a_rollout(sim: Simulation) -> set[int]:
    """Both Deployments' replicas together at every tick of a new revision's rollout."""
    sim.target.change(revision="r2")
    totals = set()
    while sim.status.phase != "Succeeded":
        sim.tick(5)
        totals.add(sum(_replicas(sim)))
    return totals


def test_with_the_replica_ratio_router_only_the_router_scales_and_keeps_the_total() -> None:
    sim = initialized(router=REPLICA_RATIO)
    assert _replicas(sim) == (4, 0)
    totals = _totals_through_a_rollout(sim)
    assert sim.route.writes == [0, 5, 30, 55, 80, 100, 50, 0]
    assert _scales(sim) == []
    assert totals == {4}
    assert sim.primary is not None and sim.primary.revision == "r2"
    assert _replicas(sim) == (4, 0)


def test_with_the_replica_ratio_router_and_no_total_the_primary_takes_the_targets_pods() -> None:
    """The target ran 2 pods; the new primary (1 pod by default) is not counted on top."""
    sim = initialized(router={"replicaRatio": {}})
    assert _replicas(sim) == (2, 0)
    assert _totals_through_a_rollout(sim) == {2} and _replicas(sim) == (2, 0)


def test_with_the_replica_ratio_router_a_failing_revision_rolls_back_by_replicas() -> None:
    sim = initialized(router=REPLICA_RATIO)
    sim.verdict = lambda step: "Fail"
    sim.target.change(revision="r2")
    sim.run_until(rolled_back, seconds=5)
    assert sim.route.writes == [0, 5, 0]
    assert _scales(sim) == []
    assert _replicas(sim) == (4, 0)


def test_with_the_replica_ratio_router_traffic_leaves_100_percent_by_way_of_half() -> None:
    sim = initialized(router=REPLICA_RATIO, canary={"steps": [{"setWeight": 100},
                                                              {"pause": {}}]})
    sim.target.change(revision="r2")
    sim.run_until(lambda s: s.status.phase == "Paused" and s.status.weight == 100)
    assert _replicas(sim) == (0, 4)
    sim.commands.append(NewCommand("abort", "t1"))
    sim.run_until(rolled_back)
    assert sim.route.writes == [0, 100, 50, 0]
    assert _scales(sim) == []


@given(st.lists(st.sampled_from(["Pass", "Fail", "Inconclusive"]), min_size=1, max_size=8))
@settings(max_examples=30, deadline=None)
def test_with_the_replica_ratio_router_no_decision_scales_a_deployment(
        verdicts: list[str]) -> None:
    sim = initialized(router=REPLICA_RATIO, analysis={
        "interval": "1m", "failureLimit": 2, "metrics": [
            {"name": "m", "query": "vector(1)", "thresholdRange": {"min": 0}}]})
    sim.verdict = lambda step: verdicts[min(sim.runs, len(verdicts)) - 1]  # type: ignore
    sim.target.change(revision="r2")
    sim.run_until(lambda s: s.status.phase == "Succeeded" or rolled_back(s), seconds=20)
    assert _scales(sim) == []
    assert _replicas(sim) == (4, 0)
