"""Which backups to keep: grandfather-father-son rules plus a maximum age, as a pure function.

Rules (as in restic and K8up): `keepLast` keeps the newest N; `keepDaily`/`Weekly`/`Monthly`/
`Yearly` keep the newest backup of each of the newest N days/ISO weeks/months/years that have
one, counted in the policy's time zone. `maxAge` removes anything older, even what a rule
selected. Three safety nets always hold: the newest verified backup and the newest
restore-tested backup are never deleted (Velero #9061: the last backup known to restore must
outlive the rules), and a non-empty set never becomes empty. With no rule at all, everything is
kept.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Backup:
    """`verified`: passed its post-backup verification; `restore_tested`: a restore of it
    succeeded."""

    key: str
    time: datetime
    verified: bool = False
    restore_tested: bool = False


@dataclass(frozen=True)
class Rules:
    keep_last: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    max_age: timedelta | None = None

    def any(self) -> bool:
        counts = (self.keep_last, self.keep_daily, self.keep_weekly, self.keep_monthly,
                  self.keep_yearly)
        return any(counts) or self.max_age is not None


@dataclass(frozen=True)
class Plan:
    keep: list[Backup]
    delete: list[Backup]
    reasons: dict[str, list[str]] = field(default_factory=dict)


def _buckets(zone: ZoneInfo) -> dict[str, Callable[[datetime], Hashable]]:
    def local(t: datetime) -> datetime:
        return t.astimezone(zone)

    return {
        "daily": lambda t: local(t).date(),
        "weekly": lambda t: local(t).isocalendar()[:2],
        "monthly": lambda t: (local(t).year, local(t).month),
        "yearly": lambda t: local(t).year,
    }


def _newest_per_bucket(
    newest_first: Sequence[Backup], bucket: Callable[[datetime], Hashable], count: int
) -> list[Backup]:
    chosen: list[Backup] = []
    seen: set[Hashable] = set()
    for backup in newest_first:
        if len(chosen) == count:
            break
        key = bucket(backup.time)
        if key not in seen:
            seen.add(key)
            chosen.append(backup)
    return chosen


def plan(backups: Sequence[Backup], rules: Rules, now: datetime, zone: str = "UTC") -> Plan:
    """Split `backups` into what to keep and what to delete, with the reasons for keeping."""
    newest_first = sorted(backups, key=lambda b: (b.time, b.key), reverse=True)
    if not rules.any():
        kept_all = {b.key: ["no retention rules"] for b in newest_first}
        return Plan(keep=newest_first, delete=[], reasons=kept_all)
    reasons: dict[str, list[str]] = {}

    def mark(items: Sequence[Backup], why: str) -> None:
        for item in items:
            reasons.setdefault(item.key, []).append(why)

    counts = {"daily": rules.keep_daily, "weekly": rules.keep_weekly,
              "monthly": rules.keep_monthly, "yearly": rules.keep_yearly}
    has_count_rule = rules.keep_last > 0 or any(counts.values())
    if rules.keep_last:
        mark(newest_first[: rules.keep_last], "keepLast")
    for name, bucket in _buckets(ZoneInfo(zone)).items():
        if counts[name]:
            mark(_newest_per_bucket(newest_first, bucket, counts[name]), f"keep{name.capitalize()}")
    if rules.max_age is not None:
        cutoff = now - rules.max_age
        if not has_count_rule:
            mark([b for b in newest_first if b.time >= cutoff], "maxAge")
        times = {b.key: b.time for b in newest_first}
        reasons = {k: v for k, v in reasons.items() if times[k] >= cutoff}
    mark([b for b in newest_first if b.verified][:1], "newest verified backup")
    mark([b for b in newest_first if b.restore_tested][:1], "newest restore-tested backup")
    if newest_first and not reasons:
        reasons[newest_first[0].key] = ["never delete every backup"]
    keep = [b for b in newest_first if b.key in reasons]
    delete = [b for b in newest_first if b.key not in reasons]
    return Plan(keep=keep, delete=delete, reasons=reasons)

