"""Incidents on the shared scheduler: each is reconciled when it changes and at its next
deadline, which is computed from status (`escalation.nextDeadline`) and nothing else — no timer
per incident, nothing in memory that a restart could lose. At start-up every incident is
reconciled once, so steps that fell due while the operator was down are paged then.

Reconciles run in a pool of their own, so receivers that are slow or down hold up neither the
loop nor other incidents; an incident is never reconciled twice at once (the scheduler keeps it
in flight), and one that changes while in flight is reconciled again right after.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from runbook_operator.api.incident import IncidentSpec
from runbook_operator.controllers import metrics
from runbook_operator.controllers.errors import TRANSIENT_API_ERRORS, transient_error_message
from runbook_operator.controllers.escalationpolicy import PolicyStore
from runbook_operator.controllers.incident.reconcile import Memory, reconcile
from runbook_operator.controllers.scheduler import Item, Key, Scheduler
from runbook_operator.core.incident.configmaps import keeps_postmortem
from runbook_operator.integrations.kubernetes import Kube

#: Threads that reconcile incidents; each holds one while its notifications are delivered.
RECONCILE_THREADS = 16
#: How soon a reconcile that failed (API down, a bug) is tried again.
RETRY_SECONDS = 10.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """What the scheduler keeps of a generation's spec: the policy it follows."""

    policy: str | None


def prepare(body: Mapping[str, Any]) -> Prepared:
    try:
        spec = IncidentSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError:
        return Prepared(policy=None)  # the reconcile reports it
    return Prepared(spec.escalation_policy_ref.name if spec.escalation_policy_ref else None)


def _recovered_at(body: Mapping[str, Any]) -> object:
    return (body.get("status") or {}).get("sourceRecoveredAt")


def needs_reconcile(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Changes that do not bump the generation but change what the operator does: the source
    recovered (written by whatever opened the incident), the postmortem's keep annotation."""
    keep = [keeps_postmortem(body["metadata"].get("annotations")) for body in (before, after)]
    return _recovered_at(before) != _recovered_at(after) or keep[0] != keep[1]


class Escalations:
    """The Incidents on the shared scheduler (see `scheduler.Kind`)."""

    def __init__(self, kube: Kube, policies: PolicyStore) -> None:
        self.kube = kube
        self.policies = policies
        self.memory = Memory()
        self.scheduler: Scheduler[Prepared] = Scheduler(self, "Incident escalation")
        self.pool = ThreadPoolExecutor(RECONCILE_THREADS, thread_name_prefix="incident")
        #: Incidents asked to be reconciled again while in flight.
        self.again: set[Key] = set()
        policies.listeners.append(self.policy_changed)

    def prepare(self, body: Mapping[str, Any]) -> Prepared:
        return prepare(body)

    def first_due(self, body: Mapping[str, Any], prepared: Prepared, now: float) -> float:
        return now

    def period(self, prepared: Prepared) -> float:
        return math.inf

    def forgotten(self, key: Key) -> None:
        self.memory.forget(key)
        self.again.discard(key)
        metrics.track_incident(*key, None)

    def soon(self, key: Key) -> None:
        """Reconcile the incident at the next tick (after the current reconcile, if any)."""
        if key in self.scheduler.in_flight:
            self.again.add(key)
        self.scheduler.schedule(key, self.scheduler.clock())

    def changed(self, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        before = self.scheduler.items.get(key)
        previous = dict(before.body) if before is not None else None
        self.scheduler.upsert(body)
        if previous is not None and needs_reconcile(previous, body):
            self.soon(key)

    def policy_changed(self, policy: Key) -> None:
        """A policy changed or went: the incidents that follow it are reconciled now."""
        namespace, name = policy
        for key, item in list(self.scheduler.items.items()):
            if key[0] == namespace and item.prepared.policy == name:
                self.soon(key)

    async def dispatch(self, items: list[Item[Prepared]]) -> None:
        for item in items:
            self.scheduler.start(self._reconcile(item), [item.key])

    async def _reconcile(self, item: Item[Prepared]) -> None:
        key = item.key
        loop = asyncio.get_running_loop()
        due: float | None = self.scheduler.clock() + RETRY_SECONDS
        newest: Mapping[str, Any] | None = None
        try:
            done = await loop.run_in_executor(self.pool, reconcile, self.kube, item.body,
                                              self.policies.lookup, self.memory)
            newest = done.body
            due = None if done.due is None else self._monotonic(done.due)
        except TRANSIENT_API_ERRORS as error:
            log.warning("reconciling incident %s/%s failed, retried in %ss: %s", *key,
                        RETRY_SECONDS, transient_error_message(error))
        except Exception:  # noqa: BLE001 - one incident's bug must not stop the others
            log.exception("reconciling incident %s/%s failed, retried in %ss", *key,
                          RETRY_SECONDS)
        finally:
            current = self.scheduler.items.get(key)
            if key in self.again or (current is not None and current is not item):
                due = self.scheduler.clock()  # changed meanwhile: its new state is due now
            self.again.discard(key)
            self.scheduler.schedule(key, math.inf if due is None else due)
            self.scheduler.done(key, newest)

    def _monotonic(self, deadline: datetime) -> float:
        wait = (deadline - datetime.now(UTC)).total_seconds()
        return self.scheduler.clock() + max(0.0, wait)

    async def run_forever(self) -> None:
        try:
            await self.scheduler.run_forever()
        finally:
            self.pool.shutdown(wait=False, cancel_futures=True)

