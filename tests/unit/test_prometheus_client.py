"""PrometheusClient: the pure pieces (chunking, envelope parsing, merging) directly, and the
transport against an in-test aiohttp server for what a real Prometheus cannot be made to do on
demand (503s, answers slower than the timeout, non-API answers). tests/e2e/test_prometheus.py
covers the same client against a real Prometheus."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from runbook_operator.devcluster.local_operator import free_port
from runbook_operator.integrations.prometheus import (
    MAX_POINTS_PER_SERIES,
    Ok,
    PrometheusClient,
    QueryError,
    QueryFailed,
    Sample,
    Series,
    format_time_ms,
    merge_series,
    parse_envelope,
    parse_instant,
    range_chunks,
    to_ms,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def envelope(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def vector(*items: tuple[dict[str, str], str]) -> bytes:
    result = [{"metric": labels, "value": [1772366400.0, value]} for labels, value in items]
    return envelope(status="success", data={"resultType": "vector", "result": result})


# ---- chunking ------------------------------------------------------------------------------


def grid(chunks: list[tuple[int, int]], step_ms: int) -> list[int]:
    return [t for first, last in chunks for t in range(first, last + 1, step_ms)]


def test_a_window_within_the_limit_is_one_request() -> None:
    assert range_chunks(0, 10_999_000, 1000) == [(0, 10_999_000)]  # 11,000 points


def test_one_point_over_the_limit_needs_a_second_request() -> None:
    assert range_chunks(0, 11_000_000, 1000) == [(0, 10_999_000), (11_000_000, 11_000_000)]


def test_three_chunks_are_adjacent_on_the_step_grid() -> None:
    chunks = range_chunks(5, 5 + 25_000 * 7, 7)
    assert chunks == [
        (5, 5 + 10_999 * 7),
        (5 + 11_000 * 7, 5 + 21_999 * 7),
        (5 + 22_000 * 7, 5 + 25_000 * 7),
    ]
    assert grid(chunks, 7) == list(range(5, 5 + 25_001 * 7, 7))


def test_an_end_off_the_grid_stops_at_the_last_grid_point() -> None:
    assert range_chunks(0, 2_500, 1_000) == [(0, 2_000)]


@pytest.mark.parametrize(("start", "end", "step"), [(0, 10, 0), (10, 0, 1)])
def test_invalid_windows_are_rejected(start: int, end: int, step: int) -> None:
    with pytest.raises(ValueError):
        range_chunks(start, end, step)


@settings(deadline=None)  # the property is about coverage, not speed
@given(
    start=st.integers(0, 2_000_000_000_000),
    steps=st.integers(0, 30_000),
    step=st.integers(1, 10**6),
    off_grid=st.integers(0, 10**6 - 1),
    max_points=st.integers(1, 25_000),
)
def test_chunks_cover_the_grid_exactly_and_respect_the_limit(
    start: int, steps: int, step: int, off_grid: int, max_points: int
) -> None:
    end = start + steps * step + off_grid % step
    chunks = range_chunks(start, end, step, max_points)
    assert all((last - first) // step + 1 <= max_points for first, last in chunks)
    assert grid(chunks, step) == list(range(start, end + 1, step))


def test_times_are_sent_as_exact_milliseconds() -> None:
    assert format_time_ms(1_772_366_400_001) == "1772366400.001"
    assert format_time_ms(1) == "0.001"
    assert to_ms(T0 + timedelta(milliseconds=250)) == 1_772_366_400_250
    with pytest.raises(ValueError):
        to_ms(datetime(2026, 3, 1))


# ---- parsing -------------------------------------------------------------------------------


def test_vector_values_include_nan_and_infinities() -> None:
    answer = parse_envelope(
        200,
        vector(
            ({"svc": "a"}, "1.5"),
            ({"svc": "b"}, "NaN"),
            ({"svc": "c"}, "+Inf"),
            ({"svc": "d"}, "-Inf"),
        ),
    )
    assert not isinstance(answer, QueryError)
    result = parse_instant(answer.data, answer.warnings)
    assert isinstance(result, Ok)
    values = {s.labels["svc"]: s.value for s in result.samples}
    assert values["a"] == 1.5 and values["b"] != values["b"]
    assert values["c"] == float("inf") and values["d"] == float("-inf")


def test_a_scalar_is_one_sample_without_labels() -> None:
    body = envelope(status="success", data={"resultType": "scalar", "result": [1.0, "2"]})
    answer = parse_envelope(200, body)
    assert not isinstance(answer, QueryError)
    assert parse_instant(answer.data) == Ok([Sample({}, 2.0)], result_type="scalar")


def test_warnings_are_kept() -> None:
    body = envelope(
        status="success", data={"resultType": "vector", "result": []}, warnings=["partial"]
    )
    answer = parse_envelope(200, body)
    assert not isinstance(answer, QueryError)
    assert parse_instant(answer.data, answer.warnings) == Ok([], warnings=["partial"])


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (400, envelope(status="error", errorType="bad_data", error="parse error"), "bad_data"),
        (422, envelope(status="error", errorType="execution", error="many-to-many"), "execution"),
        (503, envelope(status="error", errorType="timeout", error="query timed out"), "timeout"),
        (503, envelope(status="error", errorType="canceled", error="canceled"), "canceled"),
        (422, envelope(status="error", errorType="novel", error="new kind"), "execution"),
        (503, b"<html>Service Unavailable</html>", "unavailable"),
        (502, b"bad gateway", "unavailable"),
        (404, b"404 page not found", "unexpected"),
        (200, b"not json", "unexpected"),
        (200, envelope(status="success"), "unexpected"),
    ],
)
def test_error_answers_map_to_kinds(status: int, body: bytes, kind: str) -> None:
    error = parse_envelope(status, body)
    assert isinstance(error, QueryError)
    assert error.kind == kind


def test_prometheus_error_message_is_kept_verbatim() -> None:
    body = envelope(status="error", errorType="bad_data", error='1:5: parse error: unexpected "}"')
    assert parse_envelope(400, body) == QueryError("bad_data", '1:5: parse error: unexpected "}"')


@pytest.mark.parametrize("result_type", ["matrix", "string"])
def test_results_that_are_not_comparable_are_errors(result_type: str) -> None:
    result = parse_instant({"resultType": result_type, "result": []})
    assert isinstance(result, QueryError) and result_type in result.message


def test_malformed_vector_is_an_error_not_an_exception() -> None:
    result = parse_instant({"resultType": "vector", "result": [{"metric": {}}]})
    assert isinstance(result, QueryError) and result.kind == "unexpected"


def test_merge_orders_points_drops_duplicates_and_joins_by_labels() -> None:
    a, b = {"svc": "a"}, {"svc": "b"}
    merged = merge_series(
        [
            [Series(b, [(3.0, 3.0)]), Series(a, [(1.0, 1.0), (2.0, 2.0)])],
            [Series(a, [(2.0, 2.0), (3.0, 3.0)]), Series(b, [(4.0, 4.0)])],
        ]
    )
    assert merged == [
        Series(a, [(1.0, 1.0), (2.0, 2.0), (3.0, 3.0)]),
        Series(b, [(3.0, 3.0), (4.0, 4.0)]),
    ]


# ---- transport against a fake --------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes = field(default_factory=lambda: vector(({}, "1")))
    delay: float = 0.0


@dataclass
class FakePrometheus:
    """Answers `/api/v1/query` and `/api/v1/query_range` through `reply(path, form)`."""

    reply: Callable[[str, dict[str, str]], Reply]
    requests: list[tuple[str, dict[str, str], dict[str, str]]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.requests.append(
            (request.path, {k: str(v) for k, v in form.items()}, dict(request.headers))
        )
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            reply = self.reply(request.path, {k: str(v) for k, v in form.items()})
            if reply.delay:
                await asyncio.sleep(reply.delay)
            return web.Response(
                status=reply.status, body=reply.body, content_type="application/json"
            )
        finally:
            self.in_flight -= 1

    def queries(self) -> list[str]:
        return [form["query"] for _, form, _ in self.requests]


@asynccontextmanager
async def fake_prometheus(
    reply: Callable[[str, dict[str, str]], Reply],
) -> AsyncIterator[FakePrometheus]:
    fake = FakePrometheus(reply)
    app = web.Application()
    app.router.add_post("/api/v1/query", fake.handle)
    app.router.add_post("/api/v1/query_range", fake.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def test_identical_queries_are_sent_once_and_all_answered() -> None:
    async def scenario() -> None:
        async with fake_prometheus(lambda path, form: Reply()) as fake:
            async with PrometheusClient(fake.url) as client:
                results = await client.instant_many(
                    ["up", "rate(x[5m])", "up", "up", "rate(x[5m])"], T0
                )
        assert sorted(fake.queries()) == ["rate(x[5m])", "up"]
        assert set(results) == {"up", "rate(x[5m])"}
        assert all(isinstance(r, Ok) for r in results.values())
        assert {form["time"] for _, form, _ in fake.requests} == {"1772366400.000"}

    run(scenario)


def test_concurrency_is_bounded() -> None:
    async def scenario() -> None:
        async with fake_prometheus(lambda path, form: Reply(delay=0.05)) as fake:
            async with PrometheusClient(fake.url, concurrency=3) as client:
                results = await client.instant_many([f"q{i}" for i in range(12)])
        assert len(results) == 12
        assert fake.max_in_flight == 3

    run(scenario)


def test_a_slow_query_times_out_alone() -> None:
    def reply(path: str, form: dict[str, str]) -> Reply:
        return Reply(delay=30) if form["query"] == "slow" else Reply()

    async def scenario() -> None:
        async with fake_prometheus(reply) as fake:
            async with PrometheusClient(fake.url, timeout=0.5, concurrency=2) as client:
                started = time.monotonic()
                results = await client.instant_many(["slow", *[f"fast{i}" for i in range(20)]])
                elapsed = time.monotonic() - started
        assert results["slow"] == QueryError("unavailable", "no answer within 0.5s")
        assert all(isinstance(results[f"fast{i}"], Ok) for i in range(20))
        assert elapsed < 5  # bounded by the one timeout, not 30 s
        assert {form["timeout"] for _, form, _ in fake.requests} == {"0.5"}

    run(scenario)


def test_503_from_prometheus_is_a_timeout_error_and_others_are_unaffected() -> None:
    def reply(path: str, form: dict[str, str]) -> Reply:
        if form["query"] == "heavy":
            body = envelope(
                status="error",
                errorType="timeout",
                error="query timed out in expression evaluation",
            )
            return Reply(status=503, body=body)
        return Reply()

    async def scenario() -> None:
        async with fake_prometheus(reply) as fake, PrometheusClient(fake.url) as client:
            results = await client.instant_many(["heavy", "light"])
        assert results["heavy"] == QueryError("timeout", "query timed out in expression evaluation")
        assert isinstance(results["light"], Ok)

    run(scenario)


def test_connection_refused_is_unavailable() -> None:
    async def scenario() -> None:
        async with PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout=2) as client:
            result = await client.instant("up")
        assert isinstance(result, QueryError) and result.kind == "unavailable"

    run(scenario)


def test_caller_headers_are_sent_and_never_shown() -> None:
    secret = "Bearer s3cr3t-token"

    async def scenario() -> None:
        async with fake_prometheus(lambda path, form: Reply()) as fake:
            client = PrometheusClient(fake.url, headers={"Authorization": secret})
            await client.instant("up")
            await client.close()
        assert fake.requests[0][2]["Authorization"] == secret
        assert secret not in repr(client)

    run(scenario)


def test_range_is_chunked_and_merged() -> None:
    start, step = T0, timedelta(seconds=1)
    end = start + timedelta(seconds=25_000)

    def reply(path: str, form: dict[str, str]) -> Reply:
        first, last, step_s = (float(form[k]) for k in ("start", "end", "step"))
        count = round((last - first) / step_s) + 1
        values = [[first + i * step_s, str(first + i * step_s)] for i in range(count)]
        result = [{"metric": {"svc": "a"}, "values": values}]
        return Reply(
            body=envelope(status="success", data={"resultType": "matrix", "result": result})
        )

    async def scenario() -> None:
        async with fake_prometheus(reply) as fake, PrometheusClient(fake.url) as client:
            series = await client.range("x", start, end, step)
        forms = sorted((form for _, form, _ in fake.requests), key=lambda f: float(f["start"]))
        assert len(forms) == 3
        for form in forms:
            points = round((float(form["end"]) - float(form["start"])) / float(form["step"])) + 1
            assert points <= MAX_POINTS_PER_SERIES
        assert [s.labels for s in series] == [{"svc": "a"}]
        times = [ts for ts, _ in series[0].points]
        assert len(times) == 25_001
        assert times == sorted(set(times))
        assert times[0] == start.timestamp() and times[-1] == end.timestamp()

    run(scenario)


def test_a_failed_range_chunk_fails_the_whole_range() -> None:
    def reply(path: str, form: dict[str, str]) -> Reply:
        if float(form["start"]) > T0.timestamp():
            body = envelope(status="error", errorType="execution", error="boom")
            return Reply(status=422, body=body)
        return Reply(body=envelope(status="success", data={"resultType": "matrix", "result": []}))

    async def scenario() -> None:
        async with fake_prometheus(reply) as fake, PrometheusClient(fake.url) as client:
            with pytest.raises(QueryFailed) as failed:
                await client.range("x", T0, T0 + timedelta(seconds=20_000), timedelta(seconds=1))
        assert failed.value.error == QueryError("execution", "boom")

    run(scenario)
