"""The client-side rate limit of the operator's API calls (a token bucket on a fake clock)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runbook_operator.integrations.kubernetes import (
    ThrottledApiClient,
    TokenBucket,
    api_client,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_goes_at_once_and_the_next_request_waits_one_refill() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=20, burst=30, clock=clock)
    assert [bucket.reserve() for _ in range(30)] == [0.0] * 30
    assert bucket.reserve() == pytest.approx(1 / 20)
    assert bucket.reserve() == pytest.approx(2 / 20)


def test_requests_beyond_the_burst_are_spaced_at_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=1, clock=clock)
    delays = [bucket.reserve() for _ in range(5)]
    assert delays == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def test_time_refills_the_bucket_but_never_beyond_the_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    for _ in range(5):
        bucket.reserve()
    clock.now += 0.35
    assert [bucket.reserve() for _ in range(3)] == [0.0] * 3
    assert bucket.reserve() == pytest.approx(0.05)
    clock.now += 3600
    assert [bucket.reserve() for _ in range(5)] == [0.0] * 5
    assert bucket.reserve() == pytest.approx(0.1)


def test_a_clock_going_back_adds_no_tokens() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=1, clock=clock)
    bucket.reserve()
    clock.now -= 50
    assert bucket.reserve() == pytest.approx(0.1)


@given(rate=st.floats(0.5, 1000), burst=st.integers(1, 200),
       gaps=st.lists(st.floats(0, 2), min_size=1, max_size=300))
def test_no_window_admits_more_than_the_burst_plus_the_rate_times_its_length(
        rate: float, burst: int, gaps: list[float]) -> None:
    """Whatever the arrivals, the requests let through by time t (arrival plus delay) from
    the start never exceed burst + rate * t: the limit client-go's bucket promises."""
    clock = Clock()
    start = clock.now
    bucket = TokenBucket(rate=rate, burst=burst, clock=clock)
    released = []
    for gap in gaps:
        clock.now += gap
        released.append(clock.now + bucket.reserve())
    for count, at in enumerate(sorted(released), start=1):
        assert count <= burst + rate * (at - start) + 1e-6


@pytest.mark.parametrize(("rate", "burst"), [(0, 10), (-1, 10), (10, 0)])
def test_a_bucket_that_could_never_admit_is_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst)


def test_qps_zero_means_no_limit() -> None:
    assert not isinstance(api_client(0, 10), ThrottledApiClient)
    limited = api_client(25, 40)
    assert isinstance(limited, ThrottledApiClient)
    assert (limited.bucket.rate, limited.bucket.burst) == (25, 40)
