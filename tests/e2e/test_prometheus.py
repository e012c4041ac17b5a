"""PrometheusClient against a real Prometheus (Debian's) scraping an in-test exporter whose
values the tests set, and Alertmanager delivering to an in-test webhook. Requests are counted
with Prometheus' own `prometheus_http_requests_total`, so deduplication and chunking are
checked on the server's side of the wire."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families
from runbook_operator.devcluster.local_operator import wait_for
from runbook_operator.devcluster.prometheus import (
    AlertmanagerServer,
    MetricsExporter,
    PrometheusServer,
)
from runbook_operator.integrations.prometheus import (
    MAX_POINTS_PER_SERIES,
    Ok,
    PrometheusClient,
    QueryError,
    QueryResult,
)

from tests.e2e import prometheus_fixtures
from tests.e2e.prometheus_fixtures import WebhookReceiver

exporter = prometheus_fixtures.exporter
prometheus = prometheus_fixtures.prometheus
webhook_receiver = prometheus_fixtures.webhook_receiver
alertmanager = prometheus_fixtures.alertmanager

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
        "sum(rb_e2e_errors",
    )
    queries = [total, by_service, total, broken, by_service, total, broken]

    async def scenario() -> tuple[dict[str, QueryResult], float]:
        async with PrometheusClient(prometheus.url) as client:
            await eventually(
                lambda: client.instant(total),
                lambda r: isinstance(r, Ok) and [s.value for s in r.samples] == [8.0],
                "both series scraped",
            )
            before = api_requests(prometheus, "/api/v1/query")
            return await client.instant_many(queries, datetime.now(UTC)), before

    results, before = asyncio.run(scenario())
    assert served(prometheus, "/api/v1/query", before, 3) == 3
    assert set(results) == {total, by_service, broken}
    assert values_by(results[by_service], "service") == {"api": 3.0, "web": 5.0}
    assert isinstance(results[total], Ok) and results[total].samples[0].value == 8.0
    assert isinstance(results[broken], QueryError) and results[broken].kind == "bad_data"


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
    alertmanager: AlertmanagerServer, webhook_receiver: WebhookReceiver
) -> None:
    assert httpx.get(f"{alertmanager.url}/-/ready").status_code == 200
    alert = {"labels": {"alertname": "RbE2EHighErrorRate", "severity": "critical"}}
    posted = httpx.post(f"{alertmanager.url}/api/v2/alerts", json=[alert])
    assert posted.status_code == 200, posted.text

    wait_for(lambda: bool(webhook_receiver.payloads), "Alertmanager's webhook", timeout=DEADLINE)
    payload = webhook_receiver.payloads[0]
    assert payload["version"] == "4"
    assert payload["status"] == "firing"
    assert payload["receiver"] == "webhook"
    (delivered,) = payload["alerts"]
    assert delivered["labels"] == alert["labels"]
    assert delivered["endsAt"] == "0001-01-01T00:00:00Z"
