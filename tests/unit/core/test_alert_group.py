"""core.alert_group: Alertmanager's and Prometheus' rules for labels, fingerprints, order,
common pairs and group keys."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from runbook_operator.core.alert_group import (
    AlertGroup,
    GroupedAlert,
    common,
    fingerprint,
    go_quote,
    group_key,
    label_set,
    ordered,
    overlay_labels,
    quote_meta,
    status_of,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
names = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
label_sets = st.dictionaries(names, st.text(max_size=8), max_size=5)


def test_winners_replace_and_what_they_replace_is_exported() -> None:
    own = {"severity": "low", "exported_severity": "taken", "team": "a", "pod": "p"}
    assert overlay_labels(own, {"severity": "critical", "team": "a"}) == {
        "severity": "critical", "team": "a", "pod": "p", "exported_severity": "taken",
        "exported_exported_severity": "low"}


@given(own=label_sets, winners=label_sets)
def test_overlay_loses_no_value(own: dict[str, str], winners: dict[str, str]) -> None:
    merged = overlay_labels(own, winners)
    assert {k: merged[k] for k in winners} == winners
    assert set(own.values()) <= set(merged.values())
    assert len(merged) == len({*own, *winners}) + sum(
        1 for k in own if k in winners and own[k] != winners[k])


def test_fingerprint_is_prometheus_common_labelset_fingerprint() -> None:
    # prometheus/common model's own test vectors (FNV-1a 64, 0xff after names and values).
    assert int(fingerprint({}), 16) == 14695981039346656037
    assert int(fingerprint({"name": "garland, briggs", "fear": "love is not enough"}),
               16) == 5799056148416392346
    assert len(fingerprint({"a": "ü"})) == 16
    assert fingerprint({"a": "b", "c": "d"}) == fingerprint({"c": "d", "a": "b"})


@pytest.mark.parametrize("text, quoted", [
    ("plain", '"plain"'),
    ('say "hi"\\', '"say \\"hi\\"\\\\"'),
    ("Zürich ☕ 東京", '"Zürich ☕ 東京"'),  # printable Unicode as it is, unlike JSON
    ("a\nb\tc\x00\x7f", '"a\\nb\\tc\\x00\\x7f"'),
    ("nbsp\u00a0zwj\u200d", '"nbsp\\u00a0zwj\\u200d"'),
    ("\U000e0001", '"\\U000e0001"'),
])
def test_go_quote(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted


def test_group_key_and_label_set_are_alertmanagers() -> None:
    labels = {"namespace": "shop", "alertname": "Web 5xx"}
    assert label_set(labels) == '{alertname="Web 5xx", namespace="shop"}'
    assert group_key(labels) == '{}:{alertname="Web 5xx", namespace="shop"}'
    assert group_key({}) == "{}:{}"


def test_receiver_names_are_quoted_as_regexp_quote_meta_does() -> None:
    assert quote_meta("team.oncall-1") == "team\\.oncall-1"
    assert quote_meta("a+b*c?(d)|[e]{f}^$\\") == "a\\+b\\*c\\?\\(d\\)\\|\\[e\\]\\{f\\}\\^\\$\\\\"


def alert(status: str = "firing", **labels: str) -> GroupedAlert:
    return GroupedAlert(subject="s", status=status, labels=labels,  # type: ignore[arg-type]
                        annotations={}, starts_at=T0, ends_at=None, generator_url="",
                        fingerprint=fingerprint(labels))


def test_alerts_are_ordered_by_job_then_instance_then_labels() -> None:
    alerts = [alert(a="2"), alert(instance="i2"), alert(job="b"), alert(job="a", x="1"),
              alert(job="a", instance="i1", x="9"), alert(a="1"), alert(a="1", b="1")]
    assert [a.labels for a in ordered(alerts)] == [
        {"job": "a", "instance": "i1", "x": "9"},  # a job first; then by instance
        {"job": "a", "x": "1"},  # with the same job, one with an instance first
        {"job": "b"},
        {"instance": "i2"},
        {"a": "1"},  # then fewer labels first, then the first differing label
        {"a": "2"},
        {"a": "1", "b": "1"},
    ]


def test_common_pairs_and_status() -> None:
    assert common([{"a": "1", "b": "2"}, {"a": "1", "b": "3"}, {"a": "1"}]) == {"a": "1"}
    assert common([]) == {}
    assert status_of([alert("resolved"), alert("firing")]) == "firing"
    assert status_of([alert("resolved")]) == "resolved"


def test_a_group_knows_its_key_event_and_a_stable_dedup_key() -> None:
    group = AlertGroup({"alertname": "x", "namespace": "y"}, (alert("resolved"),), "high")
    assert (group.key, group.event) == ('{}:{alertname="x", namespace="y"}', "resolved")
    assert group.dedup_key == AlertGroup(group.group_labels, (), "low").dedup_key
    assert len(group.dedup_key) == 64
