"""Alerts as Alertmanager groups and sends them (webhook payload v4), as pure data and rules:
which labels win, an alert's fingerprint, the order of a group's alerts, its status, common
labels and annotations, and its group key.

Kinds build an `AlertGroup` per channel (AlertRule in `core.alertrule.messages`); the generic
webhook renders it (`integrations.notifiers.webhook`). Each rule below is Alertmanager's or
Prometheus' own, so a receiver written for Alertmanager cannot tell the operator's message
from Alertmanager's (README.md lists what still differs and why).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from runbook_operator.core.delivery import fingerprint as dedup_fingerprint

EXPORTED_PREFIX = "exported_"
#: Alertmanager's alert order looks at these labels first (`types.AlertSlice`).
_ORDER_FIRST = ("job", "instance")
_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_SEPARATOR = 0xFF
_GO_ESCAPES = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n",
               "\r": "\\r", "\t": "\\t", "\v": "\\v"}
_REGEXP_SPECIAL = set("\\.+*?()|[]{}^$")

AlertStatus = Literal["firing", "resolved"]


def overlay_labels(own: Mapping[str, str], winners: Mapping[str, str]) -> dict[str, str]:
    """`winners` over `own`, with nothing lost: an own label that a winner replaces with a
    different value is kept as `exported_<name>` (`exported_exported_<name>` when that is
    taken too, and so on), as Prometheus keeps a scraped series' clashing labels when
    `honor_labels` is false."""
    merged = {**own, **winners}
    clashes = sorted((k for k in own if k in winners and own[k] != winners[k]),
                     key=lambda k: (len(k), k))
    for name in clashes:
        copy = EXPORTED_PREFIX + name
        while copy in merged:
            copy = EXPORTED_PREFIX + copy
        merged[copy] = own[name]
    return merged


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint of a label set (prometheus/common `LabelSet.Fingerprint`):
    FNV-1a 64 over the names and values in name order, each followed by 0xff, as 16 hex
    digits."""
    value = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in (*part.encode(), _SEPARATOR):
                value = ((value ^ byte) * _FNV_PRIME) % 2**64
    return f"{value:016x}"


def go_quote(text: str) -> str:
    """A string as Go's `%q` prints it: escapes for quotes, backslashes and characters that
    are not printable; printable Unicode stays as it is (unlike JSON's `\\uXXXX`)."""
    out = []
    for char in text:
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def label_set(labels: Mapping[str, str]) -> str:
    """`{a="1", b="2"}`, as prometheus/common's `LabelSet.String`."""
    return "{" + ", ".join(sorted(f"{k}={go_quote(v)}" for k, v in labels.items())) + "}"


def group_key(group_labels: Mapping[str, str], route: str = "{}") -> str:
    """Alertmanager's group key: the route's key (`{}` for the root route), then the group's
    labels."""
    return f"{route}:{label_set(group_labels)}"


def quote_meta(text: str) -> str:
    """Go's `regexp.QuoteMeta`, which Alertmanager applies to the receiver's name."""
    return "".join("\\" + c if c in _REGEXP_SPECIAL else c for c in text)


@dataclass(frozen=True)
class GroupedAlert:
    """One alert of a group, as Alertmanager shows it, and the subject it is about."""

    subject: str
    """The fingerprint the sender plans and records the alert by (never rendered)."""
    status: AlertStatus
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None
    """When it resolved; None while it fires."""
    generator_url: str
    fingerprint: str


def _labels_before(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    """prometheus/common's `LabelSet.Before`: fewer labels first, then the first differing
    label in name order (a missing one first)."""
    if len(a) != len(b):
        return len(a) < len(b)
    for name in sorted({*a, *b}):
        if name not in a:
            return True
        if name not in b:
            return False
        if a[name] != b[name]:
            return a[name] < b[name]
    return False


def _compare(x: GroupedAlert, y: GroupedAlert) -> int:
    a, b = x.labels, y.labels
    for name in _ORDER_FIRST:
        if name not in a and name not in b:
            continue
        if name not in a:
            return 1
        if name not in b:
            return -1
        if a[name] != b[name]:
            return -1 if a[name] < b[name] else 1
    return -1 if _labels_before(a, b) else (1 if _labels_before(b, a) else 0)


def ordered(alerts: Iterable[GroupedAlert]) -> list[GroupedAlert]:
    """A group's alerts in Alertmanager's order: by `job`, then `instance`, then labels."""
    return sorted(alerts, key=functools.cmp_to_key(_compare))


def common(mappings: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """The pairs every mapping has (Alertmanager's commonLabels and commonAnnotations)."""
    if not mappings:
        return {}
    first, *rest = mappings
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in rest)}


def status_of(alerts: Iterable[GroupedAlert]) -> AlertStatus:
    """`firing` while any alert fires."""
    return "firing" if any(a.status == "firing" for a in alerts) else "resolved"


@dataclass(frozen=True)
class AlertGroup:
    """The alerts one channel hears about together: a group's current alerts, firing and
    just resolved."""

    group_labels: Mapping[str, str]
    alerts: tuple[GroupedAlert, ...]
    severity: str
    """The most severe of its alerts (for the channel's delivery record)."""
    external_url: str = ""
    """Where the sender can be reached (Alertmanager's externalURL)."""

    @property
    def key(self) -> str:
        return group_key(self.group_labels)

    @property
    def event(self) -> AlertStatus:
        return status_of(self.alerts)

    @property
    def dedup_key(self) -> str:
        """A stable identity of the group for delivery records."""
        return dedup_fingerprint(self.key)
