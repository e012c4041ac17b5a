"""controllers.metrics: the per-rule AlertRule series rendered straight to the text format
parse as Prometheus parses them, with every label value escaped; /metrics serves them."""

from __future__ import annotations

import asyncio
import math
import socket
from datetime import UTC, datetime

import httpx
from prometheus_client.parser import text_string_to_metric_families

from runbook_operator.cli.serve import serve_metrics
from runbook_operator.controllers import metrics
from runbook_operator.controllers.metrics import AlertRuleSeries
from runbook_operator.devcluster.waiting import free_port, wait_until

AWKWARD = 'a"b\\c\nd'


def parsed(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_each_rule_has_its_state_count_time_and_value() -> None:
    series = AlertRuleSeries()
    series.publish("shop", "errors", "Pending", 1_700_000_000.5, 0.25)
    series.publish("shop", "errors", "Firing", 1_700_000_015.5, 0.5)
    series.publish(AWKWARD, "latency", "Normal", 1_700_000_001.0, math.nan)
    samples = parsed(series.exposition())
    errors = (("namespace", "shop"), ("rule", "errors"))
    odd = (("namespace", AWKWARD), ("rule", "latency"))
    assert samples["runbook_alert_state"] == {(*errors, ("state", "Firing")): 1.0,
                                              (*odd, ("state", "Normal")): 1.0}
    assert samples["runbook_alert_evaluations_total"] == {errors: 2.0, odd: 1.0}
    assert samples["runbook_alert_last_evaluation_timestamp_seconds"][errors] == 1_700_000_015.5
    assert samples["runbook_alert_value"][errors] == 0.5
    assert math.isnan(samples["runbook_alert_value"][odd])


def test_a_forgotten_rule_has_no_series() -> None:
    series = AlertRuleSeries()
    series.publish("shop", "errors", "Firing", 1.0, 1.0)
    series.forget("shop", "errors")
    assert parsed(series.exposition()) == {}


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_metrics_serves_the_registry_and_the_rules_gzipped_when_asked() -> None:
    metrics.publish_alert("served", "rule", "Firing", datetime.now(UTC), "2")
    port = free_port()

    async def scrape() -> tuple[httpx.Response, httpx.Response]:
        server = asyncio.create_task(serve_metrics("127.0.0.1", port))
        try:
            await wait_until(lambda: listening(port), "the metrics server listening", 10)
            async with httpx.AsyncClient() as client:
                plain = await client.get(f"http://127.0.0.1:{port}/metrics",
                                         headers={"Accept-Encoding": "identity"})
                zipped = await client.get(f"http://127.0.0.1:{port}/metrics",
                                          headers={"Accept-Encoding": "gzip"})
            return plain, zipped
        finally:
            server.cancel()

    plain, zipped = asyncio.run(scrape())
    assert plain.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert parsed(zipped.text)["runbook_alert_value"] == parsed(plain.text)["runbook_alert_value"]
    samples = parsed(plain.text)
    assert samples["runbook_alert_value"][(("namespace", "served"), ("rule", "rule"))] == 2.0
    assert "runbook_alert_evaluation_seconds_count" in samples  # from the registry
