from __future__ import annotations

from datetime import timedelta

from runbook_operator.api.canaryrollout import CanaryRolloutStatus, GateStatus, Rollback
from runbook_operator.core.canary import gates
from runbook_operator.core.canary.steps import compile_steps
from tests.support.canary_world import START, spec

HOOKS = [{"name": "smoke", "type": "preRollout", "url": "http://hooks/smoke"},
         {"name": "load", "type": "rollout", "url": "http://hooks/load"},
         {"name": "approve", "type": "confirmPromotion", "url": "http://hooks/approve"},
         {"name": "kill-switch", "type": "rollback", "url": "http://hooks/kill"},
         {"name": "tell", "type": "postRollout", "url": "http://hooks/tell"}]
SPEC = spec(analysis={"interval": "1m", "webhooks": HOOKS})
STEPS = compile_steps(SPEC)


def status(**fields: object) -> CanaryRolloutStatus:
    base = {"phase": "Progressing", "revision": "r2", "rollout_started_at": START,
            "step_index": 0, "weight": 0}
    return CanaryRolloutStatus.model_validate({**base, **fields})


def names(found: list) -> list[str]:
    return [hook.name for hook in found]


def test_each_gate_is_asked_at_its_moment() -> None:
    assert gates.asked(STEPS, status(), False).types == {"preRollout"}
    assert gates.asked(STEPS, status(step_index=1, weight=5), True).types == {
        "rollout", "rollback"}
    assert gates.asked(STEPS, status(step_index=len(STEPS), weight=80), False).types == {
        "confirmPromotion"}
    assert gates.asked(STEPS, status(paused_at=START), True).types == set()
    assert gates.asked(STEPS, status(phase="Succeeded"), False).types == {"postRollout"}
    rolling_back = Rollback(reason="Aborted", started_at=START)
    assert gates.asked(STEPS, status(phase="Failed", rollback=rolling_back), False).types == set()


def test_a_closed_gate_holds_and_is_asked_again_after_the_retry_interval() -> None:
    which = gates.asked(STEPS, status(), False)
    assert names(gates.to_call(SPEC, status(), which, START)) == ["smoke"]
    assert gates.verdicts(SPEC, status(), which).holds == ("gate 'smoke' has not answered yet",)
    closed = gates.recorded(status(), [GateStatus(name="smoke", open=False,
                                                  message="500 Internal", time=START)])
    assert gates.verdicts(SPEC, closed, which).holds == ("gate 'smoke': 500 Internal",)
    assert gates.to_call(SPEC, closed, which, START + timedelta(seconds=1)) == []
    assert names(gates.to_call(SPEC, closed, which, START + gates.RETRY)) == ["smoke"]
    opened = gates.recorded(closed, [GateStatus(name="smoke", open=True, message="ok",
                                                time=START + gates.RETRY)])
    assert gates.verdicts(SPEC, opened, which).holds == ()
    assert gates.to_call(SPEC, opened, which, START + timedelta(hours=1)) == []
    assert len(opened.gates) == 1


def test_an_answer_from_an_earlier_revision_does_not_count() -> None:
    which = gates.asked(STEPS, status(), False)
    old = status(gates=[GateStatus(name="smoke", open=True, message="ok",
                                   time=START - timedelta(minutes=1))])
    assert names(gates.to_call(SPEC, old, which, START)) == ["smoke"]
    assert gates.verdicts(SPEC, old, which).holds


def test_a_closed_confirmation_holds_promotion_and_a_rollback_hook_rolls_back() -> None:
    waiting = status(step_index=len(STEPS), weight=80, gates=[
        GateStatus(name="approve", open=False, message="not yet", time=START)])
    which = gates.asked(STEPS, waiting, False)
    assert gates.verdicts(SPEC, waiting, which).promotion_holds == (
        "gate 'approve': not yet",)
    asked = status(step_index=1, weight=5, gates=[
        GateStatus(name="kill-switch", open=True, message="called: 200", time=START),
        GateStatus(name="load", open=True, message="called: 200", time=START)])
    said = gates.verdicts(SPEC, asked, gates.asked(STEPS, asked, True))
    assert said.holds == () and said.rollback_asked is not None
    assert "kill-switch" in said.rollback_asked


def test_post_rollout_is_told_once() -> None:
    done = status(phase="Succeeded", last_transition_time=START)
    which = gates.asked(STEPS, done, False)
    assert names(gates.to_call(SPEC, done, which, START)) == ["tell"]
    told = gates.recorded(done, [GateStatus(name="tell", open=False, message="500",
                                            time=START)])
    assert gates.to_call(SPEC, told, which, START + timedelta(hours=1)) == []
    assert gates.verdicts(SPEC, told, which) == gates.Verdicts()


def test_the_payload_says_where_the_rollout_stands() -> None:
    hook = SPEC.analysis.webhooks[1]
    sent = gates.payload(SPEC, "checkout", "shop", status(step="2/8", weight=5), hook)
    assert sent == {"name": "checkout", "namespace": "shop", "type": "rollout",
                    "target": "checkout", "revision": "r2", "phase": "Progressing",
                    "weight": 5, "step": "2/8", "metadata": {}}


def test_an_open_incident_of_a_blocking_severity_holds_the_first_step() -> None:
    blocking = spec(blockOnIncidents=["P0", "P1"])
    incidents = [
        {"metadata": {"name": "db-down"}, "spec": {"severity": "P1"}},
        {"metadata": {"name": "typo"}, "spec": {"severity": "P3"}},
        {"metadata": {"name": "old"}, "spec": {"severity": "P0", "status": "Resolved"}},
        {"metadata": {"name": "raised"}, "spec": {"severity": "P2"},
         "status": {"severity": "P0"}},
    ]
    assert gates.incident_holds(blocking, status(), incidents) == (
        "P0 Incident 'raised' is open", "P1 Incident 'db-down' is open")
    assert gates.incident_holds(blocking, status(step_index=2, weight=30), incidents) == ()
    assert gates.incident_holds(SPEC, status(), incidents) == ()
    assert not gates.blocks_now(blocking, status(phase="Succeeded"))
