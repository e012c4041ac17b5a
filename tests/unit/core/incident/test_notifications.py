"""core.incident.notifications: who hears what now, deduplicated against the records in status
(a restart repeats nothing), nothing that pages after an acknowledgement or resolution."""

from __future__ import annotations

from datetime import datetime

from runbook_operator.api.common import NotificationRecord
from runbook_operator.core.incident.escalate import Page
from runbook_operator.core.incident.notifications import plan
from runbook_operator.core.incident.policy import Route

from tests.support.incident_core import MIN, REF, T0

KEY = REF.dedup_key
CLIMB = Route(channels=(), escalate=True)


def page(step: int, *channels: str, started: datetime = T0) -> Page:
    return Page(step=step, level=step, loop=0, levels=4, channels=channels, rotation=None,
                on_call=None, due_at=started, climb_started_at=started)


def sent(channel: str, event: str, level: int, when: datetime = T0,
         key: str = KEY) -> NotificationRecord:
    return NotificationRecord(time=when, channel=channel, fingerprint=key, event=event,
                              severity="high", level=level, result="delivered")


def test_each_page_goes_to_its_channels_first_as_opened_then_escalated() -> None:
    due = plan(KEY, [], [page(1, "a", "b"), page(2, "c")], CLIMB, False, False)
    assert [(d.channel, d.event, d.step) for d in due] == [
        ("a", "opened", 1), ("b", "opened", 1), ("c", "escalated", 2)]


def test_a_channel_paged_for_a_step_before_a_restart_is_not_paged_again() -> None:
    log = [sent("a", "escalated", 2, T0 + MIN)]
    due = plan(KEY, log, [page(2, "a", "b", started=T0)], CLIMB, False, False)
    assert [d.channel for d in due] == ["b"]
    # ... unless that was in an earlier climb (before a re-trigger) or for an earlier step.
    assert [d.channel for d in plan(KEY, log, [page(2, "a", started=T0 + 2 * MIN)], CLIMB,
                                    False, False)] == ["a"]
    assert [d.channel for d in plan(KEY, log, [page(3, "a")], CLIMB, False, False)] == ["a"]


def test_a_channel_on_several_steps_due_at_once_gets_the_highest() -> None:
    due = plan(KEY, [], [page(1, "a"), page(2, "a", "b")], CLIMB, False, False)
    assert [(d.channel, d.step) for d in due] == [("a", 2), ("b", 2)]


def test_route_channels_hear_once_that_it_opened_unless_paged_anyway() -> None:
    route = Route(channels=("team", "a"), escalate=True)
    due = plan(KEY, [], [page(1, "a")], route, False, False)
    assert [(d.channel, d.event, d.step) for d in due] == [("a", "opened", 1),
                                                            ("team", "opened", 0)]
    assert plan(KEY, [sent("team", "opened", 0), sent("a", "opened", 1)], [], route, False,
                False) == []


def test_the_acknowledgement_goes_to_channels_whose_last_word_was_a_page() -> None:
    log = [sent("a", "opened", 1), sent("b", "escalated", 2), sent("c", "resolved", 0),
           sent("d", "acknowledged", 1), sent("x", "opened", 1, key="another-incident")]
    due = plan(KEY, log, [page(3, "e")], CLIMB, True, False)
    assert [(d.channel, d.event, d.step) for d in due] == [
        ("a", "acknowledged", 1), ("b", "acknowledged", 2)]


def test_the_resolution_goes_to_every_channel_told_anything_and_nothing_pages() -> None:
    log = [sent("a", "opened", 1), sent("b", "acknowledged", 2), sent("c", "resolved", 0)]
    due = plan(KEY, log, [page(2, "e")], Route(("team",), False), True, True)
    assert [(d.channel, d.event) for d in due] == [("a", "resolved"), ("b", "resolved")]
    assert plan(KEY, [], [], CLIMB, False, True) == []
