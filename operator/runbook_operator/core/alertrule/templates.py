"""Notification texts: the Prometheus template forms an AlertRule's annotations may use,
expanded by substitution (nothing is evaluated), with values printed as Prometheus' templates
print them (Go's `%v`) and Prometheus' `humanize`."""

from __future__ import annotations

import math
import re
from decimal import Decimal

from runbook_operator.core.alertrule.state import Labels

_TEMPLATE = re.compile(
    r"\{\{-?\s*\$(value|labels\.([a-zA-Z_][a-zA-Z0-9_]*)|labels)\s*(\|\s*humanize\s*)?-?\}\}"
)


_LARGE = ("k", "M", "G", "T", "P", "E", "Z", "Y")
_SMALL = ("m", "u", "n", "p", "f", "a", "z", "y")


def _special(value: float) -> str | None:
    """Go's spelling of NaN and the infinities."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return None


def go_value(value: float) -> str:
    """`value` as Go's `%v` prints a float64, which is how `{{ $value }}` reads in Prometheus:
    the shortest digits that read back as the value, in exponent form when the exponent is
    below -4 or at least 6 (`1e+06`, `1.5e-05`, `123456`, `0.25`)."""
    special = _special(value)
    if special is not None:
        return special
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    exact = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, exact.digits))
    point = len(digits) + int(exact.exponent)
    exponent = point - 1
    if exponent < -4 or exponent >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def humanize(value: float) -> str:
    """Prometheus' `humanize`: SI prefixes, four significant digits (1234567 → 1.235M),
    scaling by 1000 a step at a time as Prometheus does."""
    special = _special(value)
    if special is not None:
        return special
    if value == 0:
        return go_value(value)
    prefix = ""
    if abs(value) >= 1:
        for step in _LARGE:
            if abs(value) < 1000:
                break
            prefix, value = step, value / 1000
    else:
        for step in _SMALL:
            if abs(value) >= 1:
                break
            prefix, value = step, value * 1000
    return f"{value:.4g}{prefix}"


def render_template(text: str, labels: Labels, value: float | None) -> str:
    """Expand `{{ $value }}`, `{{ $value | humanize }}`, `{{ $labels.x }}` and `{{ $labels }}`.

    Only these forms are understood, by substitution (nothing is evaluated); an unknown label
    renders empty and any other `{{ ... }}` is left as written, so a typo is visible."""

    def expand(match: re.Match[str]) -> str:
        what, label, humanized = match.group(1), match.group(2), match.group(3)
        if what == "value":
            if value is None:
                return ""
            return humanize(value) if humanized else go_value(value)
        if label is not None:
            return labels.get(label, "")
        return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))

    return _TEMPLATE.sub(expand, text)
