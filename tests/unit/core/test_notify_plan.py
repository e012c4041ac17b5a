"""core.notify_plan: new / repeat / escalated / resolved per subject and channel, deduplicated
against the records in status, for any kind of subject; the capped log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from runbook_operator.api.common import NotificationRecord
from runbook_operator.core.notify_plan import (
    ChannelRule,
    Due,
    Problem,
    Subject,
    batches,
    next_repeat,
    plan,
    record,
    sent_record,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)
SLACK = ChannelRule("slack", repeat_interval=timedelta(hours=4))
PAGER = ChannelRule("pager", repeat_interval=timedelta(hours=1), send_resolved=False)
CHANNELS = {c.name: c for c in (SLACK, PAGER)}
LIMIT = 200


def problem(since: datetime = T0, fp: str = "fp1", event: str = "firing", step: int = 0,
            channels: tuple[str, ...] = ("slack", "pager"), severity: str = "high") -> Subject:
    return Subject(fp, Problem(event, since, severity, channels, step))


def quiet(fp: str = "fp1") -> Subject:
    return Subject(fp)


def deliver(subjects, log, now, channels=CHANNELS, result="delivered"):
    """Plan and 'send' everything due, as a controller does; return (due, new log)."""
    due = plan(subjects, channels, log, now)
    sent = [sent_record(d, result, now) for d in due]
    return due, record(log, sent, {s.fingerprint for s in subjects}, LIMIT)


def reread(log: list[NotificationRecord]) -> list[NotificationRecord]:
    """The log as a restarted operator reads it back from status."""
    return [NotificationRecord.model_validate(r.to_wire()) for r in log]


def test_a_problem_is_sent_once_per_channel_then_deduplicated() -> None:
    due, log = deliver([problem()], [], T0)
    assert [(d.channel, d.event, d.reason, d.severity) for d in due] == [
        ("slack", "firing", "new", "high"), ("pager", "firing", "new", "high")]
    assert deliver([problem()], log, T0 + MIN)[0] == []


def test_nothing_is_resent_after_a_restart() -> None:
    _, log = deliver([problem()], [], T0)
    assert plan([problem()], CHANNELS, reread(log), T0 + MIN) == []


def test_repeat_interval_per_channel() -> None:
    _, log = deliver([problem()], [], T0)
    due, log = deliver([problem()], log, T0 + timedelta(hours=1))
    assert [(d.channel, d.reason) for d in due] == [("pager", "repeat")]
    due, _ = deliver([problem()], log, T0 + timedelta(hours=4))
    assert sorted((d.channel, d.reason) for d in due) == [("pager", "repeat"), ("slack", "repeat")]



def test_the_next_repeat_is_the_first_channel_due_again() -> None:
    assert next_repeat([problem()], CHANNELS, []) is None  # nothing told yet
    _, log = deliver([problem()], [], T0)
    assert next_repeat([problem()], CHANNELS, log) == T0 + timedelta(hours=1)  # pager first
    assert next_repeat([problem(channels=("slack",))], CHANNELS, log) == T0 + timedelta(hours=4)
    assert next_repeat([quiet()], CHANNELS, log) is None  # no longer a problem
    _, log = deliver([problem()], log, T0 + timedelta(hours=1))
    assert next_repeat([problem()], CHANNELS, log) == T0 + timedelta(hours=2)
    assert plan([problem()], CHANNELS, log, T0 + timedelta(hours=2) - MIN) == []

def test_resolved_follows_a_sent_problem_unless_send_resolved_is_false() -> None:
    _, log = deliver([problem()], [], T0)
    due, log = deliver([quiet()], log, T0 + MIN)
    assert [(d.channel, d.event, d.reason, d.severity) for d in due] == [
        ("slack", "resolved", "resolved", "high")]
    assert deliver([quiet()], log, T0 + 2 * MIN)[0] == []


def test_resolved_goes_only_to_channels_still_known() -> None:
    _, log = deliver([problem()], [], T0)
    assert plan([quiet()], {"pager": PAGER}, log, T0 + MIN) == []


def test_nothing_is_resolved_that_was_never_notified() -> None:
    assert deliver([quiet()], [], T0)[0] == []


def test_a_new_episode_is_sent_even_without_a_resolved_record() -> None:
    _, log = deliver([problem()], [], T0)
    _, log = deliver([quiet()], log, T0 + MIN)  # pager: sendResolved false, record stays
    due, _ = deliver([problem(since=T0 + 2 * MIN)], log, T0 + 2 * MIN)
    assert sorted((d.channel, d.reason) for d in due) == [("pager", "new"), ("slack", "new")]


def test_another_event_is_a_problem_of_its_own() -> None:
    _, log = deliver([problem()], [], T0)
    error = problem(event="error", since=T0 + MIN)
    due, log = deliver([error], log, T0 + MIN)
    assert {(d.channel, d.event, d.reason) for d in due} == {
        ("slack", "error", "new"), ("pager", "error", "new")}
    assert deliver([error], log, T0 + 2 * MIN)[0] == []


def test_a_further_step_is_sent_again_and_reaches_added_channels() -> None:
    _, log = deliver([problem(channels=("slack",))], [], T0)
    escalated = problem(step=1, channels=("slack", "pager"), severity="critical")
    due, log = deliver([escalated], log, T0 + 15 * MIN)
    assert [(d.channel, d.reason, d.level, d.severity) for d in due] == [
        ("slack", "escalated", 1, "critical"), ("pager", "new", 1, "critical")]
    assert deliver([escalated], log, T0 + 16 * MIN)[0] == []
    due, _ = deliver([quiet()], log, T0 + 17 * MIN)
    assert [(d.channel, d.severity, d.level) for d in due] == [("slack", "critical", 0)]


def test_a_failed_delivery_counts_as_sent_until_the_repeat_interval() -> None:
    _, log = deliver([problem(channels=("slack",))], [], T0, result="failed")
    assert log[0].result == "failed"
    assert plan([problem(channels=("slack",))], CHANNELS, log, T0 + MIN) == []


def test_subjects_are_planned_independently() -> None:
    _, log = deliver([problem(fp="a"), problem(fp="b")], [], T0)
    due, _ = deliver([quiet("a"), problem(fp="b")], log, T0 + MIN)
    assert [(d.fingerprint, d.channel, d.event) for d in due] == [("a", "slack", "resolved")]


def test_the_log_keeps_the_newest_record_per_subject_and_channel_for_current_subjects() -> None:
    (due,) = plan([problem(channels=("slack",))], CHANNELS, [], T0)
    old = sent_record(due, "delivered", T0)
    gone = old.model_copy(update={"fingerprint": "gone"})
    newer = old.model_copy(update={"time": T0 + MIN})
    assert record([old, gone], [newer], {"fp1"}, LIMIT) == [newer]


def test_the_log_cap_keeps_problem_records_first() -> None:
    records = [NotificationRecord(fingerprint=f"fp{n}", channel="slack",
                                  event="resolved" if n else "firing", severity="high",
                                  time=T0 + n * MIN, result="delivered") for n in range(3)]
    kept = record([], records, {"fp0", "fp1", "fp2"}, limit=1)
    assert [r.fingerprint for r in kept] == ["fp0"]


# A subject's life as (minutes later, what it is then, whether the operator restarts first):
# quiet, a problem of the current episode (possibly at a further escalation step), or a new one.
moves = st.tuples(st.integers(1, 300), st.sampled_from(["quiet", "same", "step", "new", "error"]),
                  st.booleans())


@settings(max_examples=200, deadline=None)
@given(script=st.lists(moves, max_size=40))
def test_each_episode_is_told_once_per_channel_and_step_and_resolved_only_after_a_problem(
        script) -> None:
    log: list[NotificationRecord] = []
    now, since, step, event, active = T0, T0, 0, "firing", False
    told: set[tuple[str, str, datetime, int]] = set()
    last_event: dict[str, str] = {}
    for minutes, move, restarted in script:
        now += minutes * MIN
        if move == "quiet":
            active = False
        elif move == "same" and active:
            pass
        elif move == "step" and active:
            step += 1
        else:
            active, since, step = True, now, 0
            event = "error" if move == "error" else "firing"
        if restarted:
            log = reread(log)
        subject = problem(since=since, event=event, step=step) if active else quiet()
        due, log = deliver([subject], log, now)
        for d in due:
            if d.reason == "resolved":
                assert not active and last_event.get(d.channel) in ("firing", "error")
            else:
                key = (d.channel, d.event, since, d.level)
                if d.reason == "repeat":
                    assert key in told
                else:
                    assert key not in told and d.level == step
                told.add(key)
            last_event[d.channel] = d.event
        assert plan([subject], CHANNELS, log, now) == []  # once sent, nothing is due again


def test_batches_hold_each_channels_due_items_and_its_other_current_problems() -> None:
    subjects = [problem(fp="fp1"), problem(fp="fp2", channels=("slack",), severity="critical",
                                           step=1), quiet("fp3")]
    due = [Due("fp1", "pager", "firing", "high", 0, "new"),
           Due("fp3", "slack", "resolved", "high", 0, "resolved")]
    (pager, slack) = batches(due, subjects)
    assert (pager.channel, pager.due, pager.along) == ("pager", (due[0],), ())
    assert (slack.channel, slack.due) == ("slack", (due[1],))
    assert slack.along == (Due("fp1", "slack", "firing", "high", 0, "grouped"),
                           Due("fp2", "slack", "firing", "critical", 1, "grouped"))
    assert batches([], subjects) == []


def test_a_group_sent_whole_repeats_as_one_after_repeat_interval() -> None:
    """Recording every alert a group message carried puts them on one repeat clock, as
    Alertmanager's repeat_interval is per group: a second alert firing later does not make
    the group repeat twice per interval."""
    hourly = {"slack": ChannelRule("slack", repeat_interval=timedelta(hours=1))}
    first = [problem(fp="fp1", channels=("slack",))]
    log: list = []
    sent_at = []
    for minute in range(0, 150, 5):
        now = T0 + minute * MIN
        subjects = first + ([problem(since=T0 + 10 * MIN, fp="fp2", channels=("slack",))]
                            if minute >= 10 else [])
        for batch in batches(plan(subjects, hourly, log, now), subjects):
            log = record(log, [sent_record(d, "delivered", now)
                               for d in (*batch.due, *batch.along)], {"fp1", "fp2"}, LIMIT)
            sent_at.append(minute)
    assert sent_at == [0, 10, 70, 130]
