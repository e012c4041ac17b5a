from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from runbook_operator.core.retention import Backup, Rules, plan

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def series(hours: list[int], verified: set[int] = frozenset(),
           restore_tested: set[int] = frozenset()) -> list[Backup]:
    return [
        Backup(key=f"b{h:05d}", time=NOW - timedelta(hours=h), verified=h in verified,
               restore_tested=h in restore_tested)
        for h in hours
    ]


def test_no_rules_keeps_everything() -> None:
    backups = series(list(range(0, 100, 7)))
    result = plan(backups, Rules(), NOW)
    assert result.delete == [] and len(result.keep) == len(backups)


def test_keep_last() -> None:
    result = plan(series([0, 1, 2, 3, 4]), Rules(keep_last=2), NOW)
    assert [b.key for b in result.keep] == ["b00000", "b00001"]
    assert [b.key for b in result.delete] == ["b00002", "b00003", "b00004"]


def test_keep_daily_keeps_newest_of_each_day() -> None:
    # Hourly backups for 5 days: keepDaily 3 keeps the newest of the 3 newest days.
    backups = series(list(range(0, 24 * 5)))
    result = plan(backups, Rules(keep_daily=3), NOW)
    assert [b.time for b in result.keep] == [
        NOW, NOW.replace(hour=23) - timedelta(days=1), NOW.replace(hour=23) - timedelta(days=2)
    ]


def test_nightly_kept_thirty_days() -> None:
    """The runbook: nightly backups kept 30 days (maxAge alone)."""
    backups = series([24 * d for d in range(45)])
    result = plan(backups, Rules(max_age=timedelta(days=30)), NOW)
    assert len(result.keep) == 31 and all(NOW - b.time <= timedelta(days=30) for b in result.keep)


def test_max_age_overrides_rules_but_not_the_newest_verified() -> None:
    backups = series([24 * 40, 24 * 50], verified={24 * 50})
    result = plan(backups, Rules(keep_last=5, max_age=timedelta(days=30)), NOW)
    assert [b.key for b in result.keep] == ["b01200"]
    assert result.reasons["b01200"] == ["newest verified backup"]


def test_the_newest_restore_tested_backup_outlives_the_rules() -> None:
    """Nightly backups, all verified; the restore test last passed on the one from 5 days ago
    (later restore tests failed or did not run): keepLast 2 keeps it as well."""
    days = [24 * d for d in range(8)]
    backups = series(days, verified=set(days), restore_tested={24 * 5, 24 * 7})
    result = plan(backups, Rules(keep_last=2), NOW)
    assert [b.key for b in result.keep] == ["b00000", "b00024", "b00120"]
    assert result.reasons["b00000"] == ["keepLast", "newest verified backup"]
    assert result.reasons["b00120"] == ["newest restore-tested backup"]
    aged = plan(backups, Rules(max_age=timedelta(days=1)), NOW)
    assert [b.key for b in aged.keep] == ["b00000", "b00024", "b00120"]


def test_never_empties_a_non_empty_set() -> None:
    result = plan(series([24 * 90]), Rules(max_age=timedelta(days=1)), NOW)
    assert [b.key for b in result.keep] == ["b02160"] and result.delete == []


def test_weekly_and_monthly_in_the_policy_time_zone() -> None:
    # 23:30 UTC on Sunday 2026-06-14 is already Monday in Berlin: a different ISO week there.
    sunday_late = Backup("sun", datetime(2026, 6, 14, 23, 30, tzinfo=UTC))
    sunday_early = Backup("sun-early", datetime(2026, 6, 14, 8, 0, tzinfo=UTC))
    utc = plan([sunday_late, sunday_early], Rules(keep_weekly=2), NOW, "UTC")
    berlin = plan([sunday_late, sunday_early], Rules(keep_weekly=2), NOW, "Europe/Berlin")
    assert [b.key for b in utc.keep] == ["sun"]
    assert [b.key for b in berlin.keep] == ["sun", "sun-early"]


backup_sets = st.lists(
    st.tuples(st.integers(0, 60 * 24 * 800), st.booleans(), st.booleans()),
    max_size=40,
    unique_by=lambda item: item[0],
).map(lambda items: [Backup(f"k{m}", NOW - timedelta(minutes=m), v, r) for m, v, r in items])

rule_sets = st.builds(
    Rules,
    keep_last=st.integers(0, 5),
    keep_daily=st.integers(0, 8),
    keep_weekly=st.integers(0, 5),
    keep_monthly=st.integers(0, 13),
    keep_yearly=st.integers(0, 3),
    max_age=st.none() | st.integers(1, 400).map(lambda d: timedelta(days=d)),
)


@settings(max_examples=300)
@given(backup_sets, rule_sets, st.sampled_from(["UTC", "Europe/Berlin", "Asia/Kolkata"]))
def test_properties(backups: list[Backup], rules: Rules, zone: str) -> None:
    result = plan(backups, rules, NOW, zone)
    kept = {b.key for b in result.keep}
    # A partition of the input.
    assert kept | {b.key for b in result.delete} == {b.key for b in backups}
    assert not kept & {b.key for b in result.delete}
    # Never removes what a rule keeps (within maxAge).
    for key, why in result.reasons.items():
        assert key in kept and why
    newest_first = sorted(backups, key=lambda b: (b.time, b.key), reverse=True)
    cutoff = NOW - rules.max_age if rules.max_age else None
    for b in newest_first[: rules.keep_last]:
        if cutoff is None or b.time >= cutoff:
            assert b.key in kept
    # The newest verified and the newest restore-tested backups survive; a non-empty set
    # stays non-empty.
    for proven in ([b for b in newest_first if b.verified],
                   [b for b in newest_first if b.restore_tested]):
        if proven:
            assert proven[0].key in kept
    if backups:
        assert kept
    # Idempotent: planning again over what was kept deletes nothing more.
    again = plan(result.keep, rules, NOW, zone)
    assert again.delete == []
