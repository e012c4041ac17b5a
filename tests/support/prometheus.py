"""Module-scoped fixtures for tests that need a real Prometheus (and Alertmanager) from Debian:
import the ones a test module uses at its top level, e.g.
``from tests.support.prometheus import exporter, prometheus`` (pytest finds fixtures by
module attribute).

Each importing module gets its own servers (about 6 s to the first scrape: Prometheus' target
discovery publishes its first targets after a 5 s throttle). Start times are logged at INFO
(``-o log_cli=true --log-cli-level=INFO`` shows them)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from runbook_operator.devcluster.prometheus import (
    AlertmanagerServer,
    MetricsExporter,
    PrometheusServer,
)
from tests.support.receivers import HTTPReceiver

log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def exporter() -> Iterator[MetricsExporter]:
    with MetricsExporter() as server:
        yield server


@pytest.fixture(scope="module")
def prometheus(exporter: MetricsExporter) -> Iterator[PrometheusServer]:
    """Prometheus scraping `exporter` every second, its target already scraped once."""
    started = time.monotonic()
    with PrometheusServer([exporter.target]) as server:
        ready = time.monotonic() - started
        server.wait_targets_up()
        log.info(
            "Prometheus ready in %.2fs, first scrape after %.2fs",
            ready,
            time.monotonic() - started,
        )
        yield server


@pytest.fixture(scope="module")
def webhook_receiver() -> Iterator[HTTPReceiver]:
    with HTTPReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def alertmanager(webhook_receiver: HTTPReceiver) -> Iterator[AlertmanagerServer]:
    started = time.monotonic()
    with AlertmanagerServer(webhook_receiver.url("/alerts")) as server:
        log.info("Alertmanager ready in %.2fs", time.monotonic() - started)
        yield server
