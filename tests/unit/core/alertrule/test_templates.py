"""core.alertrule.templates: $value / $labels rendering and Prometheus' humanize."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from runbook_operator.core.alertrule.templates import go_value, humanize, render_template

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
    (math.inf, "+Inf"), (math.nan, "NaN"), (1234567.0, "1.235M"), (0.5, "500m"),
    (1e30, "1e+06Y"), (123456.0, "123.5k"),
])
def test_humanize(value, text) -> None:
    assert humanize(value) == text


@pytest.mark.parametrize("value, text", [
    # What Go's fmt prints for a float64 with %v, as `{{ $value }}` shows it in Prometheus.
    (0.09, "0.09"), (5.0, "5"), (-2.5, "-2.5"), (100.0, "100"), (123456.0, "123456"),
    (999999.5, "999999.5"), (1e6, "1e+06"), (1234567.0, "1.234567e+06"), (0.0001, "0.0001"),
    (1e-05, "1e-05"), (1.5e-07, "1.5e-07"), (2.0**64, "1.8446744073709552e+19"),
    (1e100, "1e+100"), (0.0, "0"), (-0.0, "-0"), (math.nan, "NaN"), (-math.inf, "-Inf"),
])
def test_values_are_printed_as_prometheus_templates_print_them(value, text) -> None:
    assert go_value(value) == text
    assert render_template("{{ $value }}", {}, value) == text


@given(value=st.floats(allow_nan=False, allow_infinity=False))
def test_printed_values_read_back_exactly(value: float) -> None:
    assert float(go_value(value)) == value


LABEL_NAMES = st.from_regex(r"[a-z_]{1,8}", fullmatch=True)


@given(text=st.text(max_size=60),
       labels=st.dictionaries(LABEL_NAMES, st.text(max_size=10), max_size=4),
       value=st.floats(allow_nan=True))
def test_render_template_is_total(text, labels, value) -> None:
    assert isinstance(render_template(text, labels, value), str)
