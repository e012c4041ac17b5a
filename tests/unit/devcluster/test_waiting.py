"""devcluster.waiting: the event-loop twin of wait_for returns the probe's answer once it has
one, and fails with what it waited for once the deadline passes."""

from __future__ import annotations

import asyncio

import pytest

from runbook_operator.devcluster.waiting import Timeout, wait_until


def test_wait_until_returns_the_answer_once_another_task_gives_it() -> None:
    async def scenario() -> str:
        found: list[str] = []

        async def answer() -> None:
            found.append("ready")

        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(answer()))
        return (await wait_until(lambda: found, "the answer", timeout=5))[0]

    assert asyncio.run(scenario()) == "ready"


def test_wait_until_names_what_it_waited_for_when_the_deadline_passes() -> None:
    with pytest.raises(Timeout, match="waiting for nothing at all"):
        asyncio.run(wait_until(lambda: None, "nothing at all", timeout=0.05))
