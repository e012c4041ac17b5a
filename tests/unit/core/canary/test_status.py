from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from runbook_operator.api.canaryrollout import RouterStatus
from runbook_operator.core.canary.status import confirmed_at

TICK = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
READ = TICK + timedelta(milliseconds=340)
EARLIER = TICK - timedelta(minutes=3)


def router(weight: int, confirmed: datetime | None = EARLIER) -> RouterStatus:
    return RouterStatus(weight=weight, verified="Yes" if confirmed else "Unknown", time=TICK,
                        confirmed_at=confirmed)


def test_a_weight_first_read_back_is_confirmed_at_the_read_backs_time_not_the_ticks() -> None:
    assert confirmed_at(None, 0, "Yes", READ) == READ
    assert confirmed_at(router(5), 0, "Yes", READ) == READ


def test_a_weight_still_carried_keeps_its_first_confirmation() -> None:
    assert confirmed_at(router(0), 0, "Yes", READ) == EARLIER


def test_a_weight_confirmed_after_answers_that_could_not_tell_is_confirmed_then() -> None:
    assert confirmed_at(router(0, confirmed=None), 0, "Yes", READ) == READ


@given(st.integers(0, 100), st.integers(0, 100), st.sampled_from(["No", "Unknown"]))
def test_a_weight_not_read_back_has_no_confirmation(previous: int, weight: int,
                                                    verified: str) -> None:
    assert confirmed_at(router(previous), weight, verified, READ) is None
