"""core.alertrule.templates: $value / $labels rendering and Prometheus' humanize."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from runbook_operator.core.alertrule.templates import humanize, render_template

@pytest.mark.parametrize("text, expected", [
    ("{{ $value }}", "0.25"),
    ("{{$value}}", "0.25"),
    ("{{ $labels.pod }} at {{ $value }}", "api-1 at 0.25"),
    ("{{ $labels.missing }}|", "|"),
    ("{{ $labels }}", "job=api, pod=api-1"),
    ("{{ .Value }} {{ $value | printf }}", "{{ .Value }} {{ $value | printf }}"),
    ("{{ $labels.__import__ }}", ""),
    ("no templates", "no templates"),
])
def test_render_template(text, expected) -> None:
    assert render_template(text, {"pod": "api-1", "job": "api"}, 0.25) == expected


def test_render_template_humanize_and_missing_value() -> None:
    assert render_template("{{ $value | humanize }}", {}, 1234567.0) == "1.235M"
    assert render_template("{{ $value }}", {}, None) == ""
    assert render_template("{{ $value }}", {}, math.nan) == "NaN"


@pytest.mark.parametrize("value, text", [
    (0.0, "0"), (1.0, "1"), (999.0, "999"), (1000.0, "1k"), (0.002, "2m"), (-2.5e9, "-2.5G"),
    (math.inf, "+Inf"),
])
def test_humanize(value, text) -> None:
    assert humanize(value) == text


LABEL_NAMES = st.from_regex(r"[a-z_]{1,8}", fullmatch=True)


@given(text=st.text(max_size=60),
       labels=st.dictionaries(LABEL_NAMES, st.text(max_size=10), max_size=4),
       value=st.floats(allow_nan=True))
def test_render_template_is_total(text, labels, value) -> None:
    assert isinstance(render_template(text, labels, value), str)
