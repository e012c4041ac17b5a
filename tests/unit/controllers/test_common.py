"""controllers.common.resync_forever: the periodic reconcile of every object of a kind."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from runbook_operator.controllers.common import resync_forever
from runbook_operator.devcluster.waiting import wait_for
from urllib3.exceptions import MaxRetryError


def policy(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "shop"}}


def test_resync_outlives_an_unreachable_api_server_and_a_failing_object() -> None:
    """A LIST that finds no API server is logged and tried again next interval, and one
    object's failure does not stop the others."""
    answers: list[Any] = [MaxRetryError(None, "/apis", "connection refused"),
                          [policy("broken"), policy("fine")]]
    seen: list[str] = []

    class Listing:
        def list(self, api_version: str, kind: str, namespaces: list[str | None]) -> Any:
            answer = answers.pop(0) if answers else []
            if isinstance(answer, Exception):
                raise answer
            return answer

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
