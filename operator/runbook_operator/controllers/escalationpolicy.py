"""EscalationPolicy: the policies Incidents follow, kept compiled in memory, and each policy's
status — Ready when the NotificationChannels it names exist (Stalled with the missing names
otherwise) and who is on call now, refreshed at every handover.

Policies live on the shared scheduler (`controllers.scheduler`): a policy is checked when it
changes, again every resync interval (channels created later), and at the next handover of any
of its rotations, so `status.onCall` changes when the rotation does. `PolicyStore` hands the
compiled policy of the newest generation to the Incident controller and tells it when a policy
changes or goes, so incidents that follow it are reconciled at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from runbook_operator.api.common import API_VERSION
from runbook_operator.api.escalationpolicy import (
    EscalationPolicy,
    EscalationPolicySpec,
    EscalationPolicyStatus,
)
from runbook_operator.api.notificationchannel import NotificationChannel
from runbook_operator.controllers.common import status_patch, warn_if_newly_stalled
from runbook_operator.controllers.errors import (
    TRANSIENT_API_ERRORS,
    transient_error_message,
    validation_message,
)
from runbook_operator.controllers.metrics import measured
from runbook_operator.controllers.registration import Operator, register_kind
from runbook_operator.controllers.scheduler import Item, Key, Scheduler
from runbook_operator.core.escalationpolicy import invalid, judge
from runbook_operator.core.incident.decide import PolicyProblem
from runbook_operator.core.incident.policy import CompiledPolicy, compile_policy
from runbook_operator.integrations.kubernetes import Kube

KIND = EscalationPolicy.info.kind
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InvalidPolicy:
    message: str


Prepared = CompiledPolicy | InvalidPolicy


def prepare(body: Mapping[str, Any]) -> Prepared:
    meta = body["metadata"]
    try:
        spec = EscalationPolicySpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError as error:
        return InvalidPolicy(validation_message(error, "spec"))
    return compile_policy(meta["name"], meta.get("generation"), spec)


class PolicyStore:
    """The newest compiled generation of every EscalationPolicy the watch delivered. Read
    from worker threads, written on the event loop only."""

    def __init__(self) -> None:
        self.policies: dict[Key, Prepared] = {}
        self.listeners: list[Callable[[Key], None]] = []

    def put(self, key: Key, prepared: Prepared) -> None:
        self.policies[key] = prepared
        for listener in self.listeners:
            listener(key)

    def drop(self, key: Key) -> None:
        self.policies.pop(key, None)
        for listener in self.listeners:
            listener(key)

    def lookup(self, namespace: str, name: str | None) -> CompiledPolicy | PolicyProblem:
        """The policy an incident follows, or why it has none."""
        if name is None:
            return PolicyProblem("NoEscalationPolicy",
                                 "spec.escalationPolicyRef is not set: nobody is paged")
        found = self.policies.get((namespace, name))
        if found is None:
            return PolicyProblem("EscalationPolicyNotFound",
                                 f"EscalationPolicy {name} not found: nobody is paged until it "
                                 "exists")
        if isinstance(found, InvalidPolicy):
            return PolicyProblem("EscalationPolicyInvalid",
                                 f"EscalationPolicy {name} is invalid: {found.message}")
        return found


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def reconcile(kube: Kube, body: Mapping[str, Any], prepared: Prepared) -> datetime | None:
    """Check one policy and write its status (blocking); when its on-call changes next."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    old = EscalationPolicyStatus.model_validate(body.get("status") or {})
    with measured(KIND) as result:
        if isinstance(prepared, InvalidPolicy):
            judged = invalid(old, prepared.message, meta.get("generation"), _now())
        else:
            channels = {c["metadata"]["name"] for c in kube.list(
                API_VERSION, NotificationChannel.info.kind, [namespace])}
            judged = judge(prepared, old, channels, _now())
        patch = status_patch(old, judged.status)
        if patch is not None:
            kube.update_status(API_VERSION, KIND, name, namespace, lambda _: patch)
        result.value = judged.outcome.phase.name.lower()
    before = (body.get("status") or {}).get("conditions") or []
    warn_if_newly_stalled(kube, body, judged.outcome, before, log)
    return judged.next_handover


class PolicyChecks:
    """EscalationPolicies on the shared scheduler (see `scheduler.Kind`)."""

    def __init__(self, kube: Kube, store: PolicyStore, resync_seconds: float) -> None:
        self.kube = kube
        self.store = store
        self.resync_seconds = resync_seconds
        self.scheduler: Scheduler[Prepared] = Scheduler(self, "EscalationPolicy check")

    def prepare(self, body: Mapping[str, Any]) -> Prepared:
        prepared = prepare(body)
        meta = body["metadata"]
        self.store.put((meta["namespace"], meta["name"]), prepared)
        return prepared

    def first_due(self, body: Mapping[str, Any], prepared: Prepared, now: float) -> float:
        return now

    def period(self, prepared: Prepared) -> float:
        return self.resync_seconds

    def forgotten(self, key: Key) -> None:
        self.store.drop(key)

    async def dispatch(self, items: list[Item[Prepared]]) -> None:
        for item in items:
            self.scheduler.start(self._check(item), [item.key])

    async def _check(self, item: Item[Prepared]) -> None:
        try:
            handover = await asyncio.to_thread(reconcile, self.kube, item.body, item.prepared)
        except TRANSIENT_API_ERRORS as error:
            log.warning("checking EscalationPolicy %s/%s failed, retried at the next resync: %s",
                        *item.key, transient_error_message(error))
            return
        if handover is not None:
            wait = max(0.0, (handover - datetime.now(UTC)).total_seconds())
            if wait < self.resync_seconds:
                self.scheduler.schedule(item.key, self.scheduler.clock() + wait)


def register(operator: Operator, store: PolicyStore) -> None:
    """Attach the EscalationPolicy handlers and their checks; `store` receives every policy."""
    checks = PolicyChecks(operator.kube, store, operator.config.resync_seconds)

    async def policy_changed(body: kopf.Body, **_: Any) -> None:
        checks.scheduler.upsert(body)

    async def policy_gone(body: kopf.Body, **_: Any) -> None:
        checks.scheduler.forget((body["metadata"]["namespace"], body["metadata"]["name"]))

    register_kind(operator, EscalationPolicy, changed=policy_changed, gone=policy_gone,
                  loop=lambda _: checks.scheduler.run_forever())
