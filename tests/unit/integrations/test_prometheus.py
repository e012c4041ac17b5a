"""PrometheusClient: the pure pieces (chunking, envelope parsing, merging, which queries may
join a union) directly, and the transport against an in-test aiohttp server for what a real
Prometheus cannot be made to do on demand (503s, answers slower than the timeout, non-API
answers) and for counting which queries went in which request (unions, fallbacks, what is
remembered). tests/e2e/test_prometheus.py covers the same client against a real Prometheus."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from runbook_operator.devcluster.waiting import free_port
from runbook_operator.integrations import prometheus
from runbook_operator.integrations.prometheus import (
    MAX_POINTS_PER_SERIES,
    UNION_LABEL,
    Ok,
    PrometheusClient,
    QueryError,
    QueryFailed,
    Sample,
    Series,
    can_join_union,
    format_time_ms,
    merge_series,
    parse_envelope,
    parse_instant,
    range_chunks,
    to_ms,
    union_form,
    union_query,
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


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


OPERAND = re.compile(
    r'label_replace\(\(\n(.*?)\n\), "' + UNION_LABEL + r'", "(\d+)", "", ""\)', re.DOTALL
)


def operands(query: str) -> list[str]:
    """The queries a request carried: a union's operands in order, or the query itself."""
    return [m[1] for m in OPERAND.finditer(query)] or [query]


def error(status: int, error_type: str, message: str) -> Reply:
    return Reply(status, envelope(status="error", errorType=error_type, error=message))


@dataclass
class Engine:
    """Prometheus' answers to the queries a test knows, alone or as union operands (as the
    client writes them). Like Prometheus, a union fails as a whole: a scalar operand does not
    parse, a failing one fails it with its error (here with a message of its own, so a result
    shows which request it came from), and the slowest operand delays it."""

    vectors: dict[str, list[tuple[dict[str, str], str]]] = field(default_factory=dict)
    scalars: dict[str, str] = field(default_factory=dict)
    errors: dict[str, Reply] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def answer(self, query: str) -> Reply:
        if query in self.errors:
            return self.errors[query]
        if query in self.scalars:
            data = {"resultType": "scalar", "result": [1772366400.0, self.scalars[query]]}
            return Reply(body=envelope(status="success", data=data, warnings=self.warnings))
        if query in self.vectors:
            result = [
                {"metric": labels, "value": [1772366400.0, value]}
                for labels, value in self.vectors[query]
            ]
            data = {"resultType": "vector", "result": result}
            return Reply(body=envelope(status="success", data=data, warnings=self.warnings))
        return error(400, "bad_data", f"unknown query {query!r}")

    def reply(self, path: str, form: dict[str, str]) -> Reply:
        query = form["query"]
        delay = max(self.delays.get(q, 0.0) for q in operands(query))
        if OPERAND.search(query) is None:
            return replace(self.answer(query), delay=delay)
        tagged = []
        for position, (operand, tag) in enumerate(OPERAND.findall(query)):
            assert tag == str(position)
            if operand in self.scalars:
                return error(400, "bad_data", "expected type instant vector, got scalar")
            alone = self.answer(operand)
            if alone.status != 200:
                body = json.loads(alone.body)
                return replace(
                    error(alone.status, body["errorType"], f"in a union: {body['error']}"),
                    delay=delay,
                )
            tagged += [
                {**item, "metric": {**item["metric"], UNION_LABEL: tag}}
                for item in json.loads(alone.body)["data"]["result"]
            ]
        data = {"resultType": "vector", "result": tagged}
        body = envelope(status="success", data=data, warnings=self.warnings)
        return Reply(body=body, delay=delay)


def test_identical_queries_are_sent_once_and_all_answered() -> None:
    engine = Engine(vectors={"up": [({"job": "a"}, "1")], "rate(x[5m])": [({}, "2")]})

    async def scenario() -> None:
        async with fake_prometheus(engine.reply) as fake, PrometheusClient(fake.url) as client:
            results = await client.instant_many(
                ["up", "rate(x[5m])", "up", "up", "rate(x[5m])"], T0
            )
        assert [operands(q) for q in fake.queries()] == [["up", "rate(x[5m])"]]
        assert results == {
            "up": Ok([Sample({"job": "a"}, 1.0)]),
            "rate(x[5m])": Ok([Sample({}, 2.0)]),
        }
        assert {form["time"] for _, form, _ in fake.requests} == {"1772366400.000"}

    run(scenario)


def test_no_queries_send_no_request() -> None:
    async def scenario() -> None:
        async with fake_prometheus(Engine().reply) as fake, PrometheusClient(fake.url) as client:
            assert await client.instant_many([], T0) == {}
        assert fake.requests == []

    run(scenario)


def test_one_distinct_query_is_sent_as_itself() -> None:
    engine = Engine(vectors={"up": [({"job": "a"}, "1")]})

    async def scenario() -> None:
        async with fake_prometheus(engine.reply) as fake, PrometheusClient(fake.url) as client:
            results = await client.instant_many(["up", "up"], T0)
        assert fake.queries() == ["up"]
        assert results == {"up": Ok([Sample({"job": "a"}, 1.0)])}

    run(scenario)


def test_a_union_is_split_by_tag_and_the_tag_removed() -> None:
    engine = Engine(
        vectors={
            "errors": [
                ({"__name__": "errors", "svc": "a"}, "1"),
                ({"__name__": "errors", "svc": "b"}, "+Inf"),
            ],
            "absent": [],
            "sum(errors)": [({}, "3")],
            "also_errors": [({"__name__": "errors", "svc": "a"}, "1")],
        }
    )

    async def scenario() -> None:
        async with fake_prometheus(engine.reply) as fake, PrometheusClient(fake.url) as client:
            results = await client.instant_many(list(engine.vectors), T0)
        assert [operands(q) for q in fake.queries()] == [list(engine.vectors)]
        assert results == {
            "errors": Ok(
                [
                    Sample({"__name__": "errors", "svc": "a"}, 1.0),
                    Sample({"__name__": "errors", "svc": "b"}, float("inf")),
                ]
            ),
            "absent": Ok([]),
            "sum(errors)": Ok([Sample({}, 3.0)]),
            "also_errors": Ok([Sample({"__name__": "errors", "svc": "a"}, 1.0)]),
        }

    run(scenario)


def test_warnings_of_a_union_go_to_each_of_its_queries() -> None:
    engine = Engine(vectors={"a": [({}, "1")], "b": []}, warnings=["partial response"])

    async def scenario() -> None:
        async with fake_prometheus(engine.reply) as fake, PrometheusClient(fake.url) as client:
            results = await client.instant_many(["a", "b"], T0)
        assert len(fake.requests) == 1
        assert results == {
            "a": Ok([Sample({}, 1.0)], warnings=["partial response"]),
            "b": Ok([], warnings=["partial response"]),
        }

    run(scenario)


def test_a_bad_operand_fails_its_union_and_each_query_gets_its_own_answer() -> None:
    broken = "rate(errors[5x])"  # balanced, so it joins a union, but does not parse
    engine = Engine(
        vectors={"good1": [({"svc": "a"}, "1")], "good2": [({"svc": "b"}, "2")]},
        errors={broken: error(400, "bad_data", '1:13: parse error: bad duration syntax: "5x"')},
    )
    queries = ["good1", broken, "good2"]

    async def scenario() -> None:
        async with fake_prometheus(engine.reply) as fake, PrometheusClient(fake.url) as client:
            results = await client.instant_many(queries, T0)
            first = [operands(q) for q in fake.queries()]
            fake.requests.clear()
            again = await client.instant_many(queries, T0)
        assert first[0] == queries  # then each alone, in any order
        assert sorted(first[1:]) == [["good1"], ["good2"], [broken]]
        assert results == {
            "good1": Ok([Sample({"svc": "a"}, 1.0)]),
            broken: QueryError("bad_data", '1:13: parse error: bad duration syntax: "5x"'),
            "good2": Ok([Sample({"svc": "b"}, 2.0)]),
        }
        # Remembered: later calls send it alone and the rest as a union.
        assert sorted(map(operands, fake.queries())) == [["good1", "good2"], [broken]]
        assert again == results

    run(scenario)


def test_a_scalar_query_falls_back_and_is_then_sent_alone() -> None:
    engine = Engine(
        vectors={"a": [({"svc": "a"}, "1")], "b": [({"svc": "b"}, "2")]},
        scalars={"scalar(sum(a))": "1"},
    )
    queries = ["a", "scalar(sum(a))", "b"]
    expected = {
        "a": Ok([Sample({"svc": "a"}, 1.0)]),
        "scalar(sum(a))": Ok([Sample({}, 1.0)], result_type="scalar"),
        "b": Ok([Sample({"svc": "b"}, 2.0)]),
    }

    async def scenario() -> None:
        async with fake_prometheus(engine.reply) as fake, PrometheusClient(fake.url) as client:
            assert await client.instant_many(queries, T0) == expected
            sent = [operands(q) for q in fake.queries()]
            assert sent[0] == queries
            assert sorted(sent[1:]) == [["a"], ["b"], ["scalar(sum(a))"]]
            for _ in range(2):
                fake.requests.clear()
                assert await client.instant_many(queries, T0) == expected
                assert sorted(map(operands, fake.queries())) == [["a", "b"], ["scalar(sum(a))"]]

    run(scenario)


def test_a_remembered_query_rejoins_unions_once_it_answers_with_a_vector() -> None:
    engine = Engine(
        vectors={"a": [({}, "1")], "b": [({}, "2")]},
        errors={"x + on() y": error(422, "execution", "many-to-many matching not allowed")},
    )
    queries = ["a", "x + on() y", "b"]

    async def scenario() -> None:
        async with fake_prometheus(engine.reply) as fake, PrometheusClient(fake.url) as client:
            failed = await client.instant_many(queries, T0)
            assert failed["x + on() y"] == QueryError(
                "execution", "many-to-many matching not allowed"
            )
            del engine.errors["x + on() y"]  # the duplicate series are gone
            engine.vectors["x + on() y"] = [({}, "3")]
            fake.requests.clear()
            healed = await client.instant_many(queries, T0)
            assert sorted(map(operands, fake.queries())) == [["a", "b"], ["x + on() y"]]
            fake.requests.clear()
            assert await client.instant_many(queries, T0) == healed
            assert [operands(q) for q in fake.queries()] == [queries]
        assert healed["x + on() y"] == Ok([Sample({}, 3.0)])

    run(scenario)


def test_remembered_queries_are_bounded_least_recently_failed_forgotten_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(prometheus, "MAX_REMEMBERED_ALONE", 2)
    engine = Engine(vectors={"good": [({}, "1")]})  # b1, b2, b3 are unknown: bad_data
    queries = ["good", "b1", "b2", "b3"]

    async def scenario() -> None:
        async with fake_prometheus(engine.reply) as fake, PrometheusClient(fake.url) as client:
            await client.instant_many(queries, T0)
            fake.requests.clear()
            results = await client.instant_many(queries, T0)
        sent = sorted(map(operands, fake.queries()))
        assert sent[:3] == [["b1"], ["b2"], ["b3"]]  # b1 was forgotten, so it joined a union
        assert sent[3:] == [["good"], ["good", "b1"]]
        assert isinstance(results["b1"], QueryError) and results["b1"].kind == "bad_data"

    run(scenario)


def test_unions_hold_at_most_union_size_queries_and_every_query_once() -> None:
    queries = [f'x{{i="{i}"}}' for i in range(250)]
    engine = Engine(vectors={q: [({"i": str(i)}, str(i))] for i, q in enumerate(queries)})

    async def scenario() -> None:
        async with (
            fake_prometheus(engine.reply) as fake,
            PrometheusClient(fake.url, union_size=100) as client,
        ):
            results = await client.instant_many(queries, T0)
        sent = [operands(q) for q in fake.queries()]
        assert sorted(map(len, sent)) == [83, 83, 84]
        assert sorted(q for union in sent for q in union) == sorted(queries)
        assert results == {
            q: Ok([Sample({"i": str(i)}, float(i))]) for i, q in enumerate(queries)
        }

    run(scenario)


@given(st.lists(st.text(), min_size=1, max_size=5))
def test_a_union_form_is_the_union_query_form_encoded(queries: list[str]) -> None:
    assert union_form(queries) == urlencode({"query": union_query(queries)})
    assert parse_qs(union_form(queries), keep_blank_values=True) == {
        "query": [union_query(queries)]}


def test_a_query_is_encoded_once_whichever_union_it_joins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    encoded: list[str] = []
    original = prometheus.quote_plus
    monkeypatch.setattr(prometheus, "quote_plus", lambda q: encoded.append(q) or original(q))
    prometheus._encoded.cache_clear()
    queries = [f'x{{i="{i}"}} + 1' for i in range(4)]
    engine = Engine(vectors={q: [({"i": str(i)}, str(i))] for i, q in enumerate(queries)})

    async def scenario() -> None:
        async with fake_prometheus(engine.reply) as fake, PrometheusClient(fake.url) as client:
            first = await client.instant_many(queries[:3], T0)
            again = await client.instant_many(queries[1:], T0 + timedelta(seconds=15))
        assert sorted(encoded) == sorted(queries)
        assert [operands(q) for q in fake.queries()] == [queries[:3], queries[1:]]
        assert first | again == {
            q: Ok([Sample({"i": str(i)}, float(i))]) for i, q in enumerate(queries)}

    run(scenario)


def test_union_size_one_sends_every_query_alone() -> None:
    engine = Engine(vectors={"a": [], "b": []})

    async def scenario() -> None:
        async with (
            fake_prometheus(engine.reply) as fake,
            PrometheusClient(fake.url, union_size=1) as client,
        ):
            await client.instant_many(["a", "b"], T0)
        assert sorted(fake.queries()) == ["a", "b"]

    run(scenario)
    with pytest.raises(ValueError):
        PrometheusClient("http://127.0.0.1:9090", union_size=0)


def test_an_answer_that_cannot_be_split_is_not_trusted() -> None:
    # A backend that loses the tag: every query is asked again on its own.
    async def scenario() -> None:
        async with (
            fake_prometheus(lambda path, form: Reply()) as fake,
            PrometheusClient(fake.url) as client,
        ):
            results = await client.instant_many(["a", "b"], T0)
        sent = [operands(q) for q in fake.queries()]
        assert sent[0] == ["a", "b"]
        assert sorted(sent[1:]) == [["a"], ["b"]]
        assert results == {"a": Ok([Sample({}, 1.0)]), "b": Ok([Sample({}, 1.0)])}

    run(scenario)


def test_a_query_that_could_reach_into_other_operands_is_sent_alone() -> None:
    forged = f'vector(1)), "{UNION_LABEL}", "0", "", "") or label_replace((vector(2)'
    engine = Engine(vectors={"a": [], "b": []})

    async def scenario() -> None:
        async with fake_prometheus(engine.reply) as fake, PrometheusClient(fake.url) as client:
            results = await client.instant_many(["a", "x) or (y", forged, "b"], T0)
        unions = [q for q in fake.queries() if OPERAND.search(q)]
        assert [operands(q) for q in unions] == [["a", "b"]]
        assert sorted(set(fake.queries()) - set(unions)) == sorted([forged, "x) or (y"])
        assert results["a"] == Ok([]) and results["b"] == Ok([])
        assert isinstance(results["x) or (y"], QueryError)

    run(scenario)


@pytest.mark.parametrize(
    "query",
    [
        'sum by (svc) (rate(http_requests_total{path="/a(b]"}[5m]))',
        "max_over_time(x[10m:1m]) > on(svc) group_left y",
        "x{path=~`^/(a|b`} # a comment with ) or ( and a quote \"",
        r'x{msg="a \"quoted\" )"}',
        r"x{msg='it\'s ('}",
        "x{path=~`multi\nline (`}",
    ],
)
def test_balanced_queries_can_join_a_union(query: str) -> None:
    assert can_join_union(query)


@pytest.mark.parametrize(
    "query",
    [
        "x) or (y",
        "(x",
        "x[5m)",
        "sum(x]",
        'x{a="b}',
        'x{a="b\nc"}',
        "x{a=`b}",
        r'x{a="b\"}',
        f'label_replace(x, "{UNION_LABEL}", "7", "", "")',
    ],
)
def test_queries_that_do_not_close_what_they_open_or_name_the_tag_go_alone(query: str) -> None:
    assert not can_join_union(query)


def test_concurrency_is_bounded_for_unions() -> None:
    queries = [f"q{i}" for i in range(12)]
    engine = Engine(vectors={q: [] for q in queries}, delays=dict.fromkeys(queries, 0.05))

    async def scenario() -> None:
        async with (
            fake_prometheus(engine.reply) as fake,
            PrometheusClient(fake.url, concurrency=3, union_size=2) as client,
        ):
            results = await client.instant_many(queries)
        assert len(results) == 12
        assert len(fake.requests) == 6
        assert fake.max_in_flight == 3

    run(scenario)


def test_a_slow_query_times_out_alone_and_is_then_kept_out_of_unions() -> None:
    fast = [f"fast{i}" for i in range(20)]
    engine = Engine(vectors={q: [] for q in ["slow", *fast]}, delays={"slow": 30})

    async def scenario() -> None:
        async with (
            fake_prometheus(engine.reply) as fake,
            PrometheusClient(fake.url, timeout=0.5, concurrency=2) as client,
        ):
            started = time.monotonic()
            results = await client.instant_many(["slow", *fast])
            elapsed = time.monotonic() - started
            assert results["slow"] == QueryError("unavailable", "no answer within 0.5s")
            assert all(results[q] == Ok([]) for q in fast)
            assert elapsed < 5  # a timeout for the union, one for the query: not 30 s
            fake.requests.clear()
            again = await client.instant_many(["slow", *fast])
        assert again == results
        assert sorted(map(operands, fake.queries())) == [fast, ["slow"]]
        assert {form["timeout"] for _, form, _ in fake.requests} == {"0.5"}

    run(scenario)


def test_503_from_prometheus_is_a_timeout_error_and_others_are_unaffected() -> None:
    engine = Engine(
        vectors={"light": []},
        errors={
            "heavy": error(503, "timeout", "query timed out in expression evaluation"),
        },
    )

    async def scenario() -> None:
        async with fake_prometheus(engine.reply) as fake, PrometheusClient(fake.url) as client:
            results = await client.instant_many(["heavy", "light"])
        assert results["heavy"] == QueryError("timeout", "query timed out in expression evaluation")
        assert results["light"] == Ok([])

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
