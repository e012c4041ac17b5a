"""How a kind joins the operator: its watch handler, its periodic resync, and the background
loops that run while the operator does — started at start-up and cancelled at clean-up in one
place for every kind."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from runbook_operator.api.common import GROUP, VERSION, Resource
from runbook_operator.controllers.common import resync_forever
from runbook_operator.core.alertrule.status import HEARTBEAT_WRITES_PER_SECOND
from runbook_operator.integrations.alertmanager_receiver import ReceiverConfig
from runbook_operator.integrations.kubernetes import Kube

Logger = logging.Logger | kopf.Logger
#: A background loop, given the start-up logger.
Loop = Callable[[Logger], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class OperatorConfig:
    """Operator-wide settings (the flags of `runbook-operator run`) the kinds read."""

    runner_image: str
    """Image of backup and restore Jobs."""
    default_prometheus: str | None = None
    """Prometheus for AlertRules that do not name one."""
    prometheus_external_url: str = ""
    """That Prometheus as people reach it: alerts link their query there."""
    external_url: str = ""
    """Where people reach the operator: every Alertmanager-style message's externalURL."""
    resync_seconds: float = 60.0
    """How often every object of a kind is reconciled again."""
    namespaces: tuple[str, ...] = ()
    """Namespaces watched (empty: all)."""
    alertmanager: ReceiverConfig | None = None
    """The Alertmanager receiver (None: not served)."""
    alert_heartbeat_writes: float = HEARTBEAT_WRITES_PER_SECOND
    """AlertRule status heartbeats a second at most, all rules together (0: no bound)."""


@dataclass
class Operator:
    """What the kinds register into."""

    registry: kopf.OperatorRegistry
    settings: kopf.OperatorSettings
    kube: Kube
    config: OperatorConfig
    loops: list[Loop] = field(default_factory=list)


def _going(event: Mapping[str, Any], body: kopf.Body, **_: Any) -> bool:
    """Deleted, or being deleted."""
    return event.get("type") == "DELETED" or bool(body["metadata"].get("deletionTimestamp"))


def _staying(event: Mapping[str, Any], body: kopf.Body, **_: Any) -> bool:
    return not _going(event, body)


def register_kind(
    operator: Operator,
    resource: type[Resource],
    *,
    changed: Callable[..., Any],
    gone: Callable[..., Any] | None = None,
    resync: Callable[[dict[str, Any], Logger], None] | None = None,
    loop: Loop | None = None,
) -> None:
    """Attach one kind. `changed` and `gone` are kopf event handlers (called with kopf's
    keyword arguments: body, logger, ...; blocking ones run in kopf's thread pool): `changed`
    for every watch event of an object that stays, `gone` when one is deleted or being
    deleted. `resync(body, logger)` runs for every object each resync interval, and `loop`
    for as long as the operator runs."""
    plural = resource.info.plural
    kopf.on.event(GROUP, VERSION, plural, registry=operator.registry, id=f"{plural}-changed",
                  when=_staying)(changed)
    if gone is not None:
        kopf.on.event(GROUP, VERSION, plural, registry=operator.registry, id=f"{plural}-gone",
                      when=_going)(gone)
    if resync is not None:
        config, kind = operator.config, resource.info.kind

        def resyncing(logger: Logger) -> Coroutine[Any, Any, None]:
            return resync_forever(operator.kube, kind, list(config.namespaces),
                                  config.resync_seconds, logger,
                                  lambda body: resync(body, logger))

        operator.loops.append(resyncing)
    if loop is not None:
        operator.loops.append(loop)


def run_loops(operator: Operator) -> None:
    """Start every kind's background loops with the operator and cancel them at clean-up."""

    @kopf.on.startup(registry=operator.registry, id="start-background-loops")
    async def start_loops(memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
        memo.background_loops = [asyncio.create_task(loop(logger)) for loop in operator.loops]

    @kopf.on.cleanup(registry=operator.registry, id="stop-background-loops")
    async def stop_loops(memo: kopf.Memo, **_: Any) -> None:
        for task in memo.background_loops:
            task.cancel()
