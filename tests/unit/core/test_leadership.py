"""core.leadership: who may hold the Lease, judged on the observer's own clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from runbook_operator.core.leadership import (
    Move,
    Observed,
    Record,
    Timing,
    claimed,
    next_move,
    observe,
    released,
    renews_unread,
    still_leading,
)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
OTHER = Record("other", 15, acquired=T0, renewed=T0, transitions=3)


def test_client_go_proportions() -> None:
    assert Timing.for_lease(15) == Timing(15, 10, 2)


def test_no_lease_is_created() -> None:
    assert next_move(None, "me", 0.0) is Move.CREATE


@given(seen=st.integers(0, 10**6), after=st.integers(0, 1000))
def test_someone_elses_lease_is_taken_only_once_it_expired_on_our_clock(
        seen: int, after: int) -> None:
    observed = Observed(OTHER, "7", seen)
    expected = Move.TAKE if after >= OTHER.lease_seconds else Move.WAIT
    assert next_move(observed, "me", seen + after) is expected


@given(after=st.floats(0, 1e3))
def test_our_own_lease_is_renewed_and_a_free_one_taken_at_once(after: float) -> None:
    assert next_move(Observed(claimed(OTHER, "me", 15, T0), "7", 0), "me", after) is Move.RENEW
    assert next_move(Observed(released(OTHER), "7", 0), "me", after) is Move.TAKE


def test_rereading_an_unchanged_record_does_not_restart_its_expiry() -> None:
    first = observe(None, OTHER, "7", 100.0)
    again = observe(first, OTHER, "8", 110.0)
    assert (again.since, again.resource_version) == (100.0, "8")
    renewed = observe(again, claimed(OTHER, "other", 15, T0 + timedelta(seconds=2)), "9", 112.0)
    assert renewed.since == 112.0


def test_a_renewal_keeps_the_acquire_time_and_a_new_holder_counts_a_transition() -> None:
    later = T0 + timedelta(seconds=5)
    renewal = claimed(OTHER, "other", 15, later)
    assert (renewal.acquired, renewal.renewed, renewal.transitions) == (T0, later, 3)
    taken = claimed(OTHER, "me", 15, later)
    assert taken == Record("me", 15, acquired=later, renewed=later, transitions=4)
    assert claimed(None, "me", 15, later).transitions == 0


def test_a_release_frees_the_lease() -> None:
    assert released(OTHER).holder is None


@given(since=st.integers(0, 10**6), elapsed=st.integers(0, 100))
def test_a_leader_stops_before_the_lease_can_expire_elsewhere(since: int,
                                                             elapsed: int) -> None:
    timing = Timing.for_lease(15)
    leading = still_leading(since, since + elapsed, timing)
    assert leading == (elapsed < timing.renew_deadline_seconds)
    if leading:
        assert elapsed < timing.lease_seconds


@given(st.floats(min_value=0, max_value=100, allow_nan=False))
def test_a_holder_renews_without_reading_only_while_its_last_look_says_it_holds(
        after: float) -> None:
    ours = Observed(Record("me", 15, acquired=T0, renewed=T0), "7", since=100.0)
    assert renews_unread(ours, "me", 100.0 + after) == (after < 15)
    assert not renews_unread(Observed(OTHER, "7", since=100.0), "me", 100.0 + after)
    assert not renews_unread(None, "me", 100.0 + after)
