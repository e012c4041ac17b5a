"""Pod status as a kubelet reports it, from what the runtime knows about each container.

Pure: the shell keeps one :class:`ContainerRecord` per container and calls :func:`pod_status`
after every change; the phase follows the kubelet's ``getPhase`` and conditions keep their
``lastTransitionTime`` while their status does not change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any


def rfc3339(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Waiting:
    reason: str
    message: str = ""


@dataclass(frozen=True)
class Running:
    started_at: datetime


@dataclass(frozen=True)
class Terminated:
    exit_code: int
    reason: str
    started_at: datetime
    finished_at: datetime
    message: str = ""
    signal: int | None = None


State = Waiting | Running | Terminated


@dataclass(frozen=True)
class ContainerRecord:
    """One container as the runtime sees it; ``run_id`` counts its processes (IDs, logs)."""

    name: str
    image: str
    state: State
    last_terminated: Terminated | None = None
    restart_count: int = 0
    ready: bool = False
    run_id: int = 0

    def started(self, at: datetime) -> ContainerRecord:
        return replace(self, state=Running(at), ready=False)

    def exited(self, at: datetime, exit_code: int, message: str,
               signal: int | None = None) -> ContainerRecord:
        """The process ended: ``Completed`` for 0, else ``Error`` (the kubelet's reasons)."""
        assert isinstance(self.state, Running)
        reason = "Completed" if exit_code == 0 else "Error"
        return replace(self, ready=False, state=Terminated(
            exit_code, reason, self.state.started_at, at, message, signal))

    def backing_off(self, message: str) -> ContainerRecord:
        """Waiting for its restart: the last run becomes ``lastState``."""
        assert isinstance(self.state, Terminated)
        return replace(self, state=Waiting("CrashLoopBackOff", message),
                       last_terminated=self.state, ready=False)

    def restarted(self, at: datetime) -> ContainerRecord:
        last = self.state if isinstance(self.state, Terminated) else self.last_terminated
        return replace(self, state=Running(at), last_terminated=last, ready=False,
                       restart_count=self.restart_count + 1, run_id=self.run_id + 1)


def pod_phase(restart_policy: str, records: Sequence[ContainerRecord]) -> str:
    """The kubelet's getPhase for regular containers."""
    waiting = running = stopped = succeeded = 0
    for record in records:
        state = record.state
        if isinstance(state, Running):
            running += 1
        elif isinstance(state, Terminated):
            stopped += 1
            succeeded += state.exit_code == 0
        elif record.last_terminated is not None:
            stopped += 1
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped == len(records) and records:
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if restart_policy == "Never" else "Running"
    return "Pending"


def _state(state: State) -> dict[str, Any]:
    if isinstance(state, Waiting):
        body = {"reason": state.reason}
        return {"waiting": body | ({"message": state.message} if state.message else {})}
    if isinstance(state, Running):
        return {"running": {"startedAt": rfc3339(state.started_at)}}
    terminated: dict[str, Any] = {
        "exitCode": state.exit_code, "reason": state.reason,
        "startedAt": rfc3339(state.started_at), "finishedAt": rfc3339(state.finished_at),
    }
    if state.message:
        terminated["message"] = state.message
    if state.signal is not None:
        terminated["signal"] = state.signal
    return {"terminated": terminated}


def container_status(record: ContainerRecord, pod_uid: str) -> dict[str, Any]:
    status: dict[str, Any] = {
        "name": record.name,
        "image": record.image,
        "imageID": f"devcluster://{record.image}",
        "ready": record.ready,
        "started": isinstance(record.state, Running),
        "restartCount": record.restart_count,
        "state": _state(record.state),
        "lastState": _state(record.last_terminated) if record.last_terminated else {},
    }
    if not isinstance(record.state, Waiting) or record.last_terminated is not None:
        status["containerID"] = f"devcluster://{pod_uid}/{record.name}/{record.run_id}"
    return status


def _condition(
    previous: Mapping[str, Mapping[str, Any]], type_: str, ok: bool, now: datetime,
    reason: str = "", message: str = "",
) -> dict[str, Any]:
    status = "True" if ok else "False"
    before = previous.get(type_) or {}
    since = before.get("lastTransitionTime") if before.get("status") == status else None
    condition = {"type": type_, "status": status, "lastProbeTime": None,
                 "lastTransitionTime": since or rfc3339(now)}
    if not ok and reason:
        condition |= {"reason": reason, "message": message}
    return condition


@dataclass(frozen=True)
class Addresses:
    pod_ip: str
    host_ip: str


def pod_status(
    pod: Mapping[str, Any], records: Sequence[ContainerRecord], addresses: Addresses | None,
    started_at: datetime, now: datetime,
) -> dict[str, Any]:
    """The whole status the runtime owns (the scheduler's PodScheduled condition is kept)."""
    spec = pod["spec"]
    phase = pod_phase(spec.get("restartPolicy", "Always"), records)
    previous = {c["type"]: c for c in (pod.get("status") or {}).get("conditions") or []}
    terminal = phase in ("Succeeded", "Failed")
    unready = [r.name for r in records if not r.ready]
    reason = "PodCompleted" if terminal else "ContainersNotReady"
    message = "" if terminal else f"containers with unready status: [{' '.join(unready)}]"
    conditions = [
        _condition(previous, "PodReadyToStartContainers", not terminal, now),
        _condition(previous, "Initialized", True, now),
        _condition(previous, "Ready", not unready, now, reason, message),
        _condition(previous, "ContainersReady", not unready, now, reason, message),
    ]
    if "PodScheduled" in previous:
        conditions.append(dict(previous["PodScheduled"]))
    uid = pod["metadata"]["uid"]
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions,
        "containerStatuses": [container_status(r, uid) for r in records],
        "startTime": rfc3339(started_at),
    }
    if addresses is not None:
        status |= {"podIP": addresses.pod_ip, "podIPs": [{"ip": addresses.pod_ip}],
                   "hostIP": addresses.host_ip, "hostIPs": [{"ip": addresses.host_ip}]}
    return status
