from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from runbook_operator.core.backuppolicy.rpo import _age, evaluate

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RPO = timedelta(hours=25)


def test_met_while_newest_success_is_younger_than_rpo() -> None:
    result = evaluate(RPO, T0, T0 - timedelta(days=3), None, T0 + timedelta(hours=24))
    assert result.met and not result.notify and result.deadline == T0 + RPO
    assert result.message == (
        "RPO 1d1h met until 2026-01-02T01:00:00Z: "
        "the newest good backup finished at 2026-01-01T00:00:00Z"
    )


def test_new_policy_gets_one_rpo_of_grace() -> None:
    assert evaluate(RPO, None, T0, None, T0 + timedelta(hours=1)).met
    late = evaluate(RPO, None, T0, None, T0 + timedelta(hours=26))
    assert not late.met and late.notify
    assert late.message == (
        "RPO 1d1h breached since 2026-01-02T01:00:00Z: "
        "no successful backup since the policy was created at 2026-01-01T00:00:00Z"
    )


def test_breach_notified_once_then_again_after_recovery() -> None:
    first = evaluate(RPO, T0, T0, None, T0 + timedelta(hours=26))
    assert not first.met and first.notify and first.breached_since == T0 + RPO
    notified_at = T0 + timedelta(hours=26)
    later = evaluate(RPO, T0, T0, notified_at, T0 + timedelta(hours=30))
    assert not later.met and not later.notify
    recovered_at = T0 + timedelta(hours=31)
    assert evaluate(RPO, recovered_at, T0, notified_at, recovered_at).met
    next_breach = evaluate(RPO, recovered_at, T0, notified_at, recovered_at + RPO)
    assert not next_breach.met and next_breach.notify


@given(
    st.integers(1, 10_000), st.integers(0, 20_000), st.integers(0, 40_000),
    st.one_of(st.none(), st.integers(0, 40_000)),
)
def test_met_exactly_before_the_deadline_and_notify_only_in_breach(
    rpo_min: int, success_min: int, now_min: int, notified_min: int | None
) -> None:
    rpo = timedelta(minutes=rpo_min)
    success = T0 + timedelta(minutes=success_min)
    now = T0 + timedelta(minutes=now_min)
    notified = None if notified_min is None else T0 + timedelta(minutes=notified_min)
    result = evaluate(rpo, success, T0, notified, now)
    assert result.met == (now - success < rpo)
    if result.met:
        assert not result.notify and result.breached_since is None
    # Notifying marks the breach: evaluating again with that mark never notifies twice.
    if result.notify:
        assert not evaluate(rpo, success, T0, now, now).notify


def test_age_format() -> None:
    assert [_age(timedelta(seconds=s)) for s in (0, 12, 90, 3600, 93784)] == [
        "0s", "12s", "1m30s", "1h", "1d2h"
    ]
