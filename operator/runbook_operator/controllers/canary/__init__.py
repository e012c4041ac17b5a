"""CanaryRollout: the controller (registration and the scheduler's side); one tick of one
rollout is `reconcile.tick`, its effects `workloads.make_so`, the decisions `core.canary`;
a deleted one's ticks are `deletion.tick` until its finalizer is released."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from runbook_operator.api.canaryrollout import CanaryRollout, CanaryRolloutStatus
from runbook_operator.controllers.canary import deletion, metrics
from runbook_operator.controllers.canary.reads import TickReads
from runbook_operator.controllers.canary.reconcile import (
    STEADY,
    Analysts,
    Compiled,
    Prepared,
    new_commands,
    prepare,
    tick,
)
from runbook_operator.controllers.errors import TRANSIENT_API_ERRORS, transient_error_message
from runbook_operator.controllers.registration import Operator, register_kind
from runbook_operator.controllers.scheduler import Item, Key, Scheduler
from runbook_operator.core.canary.pacing import route_of, waits_on_route
from runbook_operator.integrations.routers.gatewayapi import answered

log = logging.getLogger(__name__)
#: After a failed tick (the API server or Prometheus unreachable), the next one.
RETRY_SECONDS = 2.0
#: The routes the Gateway API router writes: their Gateways' reports wake rollouts.
ROUTE_RESOURCE = ("gateway.networking.k8s.io", "v1", "httproutes")


class Rollouts:
    """Every CanaryRollout on the shared scheduler (see `scheduler.Kind`)."""

    def __init__(self, operator: Operator) -> None:
        self.kube = operator.kube
        self.analysts = Analysts(operator.kube, operator.config.default_prometheus)
        self.scheduler: Scheduler[Prepared] = Scheduler(self, "CanaryRollout tick")

    def prepare(self, body: Mapping[str, Any]) -> Prepared:
        return prepare(body)

    def first_due(self, body: Mapping[str, Any], prepared: Prepared, now: float) -> float:
        return now

    def period(self, prepared: Prepared) -> float:
        return STEADY.total_seconds()

    def forgotten(self, key: Key) -> None:
        metrics.forget(*key)

    async def dispatch(self, items: list[Item[Prepared]]) -> None:
        for item in items:
            self.scheduler.start(self._tick(item), [item.key])

    async def _tick(self, item: Item[Prepared]) -> None:
        newest: Mapping[str, Any] | None = None
        next_in = RETRY_SECONDS
        kube = TickReads(self.kube)
        body = item.body
        try:
            if body["metadata"].get("deletionTimestamp"):
                outcome = await deletion.tick(kube, body, item.prepared)
            else:
                body = await asyncio.to_thread(deletion.hold, kube, body)
                outcome = await tick(kube, self.analysts, body, item.prepared)
            newest, next_in = outcome.body, outcome.next_in.total_seconds()
        except TRANSIENT_API_ERRORS as error:
            log.warning("CanaryRollout %s/%s: %s; again in %ss", *item.key,
                        transient_error_message(error), RETRY_SECONDS)
        finally:
            self.scheduler.schedule(item.key, self.scheduler.clock() + next_in)
            self.scheduler.done(item.key, newest)

    def deleting(self, body: Mapping[str, Any]) -> None:
        """A watch event of a rollout being deleted: its revert starts at once."""
        self.scheduler.upsert(body)
        meta = body["metadata"]
        self.scheduler.wake((meta["namespace"], meta["name"]))

    def changed(self, body: Mapping[str, Any]) -> None:
        """A watch event: keep the newest copy; a manual command is acted on at once."""
        self.scheduler.upsert(body)
        status = CanaryRolloutStatus.model_validate(body.get("status") or {})
        if new_commands(body, status):
            meta = body["metadata"]
            self.scheduler.wake((meta["namespace"], meta["name"]))

    def route_changed(self, route: Mapping[str, Any]) -> None:
        """An HTTPRoute's watch event: once its Gateways have reported on its current
        generation, the rollouts waiting to read their weight back from it look now (their
        next look would come up to a second later)."""
        if not answered(route):
            return
        namespace, name = route["metadata"]["namespace"], route["metadata"]["name"]
        for key, item in list(self.scheduler.items.items()):
            if key[0] != namespace or not isinstance(item.prepared, Compiled) \
                    or route_of(item.prepared.spec) != name:
                continue
            status = CanaryRolloutStatus.model_validate(item.body.get("status") or {})
            if waits_on_route(item.prepared.spec, status, name, key in self.scheduler.in_flight):
                self.scheduler.wake(key)

    async def run_forever(self) -> None:
        try:
            await self.scheduler.run_forever()
        finally:
            await asyncio.shield(self.analysts.close())


def register(operator: Operator) -> None:
    """Attach the CanaryRollout handlers and the loop that runs the rollouts."""
    rollouts = Rollouts(operator)

    async def rollout_changed(body: kopf.Body, **_: Any) -> None:
        rollouts.changed(body)

    async def rollout_gone(body: kopf.Body, event: Mapping[str, Any], **_: Any) -> None:
        if event.get("type") == "DELETED":
            rollouts.scheduler.forget((body["metadata"]["namespace"], body["metadata"]["name"]))
        else:
            rollouts.deleting(body)

    async def route_changed(body: kopf.Body, **_: Any) -> None:
        rollouts.route_changed(body)

    register_kind(operator, CanaryRollout, changed=rollout_changed, gone=rollout_gone,
                  loop=lambda _: rollouts.run_forever())
    kopf.on.event(*ROUTE_RESOURCE, registry=operator.registry,
                  id="httproutes-of-rollouts")(route_changed)
