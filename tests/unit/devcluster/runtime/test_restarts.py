from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runbook_operator.devcluster.runtime.restarts import (
    BACKOFF_RESET,
    INITIAL_BACKOFF,
    MAX_BACKOFF,
    backoff_message,
    next_backoff,
    should_restart,
)


@pytest.mark.parametrize(("policy", "code", "restart"), [
    ("Always", 0, True), ("Always", 1, True), ("OnFailure", 0, False), ("OnFailure", 2, True),
    ("Never", 0, False), ("Never", 137, False),
])
def test_restart_policy(policy: str, code: int, restart: bool) -> None:
    assert should_restart(policy, code) is restart


def test_back_off_doubles_from_ten_seconds_up_to_five_minutes() -> None:
    delays = []
    delay = None
    for _ in range(8):
        delay = next_backoff(delay, timedelta(seconds=1))
        delays.append(int(delay.total_seconds()))
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300]


@given(st.integers(min_value=1, max_value=10_000), st.integers(min_value=0, max_value=7200))
def test_back_off_stays_within_bounds_and_resets_after_a_long_run(previous: int, ran: int) -> None:
    delay = next_backoff(timedelta(seconds=previous), timedelta(seconds=ran))
    assert INITIAL_BACKOFF <= delay <= MAX_BACKOFF
    if timedelta(seconds=ran) >= BACKOFF_RESET:
        assert delay == INITIAL_BACKOFF


def test_back_off_message_names_the_container_as_the_kubelet_does() -> None:
    assert backoff_message(timedelta(seconds=20), "main", "web-1", "shop", "u-1") == (
        "back-off 20s restarting failed container=main pod=web-1_shop(u-1)")
