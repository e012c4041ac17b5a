"""core.incident.records: bounded timeline and alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from runbook_operator.api.incident import IncidentAlert, IncidentStatus, TimelineEntry
from runbook_operator.core.incident.records import (
    merged_alerts,
    source_firing_again,
    source_label,
    source_recovered,
    with_timeline,
)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def entry(minute: int) -> TimelineEntry:
    return TimelineEntry(time=T0 + timedelta(minutes=minute), event="NoteAdded",
                         message=f"m{minute}")


def alert(name: str, status: str = "firing") -> IncidentAlert:
    return IncidentAlert(fingerprint=name, status=status, labels={"a": name})


@given(st.lists(st.lists(st.integers(0, 10_000), max_size=8), max_size=12))
def test_the_timeline_keeps_the_newest_in_order_and_counts_all(batches: list[list[int]]) -> None:
    status = IncidentStatus()
    for batch in batches:
        status = with_timeline(status, [entry(m) for m in batch], limit=5)
    everything = sorted(m for batch in batches for m in batch)
    assert status.timeline_total == len(everything)
    assert [e.time for e in status.timeline] == [
        T0 + timedelta(minutes=m) for m in everything[-5:]]


def test_nothing_to_add_leaves_status_alone() -> None:
    status = with_timeline(IncidentStatus(), [entry(1)])
    assert with_timeline(status, []) is status


def test_alerts_merge_by_fingerprint_firing_first_and_count_what_is_left_out() -> None:
    alerts, truncated = merged_alerts([alert("b"), alert("c")],
                                      [alert("b", "resolved"), alert("a")], limit=2)
    assert [(a.fingerprint, a.status) for a in alerts] == [("a", "firing"), ("c", "firing")]
    assert truncated == 1
    assert merged_alerts(alerts, [], truncated_by_sender=7, limit=2)[1] == 7


def test_the_source_label_is_stable_and_fits_a_label_value() -> None:
    value = source_label("AlertRule", "web-5xx", "f" * 64)
    assert value == source_label("AlertRule", "web-5xx", "f" * 64)
    assert len(value) <= 63 and value != source_label("AlertRule", "web-4xx", "f" * 64)


def test_a_recovery_is_recorded_once_and_a_new_firing_clears_it() -> None:
    recovered = source_recovered(IncidentStatus(), T0)
    assert recovered.source_recovered_at == T0
    assert [e.event for e in recovered.timeline] == ["SourceRecovered"]
    assert source_recovered(recovered, T0 + timedelta(minutes=1)) == recovered
    firing = source_firing_again(recovered, T0 + timedelta(minutes=2))
    assert firing.source_recovered_at is None
    assert [e.event for e in firing.timeline] == ["SourceRecovered", "AlertsChanged"]
    assert source_firing_again(firing, T0) == firing
