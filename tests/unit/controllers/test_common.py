"""controllers.common: the periodic reconcile of every object of a kind (resync_forever), and
the status write from the copy a watch event gave (update_status_from)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from runbook_operator.controllers.common import (
    RESYNC_PAGE,
    resync_forever,
    update_status_from,
)
from runbook_operator.devcluster.waiting import wait_for
from runbook_operator.integrations.kubeapi import Gone
from urllib3.exceptions import MaxRetryError

from tests.support.fakes import FakeKube


def policy(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "shop"}}


def test_resync_outlives_an_unreachable_api_server_and_a_failing_object() -> None:
    """A LIST that finds no API server is logged and tried again next interval, and one
    object's failure does not stop the others."""
    answers: list[Any] = [MaxRetryError(None, "/apis", "connection refused"),
                          [policy("broken"), policy("fine")]]
    seen: list[str] = []

    class Listing:
        def pages(self, api_version: str, kind: str, namespaces: list[str | None],
                  size: int, field_selector: str | None = None) -> Any:
            answer = answers.pop(0) if answers else []
            if isinstance(answer, Exception):
                raise answer
            yield answer

    def reconcile(body: dict[str, Any]) -> None:
        seen.append(body["metadata"]["name"])
        if body["metadata"]["name"] == "broken":
            raise RuntimeError("a bug in one object's reconcile")

    async def scenario() -> None:
        task = asyncio.create_task(resync_forever(
            Listing(), "BackupPolicy", [], 0.01, logging.getLogger("test"),  # type: ignore[arg-type]
            reconcile))
        await asyncio.to_thread(wait_for, lambda: len(seen) >= 2, "two reconciles", 10)
        task.cancel()

    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert seen == ["broken", "fine"]
    assert answers == []  # the failed LIST was tried again


def test_a_resync_pass_asks_for_the_next_page_once_the_last_one_is_reconciled() -> None:
    """One page held at a time; an error mid-pass (an expired continue token: 410 Gone) ends
    the pass, and the next interval starts from the first page again."""
    log: list[str] = []
    passes = [0]

    class Paging:
        def pages(self, api_version: str, kind: str, namespaces: list[str | None],
                  size: int, field_selector: str | None = None) -> Any:
            passes[0] += 1
            assert size == RESYNC_PAGE
            log.append(f"page 1 of pass {passes[0]}")
            yield [policy("a"), policy("b")]
            if passes[0] == 1:
                raise Gone(410, "Gone", "")
            log.append(f"page 2 of pass {passes[0]}")
            yield [policy("c")]

    async def scenario() -> None:
        task = asyncio.create_task(resync_forever(
            Paging(), "BackupPolicy", [], 0.01, logging.getLogger("test"),  # type: ignore[arg-type]
            lambda body: log.append(body["metadata"]["name"])))
        await asyncio.to_thread(wait_for, lambda: "c" in log, "the second pass done", 10)
        task.cancel()

    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert log[:8] == ["page 1 of pass 1", "a", "b",
                       "page 1 of pass 2", "a", "b", "page 2 of pass 2", "c"]


def test_a_resync_pass_lists_what_its_field_selector_selects_and_skips_objects_going() -> None:
    """The sources of incidents: thousands of AlertRules, few asking for incidents; the API
    server sends those few, and one being deleted is not reconciled."""
    seen: list[str] = []
    selectors: list[str | None] = []

    class Listing:
        def pages(self, api_version: str, kind: str, namespaces: list[str | None],
                  size: int, field_selector: str | None = None) -> Any:
            selectors.append(field_selector)
            yield [policy("asks"), {"metadata": {**policy("going")["metadata"],
                                                 "deletionTimestamp": "x"}}, policy("last")]

    async def scenario() -> None:
        task = asyncio.create_task(resync_forever(
            Listing(), "AlertRule", [], 0.01, logging.getLogger("test"),  # type: ignore[arg-type]
            lambda body: seen.append(body["metadata"]["name"]),
            field_selector="spec.incident.severity!="))
        await asyncio.to_thread(wait_for, lambda: len(seen) >= 4, "two passes", 10)
        task.cancel()

    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert seen[:4] == ["asks", "last", "asks", "last"]
    assert set(selectors) == {"spec.incident.severity!="}


def counted(body: dict[str, Any]) -> dict[str, Any]:
    """A status change that counts the reconciles it was computed from: one more than the
    status it is given."""
    return {"reconciles": (body.get("status") or {}).get("reconciles", 0) + 1}


def stored(resource_version: str, reconciles: int) -> dict[str, Any]:
    return {"apiVersion": "runbook.dev/v1alpha1", "kind": "BackupPolicy",
            "metadata": {"name": "db", "namespace": "shop",
                         "resourceVersion": resource_version},
            "status": {"reconciles": reconciles}}


def test_a_status_write_from_the_event_copy_reads_nothing() -> None:
    """The copy the watch event gave (kopf's read-only view) is current: one guarded patch,
    no read."""
    kube = FakeKube(stored("7", 1))
    written = update_status_from(kube, "runbook.dev/v1alpha1", "BackupPolicy",
                                 kopf.Body(stored("7", 1)), counted)
    assert kube.requests == ["patch"]
    assert written is not None and written["status"] == {"reconciles": 2}


def test_a_stale_copy_is_computed_again_from_a_fresh_read() -> None:
    """Someone wrote since the event: the guarded patch conflicts, and the change is made
    again on what they wrote, so neither write is lost."""
    kube = FakeKube(stored("9", 5))
    written = update_status_from(kube, "runbook.dev/v1alpha1", "BackupPolicy", stored("7", 1),
                                 counted)
    assert kube.requests == ["patch", "update"]
    assert written is not None and written["status"] == {"reconciles": 6}


def test_nothing_to_change_makes_no_request() -> None:
    kube = FakeKube(stored("7", 1))
    event = stored("7", 1)
    written = update_status_from(kube, "runbook.dev/v1alpha1", "BackupPolicy", event,
                                 lambda body: None)
    assert kube.requests == []
    assert written == event and written is not event
