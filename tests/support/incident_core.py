"""Incidents and policies in the core's terms for unit tests, and a reconcile loop without a
cluster: decide, deliver everything (or what a test says), finish."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from runbook_operator.api.common import NotificationRecord
from runbook_operator.api.escalationpolicy import EscalationPolicySpec
from runbook_operator.api.incident import IncidentSpec, IncidentStatus
from runbook_operator.core.incident.decide import (
    Decision,
    Incident,
    PolicyProblem,
    decide,
    finish,
)
from runbook_operator.core.incident.messages import IncidentRef
from runbook_operator.core.incident.notifications import Delivery
from runbook_operator.core.incident.policy import CompiledPolicy, compile_policy

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
SEC = timedelta(seconds=1)
REF = IncidentRef("prod", "checkout", "uid-1")
#: The runbooks' ladder: L1 on-call at once, L2 SRE after 30 min, L3 manager after 1 h, L4 CTO
#: after 2 h; P2/P3 to the team channel only.
RUNBOOK_LEVELS = [
    {"after": "0s", "rotation": "primary", "channels": ["oncall"]},
    {"after": "30m", "channels": ["sre"]},
    {"after": "1h", "channels": ["manager"]},
    {"after": "2h", "channels": ["cto"]},
]
ROTATION = {"name": "primary", "turn": "168h", "start": "2026-02-23T09:00:00Z",
            "members": [{"name": "alice", "channel": "alice-pager"}, {"name": "bob"}]}


def policy(levels: list[dict[str, Any]] | None = None, generation: int = 1,
           **spec: Any) -> CompiledPolicy:
    """A compiled EscalationPolicy `default` (the runbooks' ladder unless `levels`)."""
    body = {"levels": RUNBOOK_LEVELS if levels is None else levels, **spec}
    if levels is None:
        body.setdefault("rotations", [ROTATION])
    return compile_policy("default", generation, EscalationPolicySpec.model_validate(body))


def spec(**fields: Any) -> IncidentSpec:
    return IncidentSpec.model_validate({"title": "Checkout returns 500", "severity": "P1",
                                        "escalationPolicyRef": {"name": "default"}, **fields})


def ack(by: str, when: datetime) -> dict[str, Any]:
    return {"by": by, "at": when.isoformat()}


def delivered(delivery: Delivery, now: datetime, result: str = "delivered"
              ) -> tuple[Delivery, NotificationRecord]:
    return delivery, NotificationRecord(
        time=now, channel=delivery.channel, fingerprint=REF.dedup_key, event=delivery.event,
        severity="high", result=result, attempt=1)


@dataclass
class Run:
    """An incident reconciled again and again, every delivery sent unless `stop_before`
    says otherwise; what it sent, in order."""

    policy: CompiledPolicy | PolicyProblem
    status: IncidentStatus = field(default_factory=IncidentStatus)
    generation: int = 1
    sent: list[tuple[datetime, Delivery]] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    def at(self, now: datetime, incident_spec: IncidentSpec,
           stop_before: Callable[[Delivery], bool] = lambda _: False) -> Decision:
        decision = decide(Incident(REF, self.generation, T0, incident_spec, self.status),
                          self.policy, now)
        outcomes = []
        for delivery in decision.deliveries:
            if stop_before(delivery):
                break
            outcomes.append(delivered(delivery, now))
            self.sent.append((now, delivery))
        self.status, _ = finish(decision, outcomes)
        self.decisions.append(decision)
        return decision

    def channels(self, event: str | None = None) -> list[str]:
        return [d.channel for _, d in self.sent if event is None or d.event == event]

    def steps(self) -> list[int]:
        return [d.step for _, d in self.sent if d.page is not None]


def events(status: IncidentStatus) -> list[str]:
    return [entry.event for entry in status.timeline]


def messages(status: IncidentStatus, event: str) -> list[str]:
    return [entry.message for entry in status.timeline if entry.event == event]


def times(moments: Sequence[int]) -> list[datetime]:
    """T0 plus each of `moments` seconds."""
    return [T0 + n * SEC for n in moments]
