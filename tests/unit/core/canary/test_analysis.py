from __future__ import annotations

import math
import re

import pytest

from runbook_operator.core.canary.analysis import (
    REQUESTS,
    Answer,
    Check,
    TemplateError,
    checks,
    failing,
    gateway_service,
    judge,
    render,
    run_verdict,
)
from runbook_operator.integrations.routers import Backends
from tests.support.canary_world import START, spec

BACKENDS = Backends("shop", "checkout", 80, "http")
SERVICE = ('service=~"(shop-checkout-canary-http-80|.+-svc-shop-checkout-canary-[0-9]+)'
           '@kubernetesgateway"')


@pytest.mark.parametrize(("label", "canary"), [
    ("shop-checkout-canary-http-80@kubernetesgateway", True),  # Traefik up to v3.6
    ("httproute-shop-checkout-gw-shop-gw-ep-web-0-1a2b3c4d5e-svc-shop-checkout-canary-1"
     "@kubernetesgateway", True),  # v3.7 on: per route rule and backend
    ("httproute-web-store-gw-web-gw-ep-web-2-ffffffffff-svc-shop-checkout-canary-0"
     "@kubernetesgateway", True),  # a route in another namespace
    ("shop-checkout-primary-http-80@kubernetesgateway", False),
    ("httproute-shop-checkout-gw-shop-gw-ep-web-0-1a2b3c4d5e-svc-shop-checkout-primary-0"
     "@kubernetesgateway", False),
    ("httproute-shop-x-gw-shop-gw-ep-web-0-1a2b3c4d5e-svc-shop-checkout-canary-2-0"
     "@kubernetesgateway", False),  # a Service named checkout-canary-2
    ("httproute-shop-x-gw-shop-gw-ep-web-0-1a2b3c4d5e-svc-other-checkout-canary-0"
     "@kubernetesgateway", False),  # the same name in another namespace
    ("shop-checkout-canary-http-80@kubernetescrd", False),
])
def test_the_gateway_series_of_the_canary_service_under_either_traefik_naming(
        label: str, canary: bool) -> None:
    assert bool(re.fullmatch(gateway_service(BACKENDS), label)) is canary


def test_builtins_read_the_gateways_series_for_the_canary_service() -> None:
    found = checks(spec(analysis={"interval": "30s", "minimumRequests": 20, "metrics": [
        {"name": "ok", "builtin": "requestSuccessRate", "thresholdRange": {"min": 99}},
        {"name": "p95", "builtin": "requestDuration", "quantile": 0.95, "interval": "2m",
         "thresholdRange": {"max": 0.5}}]}), BACKENDS)
    assert [c.metric for c in found] == [REQUESTS, "ok", "p95"]
    requests, ok, p95 = found
    assert requests.query == f"sum(increase(traefik_service_requests_total{{{SERVICE}}}[30s]))"
    assert requests.min == 20
    # 0 good answers of many is 0 %, not "no data": the numerator falls back to 0.
    assert ok.query == (f'100 * (sum(rate(traefik_service_requests_total{{{SERVICE},'
                        f'code!~"5.."}}[30s])) or vector(0)) / sum(rate('
                        f"traefik_service_requests_total{{{SERVICE}}}[30s]))")
    assert (ok.min, ok.max) == (99, None)
    assert p95.query == (f"histogram_quantile(0.95, sum by (le) (rate("
                         f"traefik_service_request_duration_seconds_bucket{{{SERVICE}}}[120s])))")


def test_queries_are_templated() -> None:
    [check] = checks(spec(analysis={"interval": "1m", "metrics": [
        {"name": "errors", "thresholdRange": {"max": 1},
         "query": 'sum(rate(x{ns="{{ namespace }}",t="{{target}}",p="{{ primary }}",'
                  'c="{{ canary }}",s="{{ service }}"}[{{ interval }}]))'}]}), BACKENDS)
    assert check.query == ('sum(rate(x{ns="shop",t="checkout",p="checkout-primary",'
                           'c="checkout-canary",s="checkout"}[60s]))')


def test_an_unknown_variable_is_an_error() -> None:
    with pytest.raises(TemplateError, match="unknown variable {{ pod }}"):
        render("up{pod='{{ pod }}'}", {"namespace": "x"})


def _judge(answer: Answer, low: float | None = 99, high: float | None = None,
           on_no_data: str = "inconclusive") -> tuple[str, str | None]:
    measured = judge(Check("m", "q", low, high, on_no_data), answer, "r1", 2, START)
    assert (measured.revision, measured.step, measured.time) == ("r1", 2, START)
    return measured.verdict, measured.value


@pytest.mark.parametrize(("answer", "verdict", "value"), [
    (Answer((99.5,)), "Pass", "99.5"),
    (Answer((99.0,)), "Pass", "99"),  # the range is inclusive
    (Answer((95.0,)), "Fail", "95"),
    (Answer((-math.inf,)), "Fail", "-inf"),
    (Answer(error="bad_data: parse error"), "Error", None),
    (Answer((1.0, 2.0)), "Error", None),  # one value, not one per series
])
def test_values_are_judged_against_the_range(answer: Answer, verdict: str,
                                             value: str | None) -> None:
    assert _judge(answer) == (verdict, value)


@pytest.mark.parametrize("on_no_data", ["pass", "inconclusive", "fail"])
@pytest.mark.parametrize("answer", [Answer(()), Answer((math.nan,))])
def test_no_data_and_nan_are_what_on_no_data_says(answer: Answer, on_no_data: str) -> None:
    expected = {"pass": "Pass", "inconclusive": "Inconclusive", "fail": "Fail"}[on_no_data]
    assert _judge(answer, on_no_data=on_no_data) == (expected, None)


def test_fewer_requests_than_the_minimum_make_a_run_inconclusive() -> None:
    guard = Check(REQUESTS, "q", 20)
    few = judge(guard, Answer((19.2,)), "r1", 0, START)
    none = judge(guard, Answer(()), "r1", 0, START)
    enough = judge(guard, Answer((20.0,)), "r1", 0, START)
    assert (few.verdict, none.verdict, enough.verdict) == ("Inconclusive", "Inconclusive",
                                                           "Pass")
    failed = judge(Check("ok", "q", 99), Answer((50.0,)), "r1", 0, START)
    assert run_verdict([few, failed]) == "Inconclusive"  # the guard wins
    assert run_verdict([enough, failed]) == "Fail"
    assert failing([enough, failed]) == ["ok"]


@pytest.mark.parametrize(("verdicts", "run"), [
    ([], "Pass"),
    (["Pass", "Pass"], "Pass"),
    (["Pass", "Inconclusive"], "Inconclusive"),
    (["Error", "Pass"], "Inconclusive"),
    (["Fail", "Inconclusive", "Error"], "Fail"),
])
def test_a_run_fails_on_any_failure_and_passes_only_when_all_pass(verdicts: list[str],
                                                                 run: str) -> None:
    answers = {"Pass": Answer((100.0,)), "Fail": Answer((1.0,)), "Inconclusive": Answer(()),
               "Error": Answer(error="down")}
    measured = [judge(Check(f"m{i}", "q", 99), answers[v], "r", 0, START)
                for i, v in enumerate(verdicts)]
    assert [m.verdict for m in measured] == verdicts
    assert run_verdict(measured) == run
