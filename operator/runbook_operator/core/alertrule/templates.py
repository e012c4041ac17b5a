"""Notification texts: the Prometheus template forms an AlertRule's annotations may use,
expanded by substitution (nothing is evaluated), and Prometheus' `humanize`."""

from __future__ import annotations

import math
import re

from runbook_operator.core.alertrule.state import Labels, format_value

_TEMPLATE = re.compile(
    r"\{\{-?\s*\$(value|labels\.([a-zA-Z_][a-zA-Z0-9_]*)|labels)\s*(\|\s*humanize\s*)?-?\}\}"
)


def humanize(value: float) -> str:
    """Prometheus' `humanize`: SI prefixes, four significant digits (1234567 → 1.235M)."""
    if math.isnan(value) or math.isinf(value) or value == 0:
        return format_value(value) or ""
    prefixes = [(1e24, "Y"), (1e21, "Z"), (1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"),
                (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"),
                (1e-12, "p"), (1e-15, "f"), (1e-18, "a"), (1e-21, "z"), (1e-24, "y")]
    for size, prefix in prefixes:
        if abs(value) >= size:
            return f"{value / size:.4g}{prefix}"
    return f"{value:.4g}"


def render_template(text: str, labels: Labels, value: float | None) -> str:
    """Expand `{{ $value }}`, `{{ $value | humanize }}`, `{{ $labels.x }}` and `{{ $labels }}`.

    Only these forms are understood, by substitution (nothing is evaluated); an unknown label
    renders empty and any other `{{ ... }}` is left as written, so a typo is visible."""

    def expand(match: re.Match[str]) -> str:
        what, label, humanized = match.group(1), match.group(2), match.group(3)
        if what == "value":
            if value is None:
                return ""
            return humanize(value) if humanized else format_value(value) or ""
        if label is not None:
            return labels.get(label, "")
        return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))

    return _TEMPLATE.sub(expand, text)
