"""core.incident.messages: every page names the incident, level, severity, who is on call and
the commands; one dedup key per incident (a new incident of the same name gets another)."""

from __future__ import annotations

from datetime import timedelta

from runbook_operator.core.incident.escalate import Page
from runbook_operator.core.incident.messages import SEVERITIES, IncidentRef, notification_for
from runbook_operator.core.incident.notifications import Delivery
from runbook_operator.core.incident.policy import Member, OnCall

from tests.support.incident_core import MIN, REF, T0, Run, policy, spec

ON_CALL = OnCall("primary", Member("alice", "alice-pager"), T0 + timedelta(days=1))


def page(step: int = 2, loop: int = 0, on_call: OnCall | None = ON_CALL,
         rotation: str | None = "primary") -> Page:
    return Page(step=step, level=2, loop=loop, levels=4, channels=("sre",), rotation=rotation,
                on_call=on_call, due_at=T0, climb_started_at=T0)


def status():
    run = Run(policy())
    run.at(T0, spec(commander="carol", impact={"summary": "No orders."}))
    return run.status


def test_a_page_names_incident_level_severity_on_call_and_commands() -> None:
    message = notification_for(REF, spec(commander="carol", impact={"summary": "No orders."}),
                               status(), Delivery("sre", "escalated", 2, page()), T0 + MIN)
    assert message.title == "[P1] Checkout returns 500"
    assert message.severity == "high" and message.event == "escalated"
    assert message.details == {
        "incident": "prod/checkout", "incident severity": "P1", "status": "Open",
        "level": "L2 of 4 (step 2)",
        "on call": "alice (rotation primary, until 2026-03-02T12:00:00Z)",
        "commander": "carol",
        "acknowledge": "kubectl runbook incident ack checkout -n prod",
        "resolve": "kubectl runbook incident resolve checkout -n prod",
        "impact": "No orders.",
    }
    assert message.summary == (
        "Incident prod/checkout escalated at L2, on call: alice (rotation primary, until "
        "2026-03-02T12:00:00Z). Acknowledge: kubectl runbook incident ack checkout -n prod")
    assert message.source.kind == "Incident" and message.started_at == T0


def test_repeats_and_rotations_without_anyone_on_call_are_named() -> None:
    repeated = notification_for(REF, spec(), status(),
                                Delivery("sre", "escalated", 6, page(6, 1, None)), T0)
    assert repeated.details["level"] == "L2 of 4 (step 6, pass 2)"
    assert repeated.details["on call"] == "nobody yet (rotation primary has not started)"
    plain = notification_for(REF, spec(), status(),
                             Delivery("sre", "escalated", 2, page(rotation=None)), T0)
    assert "on call" not in plain.details


def test_acknowledged_and_resolved_say_so_without_asking_to_acknowledge() -> None:
    acked = notification_for(REF, spec(), status(), Delivery("sre", "acknowledged", 2), T0)
    assert "acknowledge" not in acked.details and acked.details["resolve"]
    assert acked.summary == "Incident prod/checkout acknowledged."
    resolved = notification_for(REF, spec(), status(), Delivery("sre", "resolved", 0), T0)
    assert "resolve" not in resolved.details and resolved.phase == "clear"


def test_one_dedup_key_per_incident() -> None:
    assert REF.dedup_key == IncidentRef("prod", "checkout", "uid-1").dedup_key
    assert REF.dedup_key != IncidentRef("prod", "checkout", "uid-2").dedup_key
    assert len(REF.dedup_key) == 64


def test_severities_map_to_what_channels_know() -> None:
    assert SEVERITIES == {"P0": "critical", "P1": "high", "P2": "medium", "P3": "low"}
