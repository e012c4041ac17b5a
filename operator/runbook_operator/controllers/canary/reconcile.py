"""One CanaryRollout tick: read the world, ask the webhook gates, measure when an analysis
run is due, decide (`core.canary.machine`), make the effects so, tell the channels, open the
Incident of a rollback, write status.

Rollouts run on the shared scheduler, looked at again when `core.canary.pacing` says: one in
flight every second (or when its next analysis, pause end or deadline is due), a resting one
once per analysis interval (30 s at most), which is how a pod-template change on the target
is noticed (the operator does not watch every Deployment of the cluster). Status is written
with the resourceVersion the decision was made from; when the object moved on meanwhile the
tick is simply done again from a fresh copy — every effect is idempotent and every
notification is deduplicated through status.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from runbook_operator.api.backuppolicy import BackupPolicy
from runbook_operator.api.canaryrollout import (
    COMMAND_ANNOTATIONS,
    CanaryRollout,
    CanaryRolloutSpec,
    CanaryRolloutStatus,
    Measurement,
)
from runbook_operator.api.common import API_VERSION, NotificationRecord
from runbook_operator.api.incident import Incident
from runbook_operator.controllers.canary import metrics
from runbook_operator.controllers.canary.gates import call as call_gates
from runbook_operator.controllers.canary.workloads import HPA_API, Observed, make_so
from runbook_operator.controllers.common import status_patch
from runbook_operator.controllers.errors import (
    TRANSIENT_API_ERRORS,
    transient_error_message,
    validation_message,
)
from runbook_operator.controllers.incident_sources import apply_reports
from runbook_operator.controllers.notify import notify
from runbook_operator.core.canary import backup, gates, incidents, messages
from runbook_operator.core.canary.analysis import Answer, Check, TemplateError, checks, judge
from runbook_operator.core.canary.machine import (
    NewCommand,
    World,
    analysis_due,
    decide,
)
from runbook_operator.core.canary.objects import (
    TargetUnusable,
    autoscaler,
    primary_name,
    stopping_pods,
    workload,
)
from runbook_operator.core.canary.pacing import IN_FLIGHT, next_look
from runbook_operator.core.canary.status import stalled, with_conditions
from runbook_operator.core.incident.sources import incident_name
from runbook_operator.core.canary.steps import Step, compile_steps
from runbook_operator.integrations.kubeapi import NotFound
from runbook_operator.integrations.kubernetes import Kube, StatusConflict
from runbook_operator.integrations.prometheus import Ok, PrometheusClient
from runbook_operator.integrations.routers import (
    Backends,
    Owner,
    RouterError,
    router_for,
)
from runbook_operator.integrations.secrets import read_secret

KIND = CanaryRollout.info.kind
INCIDENT_KIND = Incident.info.kind
POLICY_KIND = BackupPolicy.info.kind
log = logging.getLogger(__name__)
#: How often a stalled rollout, or a deleted one being reverted, is looked at.
STEADY = timedelta(seconds=5)


@dataclass(frozen=True)
class Compiled:
    """A generation's spec, ready to run: its steps and its analysis queries."""

    spec: CanaryRolloutSpec
    steps: list[Step]
    backends: Backends
    checks: list[Check]


@dataclass(frozen=True)
class Unusable:
    """Why a generation's spec cannot run."""

    reason: str
    message: str


Prepared = Compiled | Unusable


def prepare(body: Mapping[str, Any]) -> Prepared:
    try:
        spec = CanaryRolloutSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError as error:
        return Unusable("InvalidSpec", validation_message(error, "spec"))
    backends = Backends(body["metadata"]["namespace"], spec.service_name(), spec.service.port,
                        spec.service.port_name)
    try:
        found = checks(spec, backends)
    except TemplateError as error:
        return Unusable("InvalidQuery", str(error))
    return Compiled(spec, compile_steps(spec), backends, found)


def new_commands(body: Mapping[str, Any], status: CanaryRolloutStatus) -> list[NewCommand]:
    """Command annotations whose token differs from the last one acted on."""
    annotations = body["metadata"].get("annotations") or {}
    latest: dict[str, str] = {}
    for acknowledged in reversed(status.commands):
        latest[acknowledged.command] = acknowledged.token
    return [NewCommand(command, annotations[key])  # type: ignore[arg-type]
            for command, key in COMMAND_ANNOTATIONS.items()
            if annotations.get(key) and annotations[key] != latest.get(command)]


class Analysts:
    """Prometheus clients per server and credential, shared by every rollout."""

    def __init__(self, kube: Kube, default_url: str | None) -> None:
        self.kube = kube
        self.default_url = default_url
        self.clients: dict[tuple[str, str | None], PrometheusClient] = {}

    async def measure(self, compiled: Compiled, namespace: str, revision: str, step: int,
                      now: datetime) -> list[Measurement]:
        """One analysis run: every check's measurement."""
        if not compiled.checks:
            return []
        source = compiled.spec.analysis.prometheus
        url = source.url if source and source.url else self.default_url
        if url is None:
            return [judge(c, Answer(error="no Prometheus: set spec.analysis.prometheus.url or "
                                    "the operator's --prometheus-url"), revision, step, now)
                    for c in compiled.checks]
        token = None
        if source is not None and source.auth_secret_ref is not None:
            token = await asyncio.to_thread(read_secret, self.kube, namespace,
                                            source.auth_secret_ref)
        client = self.clients.get((url, token))
        if client is None:
            headers = {"Authorization": f"Bearer {token}"} if token else None
            client = self.clients[(url, token)] = PrometheusClient(url, headers=headers)
        results = await client.instant_many([c.query for c in compiled.checks], now)
        measured = []
        for check in compiled.checks:
            result = results[check.query]
            answer = (Answer(tuple(s.value for s in result.samples)) if isinstance(result, Ok)
                      else Answer(error=f"{result.kind}: {result.message}"))
            measured.append(judge(check, answer, revision, step, now))
        return measured

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()


def owner_of(body: Mapping[str, Any]) -> Owner:
    meta = body["metadata"]
    return Owner(meta["name"], meta["namespace"], meta["uid"])


#: The phases in which the primary takes a new template and then, once it has rolled out,
#: all the traffic: its old pods still stopping are counted (`stopping_pods`) only then.
PRIMARY_CHANGING_PHASES = (None, "Initializing", "Promoting")


def observe(kube: Kube, compiled: Compiled, namespace: str,
            phase: str | None) -> Observed | str:
    """The target, the primary and the target's autoscaler, or why they cannot be used; in
    `PRIMARY_CHANGING_PHASES`, the primary's pods still stopping once its Deployment says
    it rolled out."""
    spec = compiled.spec
    target = kube.get("apps/v1", "Deployment", spec.target_ref.name, namespace)
    if target is None:
        return f"Deployment {spec.target_ref.name!r} not found"
    hpa = None
    if spec.autoscaler_ref is not None:
        hpa = kube.get(HPA_API, "HorizontalPodAutoscaler", spec.autoscaler_ref.name, namespace)
        if hpa is None:
            return f"HorizontalPodAutoscaler {spec.autoscaler_ref.name!r} not found"
    primary = kube.get("apps/v1", "Deployment", primary_name(spec), namespace)
    stopping = 0
    said = workload(primary, "annotation")
    if phase in PRIMARY_CHANGING_PHASES and said is not None and said.rolled_out:
        labels = ",".join(f"{key}={value}" for key, value in
                          primary["spec"]["selector"]["matchLabels"].items())
        stopping = stopping_pods(kube.list("v1", "Pod", [namespace], labels), datetime.now(UTC))
    return Observed(target, primary, hpa, primary_stopping=stopping)


@dataclass(frozen=True)
class Outcome:
    """What a tick left: the newest copy of the rollout, and when to look again."""

    body: Mapping[str, Any] | None
    next_in: timedelta


def rollout_status_patch(old: CanaryRolloutStatus,
                         new: CanaryRolloutStatus) -> dict[str, Any] | None:
    """The merge patch from `old` to `new`, a changed `router` sent whole (with nulls: a
    cleared confirmedAt is cleared)."""
    return status_patch(old, new, whole=("router",))


def write_status(kube: Kube, body: Mapping[str, Any], old: CanaryRolloutStatus,
                 new: CanaryRolloutStatus,
                 pause: Callable[[float], None] = time.sleep) -> Mapping[str, Any] | None:
    """The status write, guarded by the resourceVersion decided from; a conflict means
    someone wrote meanwhile: the fresh copy is returned and the tick is done again. The
    notifications this tick sent are recorded on that fresh copy first (`record_sent`), and
    so they are when the write failed otherwise: the next tick would send them again."""
    patch = rollout_status_patch(old, new)
    meta = body["metadata"]
    if patch is None:
        return body
    sent = messages.sent_between(old, new)
    try:
        return kube.patch_status(API_VERSION, KIND, meta["name"], meta["namespace"], patch,
                                 meta["resourceVersion"])
    except StatusConflict:
        if not sent:
            return kube.get(API_VERSION, KIND, meta["name"], meta["namespace"])
    except TRANSIENT_API_ERRORS as error:
        if not sent:
            raise
        log.warning("CanaryRollout %s/%s: status not written (%s); recording the %d "
                    "notification(s) sent", meta["namespace"], meta["name"],
                    transient_error_message(error), len(sent))
    return record_sent(kube, body, sent, pause)


#: Pauses before each further attempt of `record_sent` when the API server fails (restarting,
#: a 5xx): a few seconds in all, in the tick's worker thread.
RECORD_RETRY_SECONDS = (0.5, 1.0, 2.0)


def record_sent(kube: Kube, body: Mapping[str, Any], sent: list[NotificationRecord],
                pause: Callable[[float], None]) -> Mapping[str, Any] | None:
    """Write the records of deliveries `sent` onto the rollout's fresh status (read, merge
    with `messages.kept`, write guarded by its resourceVersion; a bounded number of times),
    unless the rollout was replaced by another object of its name. The fresh copy written or
    read; None when the rollout is gone."""
    meta = body["metadata"]

    def change(current: dict[str, Any]) -> dict[str, Any] | None:
        if current["metadata"].get("uid") != meta.get("uid"):
            return None
        fresh = CanaryRolloutStatus.model_validate(current.get("status") or {})
        return rollout_status_patch(fresh, messages.kept(fresh, sent))

    delays = iter(RECORD_RETRY_SECONDS)
    while True:
        try:
            return kube.update_status(API_VERSION, KIND, meta["name"], meta["namespace"],
                                      change)
        except TRANSIENT_API_ERRORS as error:
            delay = next(delays, None)
            if delay is None:
                log.error("CanaryRollout %s/%s: %d notification(s) sent but not recorded (%s);"
                          " the next tick may send them again", meta["namespace"], meta["name"],
                          len(sent), transient_error_message(error))
                raise
            pause(delay)


def stall(kube: Kube, body: Mapping[str, Any], reason: str, message: str) -> Outcome:
    """Stalled for a reason only a person can fix; one Warning Event per distinct message."""
    old = CanaryRolloutStatus.model_validate(body.get("status") or {})
    before = next((c for c in old.conditions if c.type == "Stalled"), None)
    new = stalled(old, reason, message, datetime.now(UTC), body["metadata"].get("generation"))
    written = write_status(kube, body, old, new)
    if before is None or before.status != "True" or before.message != message:
        kube.event(dict(body), "Warning", reason, message)
    return Outcome(written, STEADY)


def finish(kube: Kube, body: Mapping[str, Any], compiled: Compiled, observed: Observed,
           status: CanaryRolloutStatus, run: list[Measurement] | None,
           commands: list[NewCommand], world: World, now: datetime) -> Outcome:
    """Decide from `status` (the gates' answers recorded), make it so, tell the channels,
    write status (blocking: a worker thread)."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    old = CanaryRolloutStatus.model_validate(body.get("status") or {})
    decision = decide(compiled.spec, compiled.steps, status, world, now, run, commands)
    if decision.effects.backup is not None and not request_backup(
            kube, compiled.spec, namespace, decision.effects.backup):
        return Outcome(body, IN_FLIGHT)
    owner = owner_of(body)
    router = router_for(compiled.spec, compiled.backends, owner, kube,
                        first_write=status.router is None)
    answered = make_so(kube, compiled.spec, observed, decision.effects,
                       decision.status.canary_replicas, compiled.backends, owner, router,
                       status.router, now)
    new = decision.status
    if answered is not None:
        confirmed = answered.weight if answered.verified == "Yes" else new.weight
        new = new.model_copy(update={"router": answered, "weight": confirmed})
    new = with_conditions(new, now, meta.get("generation"))
    report = incidents.rollback_report(meta, compiled.spec, new)
    if report is not None and new.incident != incident_name(report):
        [opened] = apply_reports(kube, namespace, [report], now)
        if opened.created:
            kube.event(dict(body), "Warning", "IncidentOpened", f"opened Incident {opened.name}")
        new = new.model_copy(update={"incident": opened.name})
    for due in messages.due(compiled.spec, name, namespace, new, now):
        outcomes = notify(kube, namespace, due.channels, due.notification)
        new = messages.record(new, namespace, name, due.event, outcomes)
    written = write_status(kube, body, old, new)
    for event in decision.events:
        kube.event(dict(body), event.type, event.reason, event.message)
    started = new.rollback if new.rollback is not None and old.rollback != new.rollback \
        and new.rollback.completed_at is None else None
    metrics.count(namespace, name, run or [], started)
    metrics.publish(namespace, name, new)
    return Outcome(written, next_look(compiled.spec, new, decision.wake_at, now))


def request_backup(kube: Kube, spec: CanaryRolloutSpec, namespace: str, token: str) -> bool:
    """Ask spec.backupBefore's policy for a backup; False when it is gone meanwhile (the next
    tick sees it missing)."""
    assert spec.backup_before is not None
    try:
        kube.merge_patch(API_VERSION, POLICY_KIND, spec.backup_before.backup_policy_ref.name,
                         namespace, backup.request_patch(token))
    except NotFound:
        return False
    return True


def backup_seen(kube: Kube, spec: CanaryRolloutSpec, body: Mapping[str, Any],
                status: CanaryRolloutStatus) -> backup.BackupSeen:
    """What spec.backupBefore's policy says about this rollout's request."""
    assert spec.backup_before is not None
    meta = body["metadata"]
    policy = kube.get(API_VERSION, POLICY_KIND, spec.backup_before.backup_policy_ref.name,
                      meta["namespace"])
    return backup.seen(meta["name"], status, policy)


async def _gates(kube: Kube, compiled: Compiled, body: Mapping[str, Any],
                 status: CanaryRolloutStatus, world: World, now: datetime
                 ) -> tuple[CanaryRolloutStatus, World]:
    """Ask the webhooks that apply now and look for blocking Incidents (`core.canary.gates`);
    the status with the webhooks' answers, and the world with what holds it."""
    spec = compiled.spec
    if gates.blocks_now(spec, status):
        found = await asyncio.to_thread(kube.list, API_VERSION, INCIDENT_KIND,
                                        [body["metadata"]["namespace"]])
        world = replace(world, holds=gates.incident_holds(spec, status, found))
    if not spec.analysis.webhooks:
        return status, world
    which = gates.asked(compiled.steps, status,
                        analysis_due(spec, compiled.steps, status, world, now))
    hooks = gates.to_call(spec, status, which, now)
    if hooks:
        meta = body["metadata"]
        payloads = [gates.payload(spec, meta["name"], meta["namespace"], status, hook)
                    for hook in hooks]
        answers = await asyncio.to_thread(call_gates, kube, meta["namespace"], hooks,
                                          payloads, now)
        status = gates.recorded(status, answers)
    said = gates.verdicts(spec, status, which)
    return status, replace(world, holds=world.holds + said.holds,
                           promotion_holds=said.promotion_holds,
                           rollback_asked=said.rollback_asked)


async def tick(kube: Kube, analysts: Analysts, body: Mapping[str, Any],
               prepared: Prepared) -> Outcome:
    """One look at one CanaryRollout (see the module docstring)."""
    if isinstance(prepared, Unusable):
        return await asyncio.to_thread(stall, kube, body, prepared.reason, prepared.message)
    namespace = body["metadata"]["namespace"]
    status = CanaryRolloutStatus.model_validate(body.get("status") or {})
    observed = await asyncio.to_thread(observe, kube, prepared, namespace, status.phase)
    if isinstance(observed, str):
        return await asyncio.to_thread(stall, kube, body, "TargetNotFound", observed)
    target = workload(observed.target)
    assert target is not None
    router = router_for(prepared.spec, prepared.backends, owner_of(body), kube)
    written = status.router.weight if status.router is not None else None
    try:
        answer = (await asyncio.to_thread(router.verify, written)
                  if written is not None else None)
    except RouterError as error:
        return await asyncio.to_thread(stall, kube, body, "RouterUnavailable", str(error))
    observed = replace(observed, route=answer)
    world = World(target=target, primary=workload(observed.primary, "annotation",
                                                       observed.primary_stopping),
                  router=answer, autoscaler=autoscaler(observed.target_hpa))
    now = datetime.now(UTC)
    commands = new_commands(body, status)
    if backup.waiting(prepared.spec, status):
        world = replace(world, backup=await asyncio.to_thread(
            backup_seen, kube, prepared.spec, body, status))
    status, world = await _gates(kube, prepared, body, status, world, now)
    run = None
    if analysis_due(prepared.spec, prepared.steps, status, world, now):
        run = await analysts.measure(prepared, namespace, status.revision or "",
                                     status.step_index, now)
    try:
        return await asyncio.to_thread(finish, kube, body, prepared, observed, status, run,
                                       commands, world, now)
    except RouterError as error:
        return await asyncio.to_thread(stall, kube, body, "RouterUnavailable", str(error))
    except TargetUnusable as error:
        return await asyncio.to_thread(stall, kube, body, "TargetUnusable", str(error))
