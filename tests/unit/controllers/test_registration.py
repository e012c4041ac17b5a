"""controllers.registration: every kind attached by `register_kind`, one start-up and clean-up
for all background loops, and events routed to `changed` or `gone`."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
from runbook_operator.api.alertrule import AlertRule
from runbook_operator.api.notificationchannel import NotificationChannel
from runbook_operator.cli.main import _parser
from runbook_operator.cli.serve import NoDiffBase, operator_settings
from runbook_operator.controllers import register_all
from runbook_operator.controllers.registration import (
    Operator,
    OperatorConfig,
    register_kind,
    run_loops,
)

CONFIG = OperatorConfig(runner_image="runner:1", default_prometheus="http://prometheus",
                        resync_seconds=5, namespaces=("shop",))


def handlers(registry: kopf.OperatorRegistry) -> dict[str, Any]:
    return {h.id: h for h in registry._watching.get_all_handlers()}


def activities(registry: kopf.OperatorRegistry) -> dict[str, Any]:
    return {h.id: h for h in registry._activities.get_all_handlers()}


def event(type_: str, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": "shop", "name": "web"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"event": {"type": type_}, "body": {"metadata": meta}}


def test_every_kind_is_registered_once_with_one_pair_of_loop_handlers() -> None:
    registry, settings = kopf.OperatorRegistry(), kopf.OperatorSettings()
    register_all(registry, settings, object(), CONFIG)  # type: ignore[arg-type]
    assert {"backuppolicies-changed", "backuppolicies-gone", "notificationchannels-changed",
            "alertrules-changed", "alertrules-gone"} <= set(handlers(registry))
    assert set(activities(registry)) == {"start-background-loops", "stop-background-loops"}
    assert settings.watching.label_selectors["batch", "jobs"].startswith(
        "app.kubernetes.io/managed-by=runbook-operator,")


def test_kopf_keeps_no_copy_of_specs_as_no_handler_detects_changes() -> None:
    """The operator's kopf settings keep no last handled spec, which only change-detecting
    handlers (on.create, on.update, on.resume) and daemons would read: there are none."""
    registry = kopf.OperatorRegistry()
    register_all(registry, kopf.OperatorSettings(), object(), CONFIG)  # type: ignore[arg-type]
    assert handlers(registry)
    assert not registry._changing.get_all_handlers()
    assert not registry._spawning.get_all_handlers()
    storage = operator_settings(_parser().parse_args(["run"])).persistence.diffbase_storage
    assert isinstance(storage, NoDiffBase)
    body = kopf.Body({"metadata": {"name": "web", "annotations": {"a": "b"}},
                      "spec": {"query": "up"}})
    assert storage.build(body=body) == {} and storage.fetch(body=body) is None


def test_events_go_to_changed_unless_the_object_is_going_away() -> None:
    operator = Operator(kopf.OperatorRegistry(), kopf.OperatorSettings(), object(),  # type: ignore[arg-type]
                        CONFIG)
    register_kind(operator, AlertRule, changed=lambda **_: None, gone=lambda **_: None)
    found = handlers(operator.registry)
    changed, gone = found["alertrules-changed"], found["alertrules-gone"]
    for kwargs, going in [(event("ADDED"), False), (event("MODIFIED"), False),
                          (event("MODIFIED", deleting=True), True), (event("DELETED"), True)]:
        assert (changed.when(**kwargs), gone.when(**kwargs)) == (not going, going)


def test_loops_start_with_the_operator_and_are_cancelled_at_clean_up() -> None:
    operator = Operator(kopf.OperatorRegistry(), kopf.OperatorSettings(), object(),  # type: ignore[arg-type]
                        CONFIG)
    started: list[Any] = []

    async def forever(logger: Any) -> None:
        started.append(logger)
        await asyncio.Event().wait()

    register_kind(operator, AlertRule, changed=lambda **_: None, loop=forever)
    register_kind(operator, NotificationChannel, changed=lambda **_: None,
                  resync=lambda body, logger: None)
    run_loops(operator)
    assert len(operator.loops) == 2  # the loop, and the resync
    found = activities(operator.registry)
    memo = kopf.Memo()

    async def scenario() -> list[asyncio.Task[None]]:
        await found["start-background-loops"].fn(memo=memo, logger="startup-logger")
        await asyncio.wait_for(_until(lambda: started), 10)
        tasks = list(memo.background_loops)
        await found["stop-background-loops"].fn(memo=memo)
        await asyncio.gather(*tasks, return_exceptions=True)
        return tasks

    tasks = asyncio.run(scenario())
    assert started == ["startup-logger"]
    assert len(tasks) == 2 and all(t.cancelled() for t in tasks)


async def _until(condition) -> None:
    """Let the loop run until `condition` holds (callers put a deadline on it)."""
    while not condition():
        await asyncio.sleep(0)
