from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runbook_operator.devcluster.runtime.status import (
    Addresses,
    ContainerRecord,
    Running,
    Terminated,
    Waiting,
    pod_phase,
    pod_status,
)

T0 = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=5)


def _record(state, **fields) -> ContainerRecord:
    return ContainerRecord("main", "runbook-operator:0.1.0", state, **fields)


WAITING = _record(Waiting("ContainerCreating"))
RUNNING = _record(Running(T0))
SUCCEEDED = _record(Terminated(0, "Completed", T0, T1))
FAILED = _record(Terminated(1, "Error", T0, T1))
BACKING_OFF = _record(Waiting("CrashLoopBackOff"), last_terminated=FAILED.state)


@pytest.mark.parametrize(("policy", "records", "phase"), [
    ("Never", [WAITING], "Pending"),
    ("Never", [RUNNING, WAITING], "Pending"),
    ("Never", [RUNNING], "Running"),
    ("Never", [RUNNING, SUCCEEDED], "Running"),
    ("Never", [SUCCEEDED], "Succeeded"),
    ("Never", [SUCCEEDED, FAILED], "Failed"),
    ("OnFailure", [FAILED], "Running"),
    ("OnFailure", [SUCCEEDED], "Succeeded"),
    ("Always", [SUCCEEDED], "Running"),
    ("Always", [BACKING_OFF], "Running"),
    ("Never", [], "Pending"),
])
def test_phase_follows_the_kubelet(policy, records, phase) -> None:
    assert pod_phase(policy, records) == phase


def test_a_container_moves_through_its_states() -> None:
    record = WAITING.started(T0)
    assert record.state == Running(T0) and not record.ready
    exited = record.exited(T1, 143, "", signal=None)
    assert exited.state == Terminated(143, "Error", T0, T1)
    waiting = exited.backing_off("back-off 10s")
    assert waiting.state == Waiting("CrashLoopBackOff", "back-off 10s")
    assert waiting.last_terminated == exited.state
    again = waiting.restarted(T1)
    assert (again.restart_count, again.run_id, again.last_terminated) == (1, 1, exited.state)
    assert record.exited(T1, 0, "done").state.reason == "Completed"


POD = {"metadata": {"uid": "u-1"}, "spec": {"restartPolicy": "Never"},
       "status": {"conditions": [{"type": "PodScheduled", "status": "True",
                                  "lastTransitionTime": "2026-05-01T01:59:59Z"}]}}


def test_status_of_a_ready_running_pod() -> None:
    ready = _record(Running(T0), ready=True)
    status = pod_status(POD, [ready], Addresses("10.244.128.1", "127.0.0.1"), T0, T1)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert status["phase"] == "Running"
    assert conditions["Ready"]["status"] == conditions["ContainersReady"]["status"] == "True"
    assert conditions["PodScheduled"]["lastTransitionTime"] == "2026-05-01T01:59:59Z"
    assert status["podIP"] == "10.244.128.1" and status["podIPs"] == [{"ip": "10.244.128.1"}]
    [container] = status["containerStatuses"]
    assert container["state"] == {"running": {"startedAt": "2026-05-01T02:00:00Z"}}
    assert container["ready"] and container["started"]
    assert container["containerID"] == "devcluster://u-1/main/0"


def test_status_of_a_finished_pod_carries_exit_code_reason_and_message() -> None:
    record = _record(Terminated(2, "Error", T0, T1, message='{"ok":false}'))
    status = pod_status(POD, [record], None, T0, T1)
    assert status["phase"] == "Failed"
    terminated = status["containerStatuses"][0]["state"]["terminated"]
    assert terminated == {"exitCode": 2, "reason": "Error", "startedAt": "2026-05-01T02:00:00Z",
                          "finishedAt": "2026-05-01T02:00:05Z", "message": '{"ok":false}'}
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "PodCompleted")
    assert "podIP" not in status


def test_unready_containers_are_named_and_transition_times_are_kept() -> None:
    earlier = {**POD, "status": {"conditions": [
        {"type": "Ready", "status": "False", "lastTransitionTime": "2026-05-01T01:00:00Z"}]}}
    status = pod_status(earlier, [RUNNING], None, T0, T1)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == "2026-05-01T01:00:00Z"
    assert ready["message"] == "containers with unready status: [main]"
    waiting = pod_status(POD, [BACKING_OFF], None, T0, T1)["containerStatuses"][0]
    assert waiting["lastState"]["terminated"]["exitCode"] == 1
    assert waiting["state"] == {"waiting": {"reason": "CrashLoopBackOff"}}
