"""AlertRule: one evaluation loop for every rule (no long-lived thread or task per rule).

Rules are kept on the shared scheduler (`controllers.scheduler`) with their spec compiled once
per generation (`core.alertrule.rule`). Each tick, the rules that are due are grouped by
Prometheus server and their queries are sent deduplicated and with bounded concurrency
(`PrometheusClient.instant_many`), so a slow or broken query times out on its own without
stalling the others. Deciding (`core.alertrule`; not again for a rule that stays Normal or
keeps firing with nothing due, `core.alertrule.quiet`) and writing status happen in worker
threads, from the operator's cached copy of each rule; status writes, notifications and
actions in pools of their own. The loop does not wait for the evaluations it started, and
skips a rule until its previous evaluation is done. Status is written only when something
lasting changes, plus a heartbeat; per-tick values go to metrics. Everything that must survive
a restart — pending/firing times, what was notified — is in status; the in-memory cache holds
each rule's newest copy, its compiled spec and when it is due next.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import kopf
from pydantic import ValidationError

from runbook_operator.api.alertrule import (
    AlertRule,
    AlertRuleSpec,
    AlertRuleStatus,
    AnomalyStatus,
    PrometheusSource,
)
from runbook_operator.api.common import API_VERSION, NotificationRecord
from runbook_operator.controllers import metrics
from runbook_operator.controllers.alert_actions import run_actions
from runbook_operator.controllers.alertrule_policy import FollowedPolicies, Unfollowable
from runbook_operator.controllers.common import status_patch
from runbook_operator.controllers.errors import (
    TRANSIENT_API_ERRORS,
    transient_error_message,
    validation_message,
)
from runbook_operator.controllers.notify import notify_channel
from runbook_operator.controllers.registration import Operator, register_kind
from runbook_operator.controllers.scheduler import (
    Item,
    Key,
    Scheduler,
    Snapshot,
    resource_version,
)
from runbook_operator.core.alertrule import state
from runbook_operator.core.alertrule.actions import record_actions
from runbook_operator.core.alertrule.decide import Decision, Evaluation, decide
from runbook_operator.core.alert_group import AlertGroup
from runbook_operator.core.alertrule.messages import alert_group, notification_for
from runbook_operator.core.alertrule.quiet import Quiet, recall, remember
from runbook_operator.core.alertrule.rule import Links, Rule, compile_rule
from runbook_operator.core.alertrule.status import (
    HEARTBEAT_WRITES_PER_SECOND,
    Heartbeat,
    heartbeat_of,
    heartbeat_period,
    next_status,
    stalled_status,
    status_write_due,
)
from runbook_operator.core.notify_plan import Batch as ChannelBatch
from runbook_operator.core.notify_plan import sent_record
from runbook_operator.integrations.kubernetes import STATUS_CONFLICT_RETRIES, Kube, StatusConflict
from runbook_operator.integrations.notifiers import Message
from runbook_operator.integrations.prometheus import (
    Ok,
    PrometheusClient,
    QueryError,
    QueryFailed,
    QueryResult,
)
from runbook_operator.integrations.secrets import read_secret

KIND = AlertRule.info.kind
#: Threads that send notifications and run actions. A receiver that is slow or down holds
#: one each (its timeout times its attempts) while every other rule is still evaluated.
DELIVERY_THREADS = 8
#: Threads that write status. Their own pool, not the loop's default executor: the first
#: evaluation of 5,000 rules queues 5,000 writes, and the Lease renewal waiting behind them
#: on the default executor missed its deadline, so the operator kept losing leadership.
STATUS_WRITE_THREADS = 6
#: Status writes waiting (queued for those threads, or being made) from which a rule whose
#: first evaluation writes status waits for a later tick (see `Evaluator.admitted`).
STATUS_WRITE_BACKLOG = 200
#: How long a rule whose spec the operator cannot read waits before it is looked at again.
INVALID_SPEC_RETRY_SECONDS = 60.0

log = logging.getLogger(__name__)
Server = tuple[str, str | None]
"""A Prometheus URL and the bearer token used with it (None: no credentials)."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class InvalidSpec:
    """A spec the operator cannot evaluate, with the validation message."""

    message: str


Prepared = Rule | InvalidSpec


def prepare(body: Mapping[str, Any], links: Links = Links()) -> Prepared:
    """The rule compiled from the body's spec, or why it cannot be."""
    try:
        spec = AlertRuleSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError as error:
        return InvalidSpec(validation_message(error, "spec"))
    return compile_rule(spec, links)


def threshold_evaluation(key: Key, rule: Rule, result: QueryResult) -> Evaluation:
    """A threshold rule's observation, from what Prometheus answered."""
    assert rule.threshold is not None
    if isinstance(result, Ok):
        samples: list[state.Sample] = [(s.labels, s.value) for s in result.samples]
        return Evaluation(key, rule, samples, rule.threshold.holds)
    return Evaluation(key, rule, state.QueryError(result.message), rule.threshold.holds,
                      result.kind)


def _messages(evaluation: Evaluation, decision: Decision, batch: ChannelBatch,
              now: datetime) -> Callable[[bool], list[Message]]:
    """What one channel hears: the group as one message when it sends groups, else one
    message per due alert."""
    instance = {i.fingerprint: i for i in decision.instances}
    key, rule = evaluation.key, evaluation.rule

    def compose(groups: bool) -> list[Message]:
        if groups:
            alerts = [(instance[d.fingerprint], d) for d in (*batch.due, *batch.along)]
            return [alert_group(key, rule, alerts, now)]
        return [notification_for(key, rule, instance[d.fingerprint], d, now)
                for d in batch.due]

    return compose


def carry_out(kube: Kube, body: Mapping[str, Any], old: AlertRuleStatus, evaluation: Evaluation,
              decision: Decision, now: datetime) -> tuple[list[NotificationRecord], list[Any]]:
    """Send the due notifications and run the due actions; their records for status. Every
    alert a message carried is recorded as sent (a group's current alerts too)."""
    namespace = evaluation.key[0]
    rule = evaluation.rule
    sent = []
    for batch in decision.batches:
        outcomes = notify_channel(kube, namespace, batch.channel,
                                  _messages(evaluation, decision, batch, now))
        for message, outcome in outcomes:
            metrics.NOTIFICATIONS.labels(KIND, outcome.result).inc()
            carried = ({a.subject for a in message.alerts} if isinstance(message, AlertGroup)
                       else {message.dedup_key})
            sent += [sent_record(d, outcome.result, now) for d in (*batch.due, *batch.along)
                     if d.fingerprint in carried]
    actions = old.actions
    if decision.act_for is not None and rule.actions is not None:
        actions = record_actions(old.actions, run_actions(kube, dict(body), rule.actions,
                                                          decision.act_for, now))
    return sent, actions


class Deferred(Enum):
    """An evaluation stopped before sending or acting, which it was not allowed to do where it
    ran: run it again where it may."""

    DELIVERY = "notifications or actions are due"


@dataclass(frozen=True)
class DecidedWrite:
    """A status write an evaluation decided where it was not allowed to make it: the status-write
    pool makes it without deciding again (`write_decided`)."""

    patch: dict[str, Any]
    state: str
    last_value: str | None
    warning: str | None
    """The InvalidQuery Warning to record once written (a new query error), if any."""


def write_decided(kube: Kube, key: Key, body: Mapping[str, Any], now: datetime,
                  write: DecidedWrite, reread: bool = False) -> Mapping[str, Any] | None:
    """Write a decided status, guarded by the resourceVersion it was decided from (`reread`:
    onto the object as it is now, for what was sent already), then publish the evaluation.
    Raises StatusConflict when the rule moved on; None when it is gone."""
    namespace, name = key
    if reread:
        written = kube.update_status(API_VERSION, KIND, name, namespace, lambda _: write.patch)
    else:
        written = kube.patch_status(API_VERSION, KIND, name, namespace, write.patch,
                                    body["metadata"]["resourceVersion"])
    metrics.publish_alert(namespace, name, write.state, now, write.last_value)
    if write.warning is not None:
        kube.event(dict(body), "Warning", "InvalidQuery", write.warning)
    return written


def evaluate(kube: Kube, evaluation: Evaluation, body: Mapping[str, Any], seconds: float,
             now: datetime, heartbeat: Heartbeat | None = None, may_write: bool = True,
             may_deliver: bool = True,
             quiet: dict[Key, Quiet] | None = None,
             ) -> Mapping[str, Any] | DecidedWrite | Deferred | None:
    """Decide, notify, and write status for one rule (blocking: runs in a worker thread).

    Decides from `body`, the operator's cached copy of the rule (its spec is the one
    evaluated), so an evaluation that changes nothing lasting costs no API request. Before
    sending or acting it re-reads the rule, so a stale cache can never repeat a notification;
    the write is guarded by the resourceVersion the decision was made from. Returns the
    newest copy of the rule it saw or wrote (None: the rule is gone), the write when one is
    due and not `may_write`, or why it stopped when notifications or actions are due and not
    `may_deliver`.
    With `quiet` (the rules' last quiet evaluations, see `core.alertrule.quiet`), a rule that
    stays Normal or keeps firing with nothing due is not decided again. `heartbeat` is the
    rule's (None: `heartbeat_of` the rule at the 5-minute period)."""
    namespace, name = evaluation.key
    heartbeat = heartbeat or heartbeat_of(evaluation.key)
    if quiet is not None:
        unchanged = recall(quiet.get(evaluation.key), resource_version(body),
                           evaluation, now)
        if unchanged is not None:
            metrics.publish_alert(namespace, name, unchanged.state, now, unchanged.last_value)
            return body
    generation = body["metadata"]["generation"]
    fresh = False
    for _ in range(STATUS_CONFLICT_RETRIES):
        old = AlertRuleStatus.model_validate(body.get("status") or {})
        decision = decide(old, evaluation, now)
        if decision.has_effects and not may_deliver:
            return Deferred.DELIVERY
        if decision.has_effects and not fresh:
            found = kube.get(API_VERSION, KIND, name, namespace)
            if found is None:
                return None
            body, fresh = found, True
            continue
        sent, actions = carry_out(kube, body, old, evaluation, decision, now)
        new, outcome = next_status(old, evaluation, decision, sent, actions, seconds, now,
                                   generation)
        if not status_write_due(old, new, now, heartbeat):
            metrics.publish_alert(namespace, name, new.state or "Normal", now, new.last_value)
            if quiet is not None:
                _remember(quiet, remember(resource_version(body), old, evaluation, decision,
                                          heartbeat, now), evaluation.key)
            return body
        patch = status_patch(old, new)
        assert patch is not None
        warning = (outcome.message if outcome.reason == "InvalidQuery"
                   and old.last_error != new.last_error else None)
        write = DecidedWrite(patch, new.state or "Normal", new.last_value, warning)
        if not may_write:
            return write
        try:
            return write_decided(kube, evaluation.key, body, now, write)
        except StatusConflict:
            if decision.has_effects:
                # Sent already: record it on the fresh object rather than deciding again.
                return write_decided(kube, evaluation.key, body, now, write, reread=True)
            found = kube.get(API_VERSION, KIND, name, namespace)
            if found is None:
                return None
            body, fresh = found, True
    raise StatusConflict(f"{KIND} {namespace}/{name}: status kept changing while evaluated")


def _remember(quiet: dict[Key, Quiet], found: Quiet | None, key: Key) -> None:
    if found is None:
        quiet.pop(key, None)
    else:
        quiet[key] = found


def stall(kube: Kube, body: Mapping[str, Any], reason: str, message: str) -> None:
    """Write Stalled for a rule the operator cannot evaluate, once per distinct message."""
    meta = body["metadata"]
    old = AlertRuleStatus.model_validate(body.get("status") or {})
    before = next((c for c in old.conditions if c.type == "Stalled"), None)
    new = stalled_status(old, reason, message, _now(), meta["generation"])
    patch = status_patch(old, new)
    if patch is not None:
        kube.update_status(API_VERSION, KIND, meta["name"], meta["namespace"], lambda _: patch)
    if before is None or before.status != "True" or before.message != message:
        kube.event(dict(body), "Warning", reason, message)


@dataclass
class Detector:
    """A trained model, kept in memory only: after a restart it is retrained (the training
    window is in Prometheus), while the alert's own state is in status."""

    model: Any
    trained_at: datetime
    generation: int | None


class Detectors:
    """IsolationForest models per anomaly rule: trained on a query_range window, retrained on
    an interval (not every evaluation), never firing before `minSamples` rows."""

    def __init__(self) -> None:
        self.models: dict[Key, Detector] = {}

    def forget(self, key: Key) -> None:
        self.models.pop(key, None)

    async def _train(self, key: Key, rule: Rule, client: PrometheusClient, now: datetime,
                     generation: int | None) -> Detector | Evaluation:
        from runbook_operator.core import anomaly as anomaly_core

        anomaly = rule.anomaly
        assert anomaly is not None
        series: dict[str, list[tuple[float, float]]] = {}
        for name, query in anomaly.queries:
            try:
                found = await client.range(query, now - anomaly.training_window, now,
                                           anomaly.step)
            except QueryFailed as failed:
                return Evaluation(key, rule, state.QueryError(failed.error.message),
                                  lambda _: False, failed.error.kind)
            if len(found) > 1:
                message = (f"anomaly query {name!r} returned {len(found)} series; each "
                           "must return exactly one (aggregate with sum or avg)")
                return Evaluation(key, rule, state.QueryError(message), lambda _: False,
                                  "bad_data")
            series[name] = found[0].points if found else []
        rows = anomaly_core.align(series)
        if not anomaly_core.warm(rows, anomaly.min_samples):
            return Evaluation(key, rule, [], lambda _: False,
                              anomaly=AnomalyStatus(samples=len(rows)))
        model = await asyncio.to_thread(
            anomaly_core.train, rows, anomaly.contamination, 0, anomaly.score_threshold)
        return Detector(model, now, generation)

    async def observe(self, key: Key, rule: Rule, generation: int | None,
                      client: PrometheusClient, now: datetime) -> Evaluation:
        """Score the newest point of every named query with the rule's model, trained again
        when the spec changed (`generation`) or its retrain interval passed. numpy (15 MiB of
        RSS) is imported here, with the first anomaly rule, not by every operator."""
        from runbook_operator.core import anomaly as anomaly_core

        anomaly = rule.anomaly
        assert anomaly is not None
        detector = self.models.get(key)
        stale = detector is None or detector.generation != generation or (
            anomaly_core.should_retrain(detector.trained_at, anomaly.retrain_interval, now))
        if stale:
            trained = await self._train(key, rule, client, now, generation)
            if isinstance(trained, Evaluation):
                return trained
            self.models[key] = detector = trained
        assert detector is not None
        results = await client.instant_many([query for _, query in anomaly.queries], now)
        point = []
        for _, query in anomaly.queries:
            result = results[query]
            if isinstance(result, QueryError):
                return Evaluation(key, rule, state.QueryError(result.message),
                                  lambda _: False, result.kind)
            if len(result.samples) != 1:
                return Evaluation(key, rule, [], lambda _: False)
            point.append(result.samples[0].value)
        model = detector.model
        value = anomaly_core.score(model, point)
        status = AnomalyStatus(trained_at=detector.trained_at, samples=model.samples,
                               threshold=model.threshold, last_score=round(value, 4))
        return Evaluation(key, rule, [({}, value)],
                          lambda s: anomaly_core.anomalous(model, s), anomaly=status)


Batch = list[tuple[Evaluation, Snapshot]]


@dataclass(frozen=True, slots=True)
class DueRule:
    """A rule to evaluate now, as the scheduler held it when it was dispatched."""

    key: Key
    body: Snapshot
    rule: Rule
    generation: int | None


class Evaluator:
    """Evaluates the AlertRules on the shared scheduler (see `scheduler.Kind`): what a rule's
    spec compiles to, when it is due, and how a tick's due rules are queried and finished."""

    def __init__(self, kube: Kube, default_prometheus: str | None,
                 links: Links = Links(),
                 heartbeat_writes: float = HEARTBEAT_WRITES_PER_SECOND) -> None:
        self.kube = kube
        self.default_prometheus = default_prometheus
        self.links = links
        self.heartbeat_writes = heartbeat_writes
        self.scheduler: Scheduler[Prepared] = Scheduler(self, "AlertRule evaluation")
        self.clients: dict[Server, PrometheusClient] = {}
        self.detectors = Detectors()
        self.policies = FollowedPolicies(kube)
        self.deliveries = ThreadPoolExecutor(DELIVERY_THREADS, thread_name_prefix="deliver")
        self.writes = ThreadPoolExecutor(STATUS_WRITE_THREADS, thread_name_prefix="status")
        #: Each rule's last quiet evaluation, so that a rule that stays quiet is not decided
        #: again (written by the worker threads, one rule by one thread at a time).
        self.quiet: dict[Key, Quiet] = {}
        #: The AlertRules counted when evaluating started, until as many are known (0 then).
        self.counted_rules = 0
        #: Rules whose spec has not been evaluated yet, so that their first evaluation
        #: writes status (new rules, changed specs), until it starts.
        self.unwritten: set[Key] = set()
        #: Status writes decided and not made yet (queued for `writes`, or being made).
        self.writes_waiting = 0

    def prepare(self, body: Mapping[str, Any]) -> Prepared:
        return prepare(body, self.links)

    def first_due(self, body: Mapping[str, Any], prepared: Prepared, now: float) -> float:
        """A new rule or spec change is evaluated at once; after a restart a rule whose status
        was written within its interval waits for the rest of it. `lastEvaluation` is only
        as fresh as the last status write (changes and the heartbeat), so most rules are
        evaluated at once after a restart; `for` and notifications are unaffected. A rule
        never evaluated at this spec is due at once too, and is `unwritten` until then."""
        meta = body["metadata"]
        status = body.get("status") or {}
        last = status.get("lastEvaluation")
        if status.get("observedGeneration") != meta.get("generation") or not last:
            self.unwritten.add((meta["namespace"], meta["name"]))
            return now
        if isinstance(prepared, InvalidSpec):
            return now
        age = (_now() - datetime.fromisoformat(last.replace("Z", "+00:00"))).total_seconds()
        return now + max(0.0, prepared.interval.total_seconds() - age)

    def period(self, prepared: Prepared) -> float:
        if isinstance(prepared, InvalidSpec):
            return INVALID_SPEC_RETRY_SECONDS
        return prepared.interval.total_seconds()

    def forgotten(self, key: Key) -> None:
        self.counted_rules = max(0, self.counted_rules - 1)
        self.unwritten.discard(key)
        self.detectors.forget(key)
        self.quiet.pop(key, None)
        metrics.forget_alert(*key)

    def _client(self, server: Server) -> PrometheusClient:
        """One client (connection pool, concurrency bound) per server and credential."""
        url, token = server
        if server not in self.clients:
            headers = {"Authorization": f"Bearer {token}"} if token else None
            self.clients[server] = PrometheusClient(url, headers=headers)
        return self.clients[server]

    def _token(self, namespace: str, source: PrometheusSource) -> str:
        """The bearer token from spec.prometheus.authSecretRef (blocking: a worker thread)."""
        assert source.auth_secret_ref is not None
        return read_secret(self.kube, namespace, source.auth_secret_ref)

    async def dispatch(self, items: list[Item[Prepared]]) -> None:
        """Start the due rules' evaluations and return without waiting for them: a rule still
        being evaluated (a slow Prometheus, a receiver that takes its time) is skipped until
        it is done, and holds up no other rule."""
        by_server: dict[Server, list[DueRule]] = {}
        for item in self.admitted(items):
            body = item.body
            try:
                found = await self._server_or_stall(item, body)
            except TRANSIENT_API_ERRORS as error:
                log.warning("evaluating %s/%s failed, retried at its next evaluation: %s",
                            *item.key, transient_error_message(error))
                continue
            if found is not None:
                server, rule = found
                by_server.setdefault(server, []).append(
                    DueRule(item.key, body, rule, item.generation))
        for server, due in by_server.items():
            client = self._client(server)
            threshold = [d for d in due if d.rule.anomaly is None]
            if threshold:
                self.scheduler.start(self._evaluate_threshold(client, threshold),
                                     [d.key for d in threshold])
            for d in due:
                if d.rule.anomaly is not None:
                    self.scheduler.start(self._evaluate_anomaly(client, d), [d.key])

    def admitted(self, items: list[Item[Prepared]]) -> list[Item[Prepared]]:
        """The due rules to evaluate now. A rule's first evaluation at its spec writes status,
        so `unwritten` rules wait for the next tick while `STATUS_WRITE_BACKLOG` writes are
        waiting; rules evaluated before are never held back. Without the bound, 5,000 new
        rules (or a new generation of all of them) were all evaluated in the first seconds
        while their writes went out at the API rate for half a minute, each waiting write
        holding its evaluation, and that backlog set the operator's memory for good: 139–155
        MiB after it, 115–122 MiB with it (bench/README.md)."""
        room = STATUS_WRITE_BACKLOG - self.writes_waiting
        later = self.scheduler.clock() + self.scheduler.tick_seconds
        admitted = []
        for item in items:
            if item.key in self.unwritten:
                if room <= 0:
                    self.scheduler.schedule(item.key, later)
                    continue
                room -= 1
                self.unwritten.discard(item.key)
            admitted.append(item)
        return admitted

    async def _server_or_stall(self, item: Item[Prepared],
                               body: Mapping[str, Any]) -> tuple[Server, Rule] | None:
        """The Prometheus server and credential to query for a due rule, or None when the
        rule cannot be evaluated (it is marked Stalled with the reason)."""
        rule = item.prepared
        if isinstance(rule, InvalidSpec):
            await asyncio.to_thread(stall, self.kube, body, "InvalidSpec", rule.message)
            return None
        if rule.escalation_policy is not None:
            followed = await asyncio.to_thread(self.policies.follow, item.key[0], rule)
            if isinstance(followed, Unfollowable):
                await asyncio.to_thread(stall, self.kube, body, followed.reason, followed.message)
                return None
            rule = followed
        source = rule.prometheus
        url = source.url if source and source.url else self.default_prometheus
        if url is None:
            message = "no Prometheus: set spec.prometheus.url or the operator's --prometheus-url"
            await asyncio.to_thread(stall, self.kube, body, "NoPrometheus", message)
            return None
        if source is None or source.auth_secret_ref is None:
            return (url, None), rule
        try:
            return (url, await asyncio.to_thread(self._token, item.key[0], source)), rule
        except LookupError as missing:
            await asyncio.to_thread(stall, self.kube, body, "SecretNotFound", str(missing))
            return None

    async def _evaluate_threshold(self, client: PrometheusClient, due: list[DueRule]) -> None:
        """One server's threshold rules of a tick: their queries in one batch."""

        async def observe(now: datetime) -> Batch:
            results = await client.instant_many([d.rule.query for d in due], now)
            return [(threshold_evaluation(d.key, d.rule, results[d.rule.query]), d.body)
                    for d in due]

        await self._evaluate_batch(observe)

    async def _evaluate_anomaly(self, client: PrometheusClient, due: DueRule) -> None:
        async def observe(now: datetime) -> Batch:
            evaluation = await self.detectors.observe(due.key, due.rule, due.generation, client,
                                                      now)
            return [(evaluation, due.body)]

        await self._evaluate_batch(observe)

    async def _evaluate_batch(self, observe: Callable[[datetime], Awaitable[Batch]]) -> None:
        """Observe (query Prometheus), then finish every rule observed; both phases timed."""
        started = time.perf_counter()
        now = _now()
        batch = await observe(now)
        seconds = time.perf_counter() - started
        metrics.ALERT_EVALUATION_SECONDS.observe(seconds)
        await self._finish(batch, seconds, now)
        metrics.ALERT_BATCH_SECONDS.observe(time.perf_counter() - started)

    async def _finish(self, batch: Batch, seconds: float, now: datetime) -> None:
        """Decide the whole batch in one worker thread, without requests (most rules end
        there); then each rule with a status write due writes in the status-write pool, and
        each with notifications or actions due runs in the delivery pool, so receivers
        that are slow or down hold up neither the loop nor other rules."""
        decided = await asyncio.to_thread(self._decide_all, batch, seconds, now)
        rest = []
        for (evaluation, body), outcome in zip(batch, decided, strict=True):
            if isinstance(outcome, DecidedWrite | Deferred):
                rest.append(self._finish_one(evaluation, body, seconds, now, outcome))
            else:
                self._done(evaluation.key, outcome)
        await asyncio.gather(*rest)

    def _decide_all(self, batch: Batch, seconds: float,
                    now: datetime) -> list[Mapping[str, Any] | DecidedWrite | Deferred | None]:
        """Each rule's copy is decoded for its decision and released after it: the first
        round's batch is every rule, and holding all 5,000 decoded at once set the
        operator's peak memory (bench/README.md)."""
        decided = []
        for evaluation, body in batch:
            decided.append(
                self._evaluate_logging_errors(evaluation, body, seconds, now, False, False))
            body.release()
        return decided

    async def _finish_one(self, evaluation: Evaluation, body: Mapping[str, Any],
                          seconds: float, now: datetime,
                          deferred: DecidedWrite | Deferred) -> None:
        newest: Mapping[str, Any] | DecidedWrite | Deferred | None = deferred
        loop = asyncio.get_running_loop()
        try:
            if isinstance(newest, DecidedWrite):
                self.writes_waiting += 1
                try:
                    newest = await loop.run_in_executor(
                        self.writes, self._write_logging_errors, evaluation, body, seconds,
                        now, newest)
                finally:
                    self.writes_waiting -= 1
            if newest is Deferred.DELIVERY:
                newest = await loop.run_in_executor(
                    self.deliveries, self._evaluate_logging_errors, evaluation, body, seconds,
                    now, True, True)
        finally:
            self._done(evaluation.key, newest)

    def _done(self, key: Key, newest: Mapping[str, Any] | DecidedWrite | Deferred | None,
              ) -> None:
        """The rule's evaluation is over: it may be started again; cache what it returned."""
        self.scheduler.done(key, newest if isinstance(newest, Mapping) else None)

    def _write_logging_errors(
        self, evaluation: Evaluation, body: Mapping[str, Any], seconds: float, now: datetime,
        write: DecidedWrite,
    ) -> Mapping[str, Any] | DecidedWrite | Deferred | None:
        """Make the write the decision pass decided; when the rule moved on meanwhile, decide
        again from its newest copy."""
        namespace, name = evaluation.key

        def work() -> Mapping[str, Any] | DecidedWrite | Deferred | None:
            try:
                return write_decided(self.kube, evaluation.key, body, now, write)
            except StatusConflict:
                found = self.kube.get(API_VERSION, KIND, name, namespace)
                if found is None:
                    return None
                return evaluate(self.kube, evaluation, found, seconds, now,
                                self._heartbeat(evaluation.key), True, False, self.quiet)

        return self._logging_errors(evaluation.key, work)

    def _evaluate_logging_errors(
        self, evaluation: Evaluation, body: Mapping[str, Any], seconds: float, now: datetime,
        may_write: bool, may_deliver: bool,
    ) -> Mapping[str, Any] | DecidedWrite | Deferred | None:
        return self._logging_errors(evaluation.key, lambda: evaluate(
            self.kube, evaluation, body, seconds, now, self._heartbeat(evaluation.key),
            may_write, may_deliver, self.quiet))

    def _heartbeat(self, key: Key) -> Heartbeat:
        """The rule's heartbeat at the number of rules there are now. While kopf is still
        delivering the rules after a start, fewer are known than there are, and a period from
        that number would be short enough to make most of them due at once: until as many are
        known, the number counted at the start stands."""
        known = len(self.scheduler.items)
        if known >= self.counted_rules:
            self.counted_rules = 0
        period = heartbeat_period(max(known, self.counted_rules), self.heartbeat_writes)
        return heartbeat_of(key, period)

    @staticmethod
    def _logging_errors(
        key: Key, work: Callable[[], Mapping[str, Any] | DecidedWrite | Deferred | None],
    ) -> Mapping[str, Any] | DecidedWrite | Deferred | None:
        """One rule's failure (API error, bug) is logged and never stops the others."""
        try:
            return work()
        except TRANSIENT_API_ERRORS as error:
            log.warning("evaluating %s/%s failed, decided again at its next evaluation: %s",
                        *key, transient_error_message(error))
            return None
        except Exception:  # noqa: BLE001 - isolate one rule from the rest
            log.exception("evaluating %s/%s failed", *key)
            return None

    async def run_forever(self, namespaces: list[str | None]) -> None:
        """Evaluate the rules of `namespaces` (None: all) until cancelled, once they are
        counted (see `_heartbeat`)."""
        try:
            self.counted_rules = await asyncio.to_thread(
                self.kube.count, API_VERSION, KIND, namespaces)
        except TRANSIENT_API_ERRORS as error:
            log.warning("counting the AlertRules failed; heartbeats follow the rules known: %s",
                        transient_error_message(error))
        try:
            await self.scheduler.run_forever()
        finally:
            self.deliveries.shutdown(wait=False, cancel_futures=True)
            self.writes.shutdown(wait=False, cancel_futures=True)
            for client in self.clients.values():
                await client.close()


def register(operator: Operator) -> None:
    """Attach the AlertRule handlers and the evaluation loop. The handlers are async: they
    change the scheduler's state, which only the event loop touches."""
    config = operator.config
    evaluator = Evaluator(operator.kube, config.default_prometheus,
                          Links(config.external_url, config.prometheus_external_url),
                          config.alert_heartbeat_writes)

    async def rule_changed(body: kopf.Body, **_: Any) -> None:
        evaluator.scheduler.upsert(body)

    async def rule_gone(body: kopf.Body, **_: Any) -> None:
        evaluator.scheduler.forget((body["metadata"]["namespace"], body["metadata"]["name"]))

    register_kind(operator, AlertRule, changed=rule_changed, gone=rule_gone,
                  loop=lambda _: evaluator.run_forever(list(config.namespaces) or [None]))
