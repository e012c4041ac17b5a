"""core.incident.postmortem: the runbooks' template filled from the incident and its whole
timeline, placeholders where people write, tables that a `|` in a note cannot break."""

from __future__ import annotations

import pytest
from runbook_operator.api.incident import IncidentStatus, TimelineEntry
from runbook_operator.core.incident.postmortem import cell, duration, render_postmortem

from tests.support.incident_core import MIN, REF, T0, Run, ack, policy, spec

FULL = spec(description="Card payments fail since the 14:00 deploy.", commander="carol",
            impact={"services": ["payments", "checkout"], "usersAffected": 5000,
                    "summary": "No card payment succeeds."},
            source={"kind": "AlertRule", "name": "payment-errors"},
            acknowledgement=ack("alice", T0 + 4 * MIN),
            notes=[{"at": (T0 + 10 * MIN).isoformat(), "by": "alice",
                    "text": "rolled back | recovering"}],
            status="Resolved")


def resolved() -> tuple[IncidentStatus, list[TimelineEntry]]:
    run = Run(policy())
    run.at(T0, spec())
    run.at(T0 + 5 * MIN, FULL.model_copy(update={"status": "Open"}))
    run.at(T0 + 62 * MIN, FULL)
    return run.status, run.status.timeline


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "-"), (0, "0s"), (59.6, "1m"), (61, "1m 1s"), (3600, "1h"), (3725, "1h 2m 5s"),
    (90061, "1d 1h 1m 1s")])
def test_durations_read_like_people_write_them(seconds, text) -> None:
    assert duration(seconds) == text


def test_a_resolved_incident_fills_every_section() -> None:
    status, timeline = resolved()
    text = render_postmortem(REF, FULL, status, timeline, "default")
    assert text.startswith("# Postmortem: Checkout returns 500\n")
    for line in ("| Incident | `prod/checkout` |", "| Severity | P1 |",
                 "| Opened | 2026-03-01T12:00:00Z |",
                 "| Acknowledged | 2026-03-01T12:04:00Z by alice |",
                 "| Resolved | 2026-03-01T13:02:00Z |", "| Commander | carol |",
                 "| Source | AlertRule payment-errors |",
                 "Card payments fail since the 14:00 deploy.",
                 "- Services: payments, checkout", "- Users affected: 5000",
                 "- No card payment succeeds.",
                 "- Time to acknowledge (MTTA): 4m", "- Time to resolve (MTTR): 1h 2m",
                 "- Escalation: EscalationPolicy default: reached L1 (step 1)",
                 "| 2026-03-01T12:10:00Z | NoteAdded | alice | rolled back \\| recovering |",
                 "## Root cause", "| _To be written_ | | | |", "### Where we got lucky"):
        assert line in text, line
    rows = [line.split(" | ")[1] for line in text.splitlines() if line.startswith("| 2026")]
    assert rows[0] == "Opened" and rows[-3:] == ["Resolved", "Notified", "Notified"]
    assert len(rows) == len(timeline)


def test_what_nobody_wrote_is_a_placeholder() -> None:
    run = Run(policy())
    run.at(T0, spec(status="Resolved"))
    text = render_postmortem(REF, spec(status="Resolved"), run.status, run.status.timeline,
                             None)
    assert "_To be written: what happened, in two or three sentences._" in text
    assert "_To be written: who and what was affected, and for how long._" in text
    assert "- Time to acknowledge (MTTA): not acknowledged" in text
    assert "- Escalation: no EscalationPolicy: nobody was paged" in text


def test_cells_keep_one_line_and_their_pipes() -> None:
    assert cell("a | b\nc") == "a \\| b c"
