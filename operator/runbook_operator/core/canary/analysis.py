"""What an analysis run asks Prometheus, and what the answers mean.

Queries are templated with `{{ namespace }}`, `{{ target }}`, `{{ service }}`,
`{{ primary }}`, `{{ canary }}` (Service names) and `{{ interval }}` (the window). The
built-in checks read the gateway's own series for the canary Service — Traefik's
`traefik_service_requests_total` and `traefik_service_request_duration_seconds` — so the
runbooks' criteria ("error rate under 1 %", "p99 under 500 ms") need no PromQL. Traefik names
a Gateway API backend in the `service` label one of two ways: up to v3.6 by the Service and
port (`<namespace>-<service>-<port name>-<port>@kubernetesgateway`), from v3.7 by the route
rule and backend (`httproute-<route's namespace>-<route>-gw-…-<hash>-svc-<namespace>-
<service>-<backend index>@kubernetesgateway`); the checks match both, summed over every
route to it. The success rate counts a window with requests and no success as 0 % (not as no
data: a plain ratio of sums drops the empty numerator), and a window without requests as no
data (0/0 is NaN).

Verdicts: a value inside `thresholdRange` passes, outside fails; no series, or NaN, is what
`onNoData` says; a failed query is an error. A run fails when any metric fails, is
inconclusive when none fails but one is inconclusive or an error — or when the canary served
fewer than `minimumRequests` — and passes otherwise. Inconclusive runs neither pass nor count
toward the failure limit: the step waits, bounded by the progress deadline.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from runbook_operator.api.canaryrollout import (
    CanaryRolloutSpec,
    Measurement,
    Metric,
    Verdict,
)
from runbook_operator.api.common import parse_duration
from runbook_operator.integrations.routers import Backends

DEFAULT_QUANTILE = 0.99
REQUESTS = "(minimum requests)"
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_]+)\s*\}\}")


class TemplateError(ValueError):
    """A query names a variable that does not exist."""


def prometheus_window(duration: str) -> str:
    """A duration as PromQL reads it (whole seconds, at least 1s)."""
    return f"{max(1, round(parse_duration(duration).total_seconds()))}s"


def render(query: str, variables: dict[str, str]) -> str:
    """`query` with its `{{ name }}` variables replaced."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise TemplateError(f"unknown variable {{{{ {name} }}}} (known: "
                                f"{', '.join(sorted(variables))})")
        return variables[name]
    return _VARIABLE.sub(value, query)


#: The provider part of Traefik's `service` label for Gateway API backends.
GATEWAY_PROVIDER = "@kubernetesgateway"


def route_backend(namespace: str, service: str) -> str:
    """A regular expression for the name in Traefik's (v3.7 on) `service` label of a Gateway
    API route backend naming Service `service` (itself a regular expression) in `namespace`,
    over every route, rule and backend index; `GATEWAY_PROVIDER` follows it."""
    return f".+-svc-{namespace}-{service}-[0-9]+"


def gateway_service(backends: Backends) -> str:
    """A regular expression for Traefik's `service` label of the canary Service (PromQL
    anchors it): its port's series up to Traefik v3.6, each route backend's from v3.7."""
    by_port = f"{backends.namespace}-{backends.canary}-{backends.port_name}-{backends.port}"
    by_route = route_backend(backends.namespace, backends.canary)
    return f"({by_port}|{by_route}){GATEWAY_PROVIDER}"


def builtin_query(metric: Metric, backends: Backends, window: str) -> str:
    selector = f'service=~"{gateway_service(backends)}"'
    if metric.builtin == "requestSuccessRate":
        total = f"sum(rate(traefik_service_requests_total{{{selector}}}[{window}]))"
        good = (f'(sum(rate(traefik_service_requests_total{{{selector},code!~"5.."}}'
                f"[{window}])) or vector(0))")
        return f"100 * {good} / {total}"
    quantile = DEFAULT_QUANTILE if metric.quantile is None else metric.quantile
    return (f"histogram_quantile({quantile:g}, sum by (le) (rate("
            f"traefik_service_request_duration_seconds_bucket{{{selector}}}[{window}])))")


@dataclass(frozen=True)
class Check:
    """One query of a run, ready to send."""

    metric: str
    query: str
    min: float | None = None
    max: float | None = None
    on_no_data: str = "inconclusive"


def checks(spec: CanaryRolloutSpec, backends: Backends) -> list[Check]:
    """Every query of one run: the request count first (when minimumRequests is set), then
    each metric. Raises TemplateError for a query naming an unknown variable."""
    analysis = spec.analysis
    base = {"namespace": backends.namespace, "target": spec.target_ref.name,
            "service": backends.service, "primary": backends.primary,
            "canary": backends.canary}
    found = []
    if analysis.minimum_requests > 0:
        window = prometheus_window(analysis.interval)
        query = analysis.request_count_query or (
            f'sum(increase(traefik_service_requests_total{{service=~"'
            f'{gateway_service(backends)}"}}[{{{{ interval }}}}]))')
        found.append(Check(REQUESTS, render(query, {**base, "interval": window}),
                           min=analysis.minimum_requests))
    for metric in analysis.metrics:
        window = prometheus_window(metric.interval or analysis.interval)
        query = (builtin_query(metric, backends, window) if metric.builtin
                 else render(metric.query or "", {**base, "interval": window}))
        found.append(Check(metric.name, query, metric.threshold_range.min,
                           metric.threshold_range.max, metric.on_no_data))
    return found


@dataclass(frozen=True)
class Answer:
    """What Prometheus answered to one check: the values of its series, or an error."""

    values: tuple[float, ...] = ()
    error: str | None = None


def _shown(value: float) -> str:
    return "NaN" if math.isnan(value) else f"{value:.6g}"


_NO_DATA: dict[str, Verdict] = {"pass": "Pass", "fail": "Fail", "inconclusive": "Inconclusive"}


def judge(check: Check, answer: Answer, revision: str, step: int,
          now: datetime) -> Measurement:
    """One check's measurement."""
    def measured(verdict: Verdict, value: str | None, message: str) -> Measurement:
        return Measurement(time=now, revision=revision, step=step, metric=check.metric,
                           query=check.query[:4096], value=value, min=check.min, max=check.max,
                           verdict=verdict, message=message[:1024])

    if answer.error is not None:
        return measured("Error", None, answer.error)
    if len(answer.values) > 1:
        return measured("Error", None, f"{len(answer.values)} series: the query must return "
                        "one value (aggregate with sum, avg or max)")
    value = answer.values[0] if answer.values else math.nan
    if check.metric == REQUESTS and check.min is not None:
        count = 0.0 if math.isnan(value) else value
        enough = count >= check.min
        return measured("Pass" if enough else "Inconclusive", _shown(count),
                        f"{count:g} requests, {'at least' if enough else 'fewer than'} "
                        f"minimumRequests {check.min:g}")
    if math.isnan(value):
        what = "no data" if not answer.values else "NaN (no requests: 0/0)"
        return measured(_NO_DATA[check.on_no_data], None,
                        f"{what}: onNoData {check.on_no_data}")
    inside = ((check.min is None or value >= check.min)
              and (check.max is None or value <= check.max))
    bounds = f"[{'' if check.min is None else f'{check.min:g}'}, " \
             f"{'' if check.max is None else f'{check.max:g}'}]"
    return measured("Pass" if inside else "Fail", _shown(value),
                    f"{_shown(value)} {'inside' if inside else 'outside'} {bounds}")


def run_verdict(measurements: Sequence[Measurement]) -> Verdict:
    """One run's verdict from its measurements (see the module docstring)."""
    verdicts = [m.verdict for m in measurements if m.metric != REQUESTS]
    if any(m.metric == REQUESTS and m.verdict != "Pass" for m in measurements):
        return "Inconclusive"
    if "Fail" in verdicts:
        return "Fail"
    if "Error" in verdicts or "Inconclusive" in verdicts:
        return "Inconclusive"
    return "Pass"


def failing(measurements: Sequence[Measurement]) -> list[str]:
    """The metrics that failed in a run."""
    return [m.metric for m in measurements if m.verdict == "Fail"]
