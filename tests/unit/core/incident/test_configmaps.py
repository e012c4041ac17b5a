"""core.incident.configmaps: the whole timeline as JSON lines (merged without duplicates, within
a ConfigMap's size), the postmortem owned by its Incident unless kept on request, and never
overwritten once people edited it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from runbook_operator.api.incident import TimelineEntry
from runbook_operator.core.incident.configmaps import (
    KEEP_POSTMORTEM_ANNOTATION,
    POSTMORTEM_KEY,
    edited,
    keeps_postmortem,
    merged_timeline,
    ownership_patch,
    parse_timeline,
    postmortem_configmap,
    timeline_configmap,
    timeline_text,
)

from tests.support.incident_core import MIN, REF, T0


def entry(minute: int, message: str = "", event: str = "NoteAdded") -> TimelineEntry:
    return TimelineEntry(time=T0 + minute * MIN, event=event, message=message or f"m{minute}")


@given(st.lists(st.integers(0, 30), max_size=20), st.lists(st.integers(0, 30), max_size=20))
def test_merging_keeps_each_entry_once_in_time_order(stored, recent) -> None:
    merged = merged_timeline([entry(m) for m in stored], [entry(m) for m in recent])
    assert [e.time for e in merged] == sorted(e.time for e in merged)
    assert {e.message for e in merged} == {f"m{m}" for m in [*stored, *recent]}
    assert len(merged) == len(set(stored) | set(recent))


def test_entries_of_one_moment_keep_their_recorded_order() -> None:
    same = [entry(1, "escalated", "Escalated"), entry(1, "acknowledged", "Acknowledged")]
    assert merged_timeline(same[:1], same) == same


def test_the_timeline_round_trips_and_skips_what_it_cannot_read() -> None:
    entries = [entry(1, "ünïcode ✓"), entry(2)]
    body = timeline_configmap(REF, entries)
    assert body["metadata"]["name"] == "checkout-timeline"
    assert body["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    body["data"]["timeline.jsonl"] += "not json\n"
    assert parse_timeline(body) == entries
    assert parse_timeline(None) == []


def test_the_newest_entries_that_fit_are_kept() -> None:
    entries = [entry(m, "x" * 100) for m in range(50)]
    text = timeline_text(entries, limit=1000)
    kept = parse_timeline({"data": {"timeline.jsonl": text}})
    assert len(text.encode()) <= 1000 and kept == entries[-len(kept):] and 0 < len(kept) < 50


def test_a_postmortem_is_owned_unless_kept_and_knows_when_it_was_edited() -> None:
    owned = postmortem_configmap(REF, "# Postmortem", keep=False)
    kept = postmortem_configmap(REF, "# Postmortem", keep=True)
    assert owned["metadata"]["ownerReferences"][0]["kind"] == "Incident"
    assert "ownerReferences" not in kept["metadata"]
    assert not edited(owned)
    owned["data"][POSTMORTEM_KEY] += "\nRoot cause: a typo."
    assert edited(owned)
    assert keeps_postmortem({KEEP_POSTMORTEM_ANNOTATION: "True"})
    assert not keeps_postmortem({KEEP_POSTMORTEM_ANNOTATION: "no"}) and not keeps_postmortem(None)


def test_ownership_follows_the_annotation_and_leaves_other_owners() -> None:
    other = {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "other"}
    owned = postmortem_configmap(REF, "t", keep=False)
    owned["metadata"]["ownerReferences"].append(other)
    assert ownership_patch(owned, REF, keep=True) == {"metadata": {"ownerReferences": [other]}}
    assert ownership_patch(owned, REF, keep=False) is None
    kept = postmortem_configmap(REF, "t", keep=True)
    assert ownership_patch(kept, REF, keep=True) is None
    patch = ownership_patch(kept, REF, keep=False)
    assert [o["uid"] for o in patch["metadata"]["ownerReferences"]] == ["uid-1"]
    alone = postmortem_configmap(REF, "t", keep=False)
    assert ownership_patch(alone, REF, keep=True) == {"metadata": {"ownerReferences": None}}
