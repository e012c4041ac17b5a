"""PrometheusClient against a real Prometheus (Debian's) scraping an in-test exporter whose
values the tests set, and Alertmanager delivering to an in-test webhook. Requests are counted
with Prometheus' own `prometheus_http_requests_total`, so deduplication, unions and chunking
are checked on the server's side of the wire."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families
from runbook_operator.devcluster.waiting import wait_for
from runbook_operator.devcluster.prometheus import (
    AlertmanagerServer,
    MetricsExporter,
    PrometheusServer,
)
from runbook_operator.integrations.prometheus import (
    MAX_POINTS_PER_SERIES,
    UNION_LABEL,
    Ok,
    PrometheusClient,
    QueryError,
    QueryResult,
    Sample,
)

from tests.support import prometheus as fixtures
from tests.support.receivers import HTTPReceiver

exporter = fixtures.exporter
prometheus = fixtures.prometheus
webhook_receiver = fixtures.webhook_receiver
alertmanager = fixtures.alertmanager

DEADLINE = 20.0
T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], what: str) -> T:
    """Poll `probe` until `done(result)`; Prometheus scrapes every second."""
    deadline = time.monotonic() + DEADLINE
    while True:
        result = await probe()
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last: {result!r}")
        await asyncio.sleep(0.2)


def values_by(result: QueryResult, label: str) -> dict[str, float]:
    assert isinstance(result, Ok), result
    return {s.labels[label]: s.value for s in result.samples}


def api_requests(prometheus: PrometheusServer, handler: str) -> float:
    """How many requests Prometheus has served on `handler`, over all status codes."""
    text = httpx.get(f"{prometheus.url}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "prometheus_http_requests"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels.get("handler") == handler
    )


def served(prometheus: PrometheusServer, handler: str, before: float, expected: int) -> float:
    """Requests served since `before`. Prometheus counts a request just after answering it,
    so wait for at least `expected` before comparing exactly."""
    wait_for(
        lambda: api_requests(prometheus, handler) - before >= expected,
        f"{expected} requests on {handler}",
        timeout=DEADLINE,
    )
    return api_requests(prometheus, handler) - before


def test_a_gauge_set_by_the_test_is_seen_with_its_labels(
    exporter: MetricsExporter, prometheus: PrometheusServer
) -> None:
    labels = {"service": "checkout", "instance": "web-1", "env": 'prod "eu"'}
    exporter.set("rb_e2e_latency_seconds", labels, 0.25)

    async def scenario() -> None:
        async with PrometheusClient(prometheus.url) as client:

            async def value() -> QueryResult:
                return await client.instant("rb_e2e_latency_seconds")

            result = await eventually(
                value, lambda r: isinstance(r, Ok) and len(r.samples) == 1, "the gauge"
            )
            assert isinstance(result, Ok) and result.result_type == "vector"
            assert result.samples[0].labels == {
                "__name__": "rb_e2e_latency_seconds",
                "job": "exporter",
                **labels,
            }
            assert result.samples[0].value == 0.25

            exporter.set("rb_e2e_latency_seconds", labels, 2.5)
            await eventually(
                value,
                lambda r: isinstance(r, Ok) and [s.value for s in r.samples] == [2.5],
                "the updated value",
            )

    asyncio.run(scenario())


def test_nan_and_infinities_are_parsed(
    exporter: MetricsExporter, prometheus: PrometheusServer
) -> None:
    for name, value in [("nan", math.nan), ("pinf", math.inf), ("ninf", -math.inf)]:
        exporter.set("rb_e2e_special", {"case": name}, value)

    async def scenario() -> None:
        async with PrometheusClient(prometheus.url) as client:
            result = await eventually(
                lambda: client.instant("rb_e2e_special"),
                lambda r: isinstance(r, Ok) and len(r.samples) == 3,
                "three special values",
            )
        values = values_by(result, "case")
        assert math.isnan(values["nan"])
        assert values["pinf"] == math.inf
        assert values["ninf"] == -math.inf

    asyncio.run(scenario())


def test_invalid_promql_is_bad_data_with_prometheus_message(
    prometheus: PrometheusServer,
) -> None:
    query = "sum(rate(http_requests_total[5m])"
    direct = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": query}).json()

    async def scenario() -> QueryResult:
        async with PrometheusClient(prometheus.url) as client:
            return await client.instant(query)

    result = asyncio.run(scenario())
    assert result == QueryError("bad_data", direct["error"])
    assert "parse error" in result.message


def test_a_query_that_cannot_execute_is_an_execution_error(
    exporter: MetricsExporter, prometheus: PrometheusServer
) -> None:
    exporter.set("rb_e2e_dup", {"pod": "a"}, 1)
    exporter.set("rb_e2e_dup", {"pod": "b"}, 2)

    async def scenario() -> QueryResult:
        async with PrometheusClient(prometheus.url) as client:
            await eventually(
                lambda: client.instant("rb_e2e_dup"),
                lambda r: isinstance(r, Ok) and len(r.samples) == 2,
                "both series",
            )
            return await client.instant("rb_e2e_dup + on() rb_e2e_dup")

    result = asyncio.run(scenario())
    assert isinstance(result, QueryError) and result.kind == "execution"
    assert "many-to-many" in result.message or "duplicate series" in result.message


def test_instant_many_sends_each_distinct_query_once_and_isolates_a_bad_one(
    exporter: MetricsExporter, prometheus: PrometheusServer
) -> None:
    exporter.set("rb_e2e_errors", {"service": "api"}, 3)
    exporter.set("rb_e2e_errors", {"service": "web"}, 5)
    total, by_service, broken = (
        "sum(rb_e2e_errors)",
        "max by (service) (rb_e2e_errors)",
        "sum(rb_e2e_errors) by",  # balanced, so it is tried in a union
    )
    queries = [total, by_service, total, broken, by_service, total, broken]

    async def scenario() -> list[tuple[dict[str, QueryResult], float]]:
        async with PrometheusClient(prometheus.url) as client:
            await eventually(
                lambda: client.instant(total),
                lambda r: isinstance(r, Ok) and [s.value for s in r.samples] == [8.0],
                "both series scraped",
            )
            calls = []
            # The union of the three fails on the broken one, then each is sent alone; later
            # the broken one is sent alone and the other two as a union.
            for expected_requests in (4, 2):
                before = api_requests(prometheus, "/api/v1/query")
                results = await client.instant_many(queries, datetime.now(UTC))
                requests = served(prometheus, "/api/v1/query", before, expected_requests)
                calls.append((results, requests))
            return calls

    calls = asyncio.run(scenario())
    assert [requests for _, requests in calls] == [4, 2]
    for answers, _ in calls:
        assert set(answers) == {total, by_service, broken}
        assert values_by(answers[by_service], "service") == {"api": 3.0, "web": 5.0}
        assert answers[total] == Ok([Sample({}, 8.0)])
        error = answers[broken]
        assert isinstance(error, QueryError) and error.kind == "bad_data"


def what(result: QueryResult) -> str:
    """An error's kind or a result's type."""
    return result.kind if isinstance(result, QueryError) else result.result_type


def comparable(result: QueryResult) -> object:
    """A result with its samples as a sorted list, so two answers compare as multisets."""
    if isinstance(result, QueryError):
        return result
    samples = sorted((sorted(s.labels.items()), s.value) for s in result.samples)
    return result.result_type, samples, result.warnings


def test_instant_many_answers_exactly_what_each_query_gets_alone(
    exporter: MetricsExporter, prometheus: PrometheusServer
) -> None:
    services = [f"s{i:02d}" for i in range(30)]
    for i, service in enumerate(services):
        exporter.set("rb_e2e_u_requests_total", {"service": service, "code": "200"}, 10 * i)
        exporter.set("rb_e2e_u_requests_total", {"service": service, "code": "500"}, i)
        exporter.set("rb_e2e_u_errors_ratio", {"service": service}, i / 100)
    per_service = [
        'rb_e2e_u_requests_total{{service="{s}"}}',
        'rate(rb_e2e_u_requests_total{{service="{s}", code="200"}}[1m])',
        'max_over_time(rb_e2e_u_errors_ratio{{service="{s}"}}[1m])',
        'quantile_over_time(0.9, rb_e2e_u_errors_ratio{{service="{s}"}}[30s])',
        'rb_e2e_u_errors_ratio{{service="{s}"}} > 0.1',
    ]
    scalar, broken, absent = "scalar(sum(rb_e2e_u_errors_ratio))", "rate(x[5x])", "rb_e2e_u_absent"
    many_to_many = "rb_e2e_u_requests_total + on() rb_e2e_u_errors_ratio"
    unbalanced = "vector(1)) or (vector(2)"  # an error alone, whatever it would be in a union
    special = [
        scalar,
        broken,
        absent,
        many_to_many,
        unbalanced,
        "time()",
        "sum by (code) (rb_e2e_u_requests_total)",
        'sum by (service) (rate(rb_e2e_u_requests_total{service=~"s0."}[1m]))',
        '{__name__=~"rb_e2e_u_.*", service="s01"}',  # two names, otherwise equal labels
        "sort_desc(rb_e2e_u_errors_ratio)",
        'count(rb_e2e_u_errors_ratio{service=~`s1.`}) # a comment: ) or (',
        "vector(1)",
    ]
    queries = [shape.format(s=s) for shape in per_service for s in services] + special
    must_go_alone = {scalar, broken, many_to_many, unbalanced, "time()"}
    # Once learnt: one request per union of up to 100, one per query that must go alone.
    expected_requests = -(-(len(queries) - len(must_go_alone)) // 100) + len(must_go_alone)

    async def settled(client: PrometheusClient) -> datetime | None:
        """2 s ago (every scrape before then is stored), once each series had two samples by
        then (so rate() has a value)."""
        at = datetime.now(UTC) - timedelta(seconds=2)
        counts = await client.instant_many(
            [
                "count(count_over_time(rb_e2e_u_requests_total[1m]) > 1)",
                "count(count_over_time(rb_e2e_u_errors_ratio[1m]) > 1)",
            ],
            at,
        )
        values = [r.samples[0].value for r in counts.values() if isinstance(r, Ok) and r.samples]
        return at if values == [2.0 * len(services), 1.0 * len(services)] else None

    async def scenario() -> tuple[list[dict[str, QueryResult]], dict[str, QueryResult], float]:
        async with PrometheusClient(prometheus.url) as client:
            at = await eventually(lambda: settled(client), bool, "two scrapes of every series")
            assert at is not None
            first = await client.instant_many(queries, at)  # learns which must go alone
            before = api_requests(prometheus, "/api/v1/query")
            second = await client.instant_many(queries, at)
            requests = served(prometheus, "/api/v1/query", before, expected_requests)
            alone = await asyncio.gather(*(client.instant(q, at) for q in queries))
            return [first, second], dict(zip(queries, alone, strict=True)), requests

    calls, alone, requests = asyncio.run(scenario())
    expected = {q: comparable(r) for q, r in alone.items()}
    for results in calls:
        assert list(results) == queries
        assert {q: comparable(r) for q, r in results.items()} == expected
    assert requests == expected_requests == 7
    results = calls[1]
    errors = {q for q, r in results.items() if isinstance(r, QueryError)}
    assert errors == {broken, many_to_many, unbalanced}
    assert [what(results[q]) for q in (broken, many_to_many, scalar, "time()")] == [
        "bad_data",
        "execution",
        "scalar",
        "scalar",
    ]
    assert results[absent] == Ok([])
    two_names = results['{__name__=~"rb_e2e_u_.*", service="s01"}']
    assert isinstance(two_names, Ok)
    assert sorted(s.labels["__name__"] for s in two_names.samples) == [
        "rb_e2e_u_errors_ratio",
        "rb_e2e_u_requests_total",
        "rb_e2e_u_requests_total",
    ]
    for query in queries[: 4 * len(services)]:  # every shape but the filter has a series
        result = results[query]
        assert isinstance(result, Ok) and result.samples, query
        assert all(UNION_LABEL not in s.labels for s in result.samples)


def test_queries_that_would_parse_only_as_operands_are_sent_alone(
    prometheus: PrometheusServer,
) -> None:
    # Errors alone, but as operands they would parse: the first as vector(1) tagged for the
    # third query (whose own series `or` would then drop), the second as vector(1) or vector(2).
    forged = f'vector(1)), "{UNION_LABEL}", "2", "", "") or label_replace((vector(2)'
    unbalanced = "vector(1)) or (vector(2)"
    queries = [forged, unbalanced, "vector(3)", "vector(4)"]

    async def scenario() -> tuple[dict[str, QueryResult], list[QueryResult]]:
        async with PrometheusClient(prometheus.url) as client:
            at = datetime.now(UTC)
            alone = await asyncio.gather(*(client.instant(q, at) for q in queries))
            return await client.instant_many(queries, at), alone

    results, alone = asyncio.run(scenario())
    assert results == dict(zip(queries, alone, strict=True))
    assert what(results[forged]) == what(results[unbalanced]) == "bad_data"
    assert results["vector(3)"] == Ok([Sample({}, 3.0)])


def test_range_over_three_chunks_is_merged_in_order_without_duplicates(
    prometheus: PrometheusServer,
) -> None:
    # time() makes each point's value its own timestamp, so order, gaps and duplicates show.
    query = (
        'label_replace(vector(time()), "series", "t", "", "")'
        ' or label_replace(vector(2 * time()), "series", "2t", "", "")'
    )
    step = timedelta(milliseconds=1)
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - step * (2 * MAX_POINTS_PER_SERIES + 3_000)  # needs 3 requests
    expected_points = 2 * MAX_POINTS_PER_SERIES + 3_001

    async def scenario() -> list:
        async with PrometheusClient(prometheus.url) as client:
            return await client.range(query, start, end, step)

    before = api_requests(prometheus, "/api/v1/query_range")
    series = asyncio.run(scenario())
    assert served(prometheus, "/api/v1/query_range", before, 3) == 3
    assert [s.labels for s in series] == [{"series": "2t"}, {"series": "t"}]
    for s in series:
        times_ms = [round(ts * 1000) for ts, _ in s.points]
        assert len(times_ms) == expected_points
        assert times_ms == list(
            range(round(start.timestamp() * 1000), round(end.timestamp() * 1000) + 1)
        )
        factor = 2 if s.labels["series"] == "2t" else 1
        assert all(value == factor * ts for ts, value in s.points)


def test_alertmanager_is_ready_and_delivers_to_the_webhook(
    alertmanager: AlertmanagerServer, webhook_receiver: HTTPReceiver
) -> None:
    assert httpx.get(f"{alertmanager.url}/-/ready").status_code == 200
    alert = {"labels": {"alertname": "RbE2EHighErrorRate", "severity": "critical"}}
    posted = httpx.post(f"{alertmanager.url}/api/v2/alerts", json=[alert])
    assert posted.status_code == 200, posted.text

    wait_for(lambda: bool(webhook_receiver.bodies()), "Alertmanager's webhook", timeout=DEADLINE)
    payload = webhook_receiver.bodies()[0]
    assert payload["version"] == "4"
    assert payload["status"] == "firing"
    assert payload["receiver"] == "webhook"
    (delivered,) = payload["alerts"]
    assert delivered["labels"] == alert["labels"]
    assert delivered["endsAt"] == "0001-01-01T00:00:00Z"
