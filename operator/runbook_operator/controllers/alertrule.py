"""AlertRule: one evaluation loop for every rule (no long-lived thread or task per rule).

Each tick, the rules that are due are grouped by Prometheus server and their queries are sent
deduplicated and with bounded concurrency (`PrometheusClient.instant_many`), so a slow or broken
query times out on its own without stalling the others. Deciding (`core.alerting`) and writing
status happen in worker threads, from the operator's cached copy of each rule; notifications
and actions in a pool of their own. The loop does not wait for the evaluations it started, and
skips a rule until its previous evaluation is done. Status is
written only when something lasting changes, plus a heartbeat; per-tick values go to metrics.
Everything that must survive a restart — pending/firing times, what was notified — is in
status; the in-memory cache holds each rule's newest copy and when it is due next.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

import kopf
from pydantic import ValidationError

from runbook_operator.api.alertrule import (
    AlertRule,
    AlertRuleSpec,
    AlertRuleStatus,
    AnomalyStatus,
)
from runbook_operator.api.common import API_VERSION, GROUP, VERSION, parse_duration
from runbook_operator.controllers import metrics
from runbook_operator.controllers.alert_actions import last_action_at, record_actions, run_actions
from runbook_operator.controllers.common import status_patch
from runbook_operator.controllers.errors import (
    TRANSIENT_API_ERRORS,
    transient_error_message,
    validation_message,
)
from runbook_operator.controllers.notify import notify
from runbook_operator.core import alerting
from runbook_operator.core import anomaly as anomaly_core
from runbook_operator.core.conditions import Outcome, Phase, apply_outcome, set_condition
from runbook_operator.core.delivery import Notification, Source
from runbook_operator.integrations.kubernetes import STATUS_CONFLICT_RETRIES, Kube, StatusConflict
from runbook_operator.integrations.prometheus import (
    Ok,
    PrometheusClient,
    QueryError,
    QueryFailed,
    QueryResult,
)
from runbook_operator.integrations.secrets import read_secret

KIND = AlertRule.info.kind
PLURAL = AlertRule.info.plural
TICK_SECONDS = 1.0
#: Threads that send notifications and run actions. A receiver that is slow or down holds
#: one each (its timeout times its attempts) while every other rule is still evaluated.
DELIVERY_THREADS = 8
FIRING_CONDITION = "Firing"
#: How often an AlertRule's status is written when nothing lasting changed, so that
#: lastEvaluation and lastValue stay roughly current (they are metrics on every evaluation).
STATUS_HEARTBEAT = timedelta(minutes=5)
_EVENTS = {"firing": "firing", "error": "failed", "resolved": "resolved"}

log = logging.getLogger(__name__)
Key = tuple[str, str]
Server = tuple[str, str | None]
"""A Prometheus URL and the bearer token used with it (None: no credentials)."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Evaluation:
    """One rule's inputs for one tick: what was observed and what makes an instance active."""

    key: Key
    spec: AlertRuleSpec
    samples: list[alerting.Sample] | alerting.QueryError
    holds: Callable[[float], bool]
    error_kind: str | None = None
    anomaly: AnomalyStatus | None = None


def threshold_evaluation(key: Key, spec: AlertRuleSpec, result: QueryResult) -> Evaluation:
    condition = spec.condition
    assert condition is not None
    if isinstance(result, Ok):
        samples: list[alerting.Sample] | alerting.QueryError = [
            (s.labels, s.value) for s in result.samples]
        kind = None
    else:
        samples, kind = alerting.QueryError(result.message), result.kind
    return Evaluation(
        key, spec, samples,
        lambda value: alerting.compare(condition.operator, value, condition.threshold), kind,
    )


def timing(spec: AlertRuleSpec) -> alerting.RuleTiming:
    pending = spec.anomaly.for_ if spec.anomaly is not None else spec.for_
    return alerting.RuleTiming(
        for_=parse_duration(pending),
        keep_firing_for=parse_duration(spec.keep_firing_for),
        no_data_state=spec.no_data_state,
        error_state=spec.error_state,
    )


def channel_rules(refs: list[Any]) -> tuple[alerting.ChannelRule, ...]:
    return tuple(
        alerting.ChannelRule(name=c.name, repeat_interval=parse_duration(c.repeat_interval),
                             send_resolved=c.send_resolved)
        for c in refs
    )


def levels(spec: AlertRuleSpec) -> list[alerting.Level]:
    return [
        alerting.Level(after=parse_duration(level.after),
                       channels=channel_rules(level.channels or []), severity=level.severity)
        for level in spec.escalate_after
    ]


def notification_for(
    body: Mapping[str, Any], spec: AlertRuleSpec, instance: alerting.Instance,
    due: alerting.Due, now: datetime,
) -> Notification:
    """The message for one due notification, with the rule's annotations rendered for the
    instance's labels and value. The dedup key is the instance's fingerprint, so an incident
    tool groups trigger, repeats, escalations and resolve of one series together."""
    meta = body["metadata"]
    value = None if instance.last_value is None else float(instance.last_value)
    rendered = {k: alerting.render_template(v, instance.labels, value)
                for k, v in spec.annotations.items()}
    state = "resolved" if due.state == "resolved" else due.state
    title = rendered.pop("summary", "") or f"{meta['name']} is {state}"
    summary = rendered.pop("description", "")
    if not summary and instance.last_value is not None and spec.condition is not None:
        summary = (f"value {instance.last_value} {spec.condition.operator} "
                   f"{spec.condition.threshold:g}")
    if instance.last_error:
        summary = summary or instance.last_error
    return Notification(
        source=Source(kind=KIND, name=meta["name"], namespace=meta["namespace"]),
        event="escalated" if due.reason == "escalated" else _EVENTS[due.state],
        severity=due.severity,
        title=title[:1024],
        summary=summary[:1024],
        details=rendered,
        labels={**spec.labels, **instance.labels},
        timestamp=now,
        started_at=instance.active_since or now,
        dedup_key=instance.fingerprint,
    )


@dataclass(frozen=True)
class Decision:
    """What one evaluation decided before anything is sent: the instances' next states, the
    notifications due, and the firing instance an automated action is due for."""

    instances: list[alerting.Instance]
    due: list[alerting.Due]
    act_for: alerting.Instance | None

    @property
    def has_effects(self) -> bool:
        return bool(self.due) or self.act_for is not None


def decide(old: AlertRuleStatus, evaluation: Evaluation, now: datetime) -> Decision:
    spec = evaluation.spec
    namespace, name = evaluation.key
    instances = alerting.evaluate_rule(
        old.instances, evaluation.samples, timing(spec), now, holds=evaluation.holds,
        identity=(KIND, namespace, name),
    )
    due = alerting.notifications_due(instances, channel_rules(spec.channels), old.notifications,
                                     now, severity=spec.severity, levels=levels(spec))
    firing = next((i for i in instances if i.state == "Firing"), None)
    act_for = firing if (spec.actions is not None and firing is not None and alerting.action_due(
        last_action_at(old), parse_duration(spec.actions.cooldown), now)) else None
    return Decision(instances, due, act_for)


def carry_out(kube: Kube, body: Mapping[str, Any], old: AlertRuleStatus, evaluation: Evaluation,
              decision: Decision, now: datetime) -> tuple[list[Any], list[Any]]:
    """Send the due notifications and run the due actions; their records for status."""
    namespace = evaluation.key[0]
    spec = evaluation.spec
    by_fingerprint = {i.fingerprint: i for i in decision.instances}
    sent = []
    for item in decision.due:
        message = notification_for(body, spec, by_fingerprint[item.fingerprint], item, now)
        (outcome,) = notify(kube, namespace, [item.channel], message)
        metrics.NOTIFICATIONS.labels(KIND, outcome.result).inc()
        sent.append(alerting.sent_record(item, outcome.result, now))
    actions = old.actions
    if decision.act_for is not None and spec.actions is not None:
        actions = record_actions(old, run_actions(kube, dict(body), spec.actions,
                                                  decision.act_for, now))
    return sent, actions


def next_status(old: AlertRuleStatus, evaluation: Evaluation, decision: Decision, sent: list[Any],
                actions: list[Any], seconds: float, now: datetime,
                generation: int) -> tuple[AlertRuleStatus, Outcome]:
    """The status after this evaluation; `generation` is that of the spec evaluated."""
    instances = decision.instances
    summary = alerting.summarize(instances)
    samples = evaluation.samples
    error = samples.message if isinstance(samples, alerting.QueryError) else None
    if evaluation.error_kind == "bad_data":
        outcome = Outcome(Phase.STALLED, "InvalidQuery", f"Prometheus: {error}")
    elif error is not None:
        outcome = Outcome(Phase.RECONCILING, "QueryFailed", f"{evaluation.error_kind}: {error}")
    else:
        outcome = Outcome(Phase.READY, "Evaluating", f"{len(instances)} series, "
                          f"{summary.firing} firing")
    conditions = apply_outcome(old.conditions, outcome, now, generation)
    conditions = set_condition(
        conditions, FIRING_CONDITION, "True" if summary.firing else "False",
        "Firing" if summary.firing else "NotFiring",
        f"{summary.firing} instance(s) firing", now, generation,
    )
    new = old.model_copy(update={
        "observed_generation": generation,
        "conditions": conditions,
        "state": summary.state,
        "active_since": summary.active_since,
        "last_value": summary.last_value,
        "last_evaluation": now,
        "last_error": error,
        "evaluation_duration_seconds": round(seconds, 4),
        "instances": instances,
        "notifications": alerting.record_notifications(old.notifications, sent, instances),
        "anomaly": evaluation.anomaly or old.anomaly,
        "actions": actions,
    })
    return new, outcome


class Deferred(Enum):
    """Why an evaluation stopped before making a request it was not allowed to make where it
    ran: run it again where it may."""

    WRITE = "a status write is due"
    DELIVERY = "notifications or actions are due"


def evaluate(kube: Kube, evaluation: Evaluation, body: Mapping[str, Any], seconds: float,
             now: datetime, heartbeat: timedelta = STATUS_HEARTBEAT, may_write: bool = True,
             may_deliver: bool = True) -> Mapping[str, Any] | Deferred | None:
    """Decide, notify, and write status for one rule (blocking: runs in a worker thread).

    Decides from `body`, the operator's cached copy of the rule (its spec is the one
    evaluated), so an evaluation that changes nothing lasting costs no API request. Before
    sending or acting it re-reads the rule, so a stale cache can never repeat a notification;
    the write is guarded by the resourceVersion the decision was made from. Returns the
    newest copy of the rule it saw or wrote (None: the rule is gone), or why it stopped when
    a write is due and not `may_write`, or notifications or actions and not `may_deliver`."""
    namespace, name = evaluation.key
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
        if not alerting.status_write_due(old, new, now, heartbeat):
            metrics.publish_alert(namespace, name, new.state or "Normal", now, new.last_value)
            return body
        if not may_write:
            return Deferred.WRITE
        patch = status_patch(old, new)
        assert patch is not None
        try:
            written = kube.patch_status(API_VERSION, KIND, name, namespace, patch,
                                        body["metadata"]["resourceVersion"])
        except StatusConflict:
            if decision.has_effects:
                # Sent already: record it on the fresh object rather than deciding again.
                written = kube.update_status(API_VERSION, KIND, name, namespace,
                                             lambda _: patch)
            else:
                found = kube.get(API_VERSION, KIND, name, namespace)
                if found is None:
                    return None
                body, fresh = found, True
                continue
        metrics.publish_alert(namespace, name, new.state or "Normal", now, new.last_value)
        if outcome.reason == "InvalidQuery" and old.last_error != new.last_error:
            kube.event(dict(body), "Warning", "InvalidQuery", outcome.message)
        return written
    raise StatusConflict(f"{KIND} {namespace}/{name}: status kept changing while evaluated")


def heartbeat_of(key: Key) -> timedelta:
    """The rule's heartbeat, 80–100 % of STATUS_HEARTBEAT by a hash of its name, so that rules
    created together do not keep writing together."""
    spread = zlib.crc32("/".join(key).encode()) / 2**32
    return STATUS_HEARTBEAT * (0.8 + 0.2 * spread)


def stall(kube: Kube, body: Mapping[str, Any], reason: str, message: str) -> None:
    """Write Stalled for a rule the operator cannot evaluate, once per distinct message."""
    meta = body["metadata"]
    old = AlertRuleStatus.model_validate(body.get("status") or {})
    before = next((c for c in old.conditions if c.type == "Stalled"), None)
    outcome = Outcome(Phase.STALLED, reason, message)
    new = old.model_copy(update={
        "observed_generation": meta["generation"],
        "conditions": apply_outcome(old.conditions, outcome, _now(), meta["generation"]),
    })
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
    generation: int


class Detectors:
    """IsolationForest models per anomaly rule: trained on a query_range window, retrained on
    an interval (not every evaluation), never firing before `minSamples` rows."""

    def __init__(self) -> None:
        self.models: dict[Key, Detector] = {}

    def forget(self, key: Key) -> None:
        self.models.pop(key, None)

    async def _train(self, spec: AlertRuleSpec, client: PrometheusClient, now: datetime,
                     generation: int) -> Detector | Evaluation:
        anomaly = spec.anomaly
        assert anomaly is not None
        window = parse_duration(anomaly.training_window)
        series: dict[str, list[tuple[float, float]]] = {}
        for named in anomaly.queries:
            try:
                found = await client.range(named.query, now - window, now,
                                           parse_duration(anomaly.step))
            except QueryFailed as failed:
                return Evaluation(("", ""), spec, alerting.QueryError(failed.error.message),
                                  lambda _: False, failed.error.kind)
            if len(found) > 1:
                message = (f"anomaly query {named.name!r} returned {len(found)} series; each "
                           "must return exactly one (aggregate with sum or avg)")
                return Evaluation(("", ""), spec, alerting.QueryError(message),
                                  lambda _: False, "bad_data")
            series[named.name] = found[0].points if found else []
        rows = anomaly_core.align(series)
        if not anomaly_core.warm(rows, anomaly.min_samples):
            return Evaluation(("", ""), spec, [], lambda _: False,
                              anomaly=AnomalyStatus(samples=len(rows)))
        model = await asyncio.to_thread(
            anomaly_core.train, rows, anomaly.contamination, 0, anomaly.score_threshold)
        return Detector(model, now, generation)

    async def observe(self, key: Key, spec: AlertRuleSpec, client: PrometheusClient,
                      now: datetime) -> Evaluation:
        """Score the newest point of every named query with the rule's model."""
        anomaly = spec.anomaly
        assert anomaly is not None
        generation = hash(spec.model_dump_json())
        detector = self.models.get(key)
        stale = detector is None or detector.generation != generation or (
            anomaly_core.should_retrain(detector.trained_at,
                                        parse_duration(anomaly.retrain_interval), now))
        if stale:
            trained = await self._train(spec, client, now, generation)
            if isinstance(trained, Evaluation):
                trained.key = key
                return trained
            self.models[key] = detector = trained
        assert detector is not None
        results = await client.instant_many([q.query for q in anomaly.queries], now)
        point = []
        for named in anomaly.queries:
            result = results[named.query]
            if isinstance(result, QueryError):
                return Evaluation(key, spec, alerting.QueryError(result.message),
                                  lambda _: False, result.kind)
            if len(result.samples) != 1:
                return Evaluation(key, spec, [], lambda _: False)
            point.append(result.samples[0].value)
        model = detector.model
        value = anomaly_core.score(model, point)
        status = AnomalyStatus(trained_at=detector.trained_at, samples=model.samples,
                               threshold=model.threshold, last_score=round(value, 4))
        return Evaluation(key, spec, [({}, value)],
                          lambda s: anomaly_core.anomalous(model, s), anomaly=status)


def _newer(candidate: Mapping[str, Any], cached: Mapping[str, Any]) -> bool:
    """Whether `candidate` is a later version of the object than `cached`. The cache holds the
    operator's own status writes too, and the watch event of an earlier write can arrive after
    a later write returned; resourceVersions are etcd revisions, compared as numbers when they
    are numbers (otherwise the candidate wins)."""
    theirs = str(candidate["metadata"].get("resourceVersion", ""))
    ours = str(cached["metadata"].get("resourceVersion", ""))
    if theirs.isdigit() and ours.isdigit():
        return int(theirs) >= int(ours)
    return True


class Evaluator:
    """The rules the operator knows and when each is due; the loop that evaluates them."""

    def __init__(self, kube: Kube, default_prometheus: str | None) -> None:
        self.kube = kube
        self.default_prometheus = default_prometheus
        self.rules: dict[Key, dict[str, Any]] = {}
        self.next_due: dict[Key, float] = {}
        self.clients: dict[Server, PrometheusClient] = {}
        self.detectors = Detectors()
        #: Rules whose evaluation has started and not finished; a tick skips them.
        self.in_flight: set[Key] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.deliveries = ThreadPoolExecutor(DELIVERY_THREADS, thread_name_prefix="deliver")

    def upsert(self, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        previous = self.rules.get(key)
        if previous is not None and not _newer(body, previous):
            return
        self.rules[key] = dict(body)
        changed = previous is None or previous["metadata"].get("generation") != meta.get(
            "generation")
        if changed:
            self.next_due[key] = self._first_due(body)

    def forget(self, namespace: str, name: str) -> None:
        self.detectors.forget((namespace, name))
        self.rules.pop((namespace, name), None)
        self.next_due.pop((namespace, name), None)
        metrics.forget_alert(namespace, name)

    def _first_due(self, body: Mapping[str, Any]) -> float:
        """A new rule or spec change is evaluated at once; after a restart a rule whose status
        was written within its interval waits for the rest of it. `lastEvaluation` is only
        as fresh as the last status write (changes and the heartbeat), so most rules are
        evaluated at once after a restart; `for` and notifications are unaffected."""
        status = body.get("status") or {}
        if status.get("observedGeneration") != body["metadata"].get("generation"):
            return time.monotonic()
        last = status.get("lastEvaluation")
        try:
            interval = parse_duration((body.get("spec") or {}).get("interval", "1m"))
        except ValueError:
            return time.monotonic()
        if not last:
            return time.monotonic()
        age = (_now() - datetime.fromisoformat(last.replace("Z", "+00:00"))).total_seconds()
        return time.monotonic() + max(0.0, interval.total_seconds() - age)

    def _client(self, server: Server) -> PrometheusClient:
        """One client (connection pool, concurrency bound) per server and credential."""
        url, token = server
        if server not in self.clients:
            headers = {"Authorization": f"Bearer {token}"} if token else None
            self.clients[server] = PrometheusClient(url, headers=headers)
        return self.clients[server]

    def _token(self, namespace: str, spec: AlertRuleSpec) -> str:
        """The bearer token from spec.prometheus.authSecretRef (blocking: a worker thread)."""
        assert spec.prometheus is not None and spec.prometheus.auth_secret_ref is not None
        return read_secret(self.kube, namespace, spec.prometheus.auth_secret_ref)

    def _due_rules(
        self,
    ) -> list[tuple[Key, dict[str, Any], AlertRuleSpec | None, str | None]]:
        """Rules due now with their Prometheus URL; an invalid spec comes with its message
        instead of a spec."""
        now = time.monotonic()
        due = []
        for key, body in list(self.rules.items()):
            if self.next_due.get(key, 0) > now or key in self.in_flight:
                continue
            try:
                spec = AlertRuleSpec.model_validate(dict(body.get("spec") or {}))
            except ValidationError as error:
                self.next_due[key] = now + 60
                due.append((key, body, None, validation_message(error, "spec")))
                continue
            self.next_due[key] = now + parse_duration(spec.interval).total_seconds()
            url = (spec.prometheus.url if spec.prometheus and spec.prometheus.url
                   else self.default_prometheus)
            due.append((key, body, spec, url))
        return due

    async def tick(self) -> None:
        """Start the due rules' evaluations and return without waiting for them: a rule still
        being evaluated (a slow Prometheus, a receiver that takes its time) is skipped until
        it is done, and holds up no other rule."""
        runnable = []
        for key, body, spec, detail in self._due_rules():
            try:
                server = await self._server_or_stall(key, body, spec, detail)
            except TRANSIENT_API_ERRORS as error:
                log.warning("evaluating %s/%s failed, retried at its next evaluation: %s",
                            *key, transient_error_message(error))
                continue
            if server is not None and spec is not None:
                runnable.append((key, body, spec, server))
        by_server: dict[Server, list[tuple[Key, dict[str, Any], AlertRuleSpec]]] = {}
        for key, body, spec, server in runnable:
            by_server.setdefault(server, []).append((key, body, spec))
        for server, rules in by_server.items():
            client = self._client(server)
            threshold = [(key, body, spec) for key, body, spec in rules if spec.anomaly is None]
            if threshold:
                self._start(self._evaluate_threshold(client, threshold),
                            [key for key, _, _ in threshold])
            for key, body, spec in rules:
                if spec.anomaly is not None:
                    self._start(self._evaluate_anomaly(client, key, body, spec), [key])

    async def _server_or_stall(self, key: Key, body: dict[str, Any], spec: AlertRuleSpec | None,
                               detail: str | None) -> Server | None:
        """The Prometheus server and credential to query for a due rule, or None when the
        rule cannot be evaluated (it is marked Stalled with the reason)."""
        if spec is None:
            await asyncio.to_thread(stall, self.kube, body, "InvalidSpec", detail or "")
            return None
        if detail is None:
            message = "no Prometheus: set spec.prometheus.url or the operator's --prometheus-url"
            await asyncio.to_thread(stall, self.kube, body, "NoPrometheus", message)
            return None
        if spec.prometheus is None or spec.prometheus.auth_secret_ref is None:
            return detail, None
        try:
            return detail, await asyncio.to_thread(self._token, key[0], spec)
        except LookupError as missing:
            await asyncio.to_thread(stall, self.kube, body, "SecretNotFound", str(missing))
            return None

    async def settle(self) -> None:
        """Wait until every evaluation started so far is done."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks))

    def _start(self, work: Coroutine[Any, Any, None], keys: list[Key]) -> None:
        """Run `work` for the rules `keys` in the background; they are in flight until done."""
        self.in_flight.update(keys)

        async def guarded() -> None:
            try:
                await work
            except Exception:  # noqa: BLE001 - the loop must survive anything
                log.exception("evaluating %s failed", ", ".join("/".join(k) for k in keys))
            finally:
                self.in_flight.difference_update(keys)

        task = asyncio.create_task(guarded())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _evaluate_threshold(
        self, client: PrometheusClient, rules: list[tuple[Key, dict[str, Any], AlertRuleSpec]],
    ) -> None:
        """One server's threshold rules of a tick: their queries in one batch."""
        async def observe(now: datetime) -> list[tuple[Evaluation, Mapping[str, Any]]]:
            results = await client.instant_many([spec.query for _, _, spec in rules], now)
            return [(threshold_evaluation(key, spec, results[spec.query]), body)
                    for key, body, spec in rules]

        await self._evaluate_batch(observe)

    async def _evaluate_anomaly(self, client: PrometheusClient, key: Key, body: dict[str, Any],
                                spec: AlertRuleSpec) -> None:
        async def observe(now: datetime) -> list[tuple[Evaluation, Mapping[str, Any]]]:
            return [(await self.detectors.observe(key, spec, client, now), body)]

        await self._evaluate_batch(observe)

    async def _evaluate_batch(
        self,
        observe: Callable[[datetime], Awaitable[list[tuple[Evaluation, Mapping[str, Any]]]]],
    ) -> None:
        """Observe (query Prometheus), then finish every rule observed; both phases timed."""
        started = time.perf_counter()
        now = _now()
        batch = await observe(now)
        seconds = time.perf_counter() - started
        metrics.ALERT_EVALUATION_SECONDS.observe(seconds)
        await self._finish(batch, seconds, now)
        metrics.ALERT_BATCH_SECONDS.observe(time.perf_counter() - started)

    async def _finish(self, batch: list[tuple[Evaluation, Mapping[str, Any]]], seconds: float,
                      now: datetime) -> None:
        """Decide the whole batch in one worker thread, without requests (most rules end
        there); then each rule with a status write due writes in a worker thread of its own,
        and each with notifications or actions due runs in the delivery pool, so receivers
        that are slow or down hold up neither the loop nor other rules."""
        decided = await asyncio.to_thread(self._decide_all, batch, seconds, now)
        rest = []
        for (evaluation, body), outcome in zip(batch, decided, strict=True):
            if isinstance(outcome, Deferred):
                rest.append(self._finish_one(evaluation, body, seconds, now, outcome))
            else:
                self._done(evaluation.key, outcome)
        await asyncio.gather(*rest)

    def _decide_all(self, batch: list[tuple[Evaluation, Mapping[str, Any]]], seconds: float,
                    now: datetime) -> list[Mapping[str, Any] | Deferred | None]:
        return [self._evaluate_logging_errors(evaluation, body, seconds, now, False, False)
                for evaluation, body in batch]

    async def _finish_one(self, evaluation: Evaluation, body: Mapping[str, Any],
                          seconds: float, now: datetime, deferred: Deferred) -> None:
        newest: Mapping[str, Any] | Deferred | None = deferred
        try:
            if newest is Deferred.WRITE:
                newest = await asyncio.to_thread(self._evaluate_logging_errors, evaluation,
                                                 body, seconds, now, True, False)
            if newest is Deferred.DELIVERY:
                newest = await asyncio.get_running_loop().run_in_executor(
                    self.deliveries, self._evaluate_logging_errors, evaluation, body, seconds,
                    now, True, True)
        finally:
            self._done(evaluation.key, newest)

    def _done(self, key: Key, newest: Mapping[str, Any] | Deferred | None) -> None:
        """The rule's evaluation is over: it may be started again; cache what it returned."""
        self.in_flight.discard(key)
        if key not in self.rules:  # deleted meanwhile: drop what the evaluation published
            metrics.forget_alert(*key)
        elif isinstance(newest, Mapping):
            self.upsert(newest)

    def _evaluate_logging_errors(
        self, evaluation: Evaluation, body: Mapping[str, Any], seconds: float, now: datetime,
        may_write: bool, may_deliver: bool,
    ) -> Mapping[str, Any] | Deferred | None:
        """One rule's failure (API error, bug) is logged and never stops the others."""
        try:
            return evaluate(self.kube, evaluation, body, seconds, now,
                            heartbeat_of(evaluation.key), may_write, may_deliver)
        except TRANSIENT_API_ERRORS as error:
            log.warning("evaluating %s/%s failed, decided again at its next evaluation: %s",
                        *evaluation.key, transient_error_message(error))
            return None
        except Exception:  # noqa: BLE001 - isolate one rule from the rest
            log.exception("evaluating %s/%s failed", *evaluation.key)
            return None

    async def run_forever(self) -> None:
        try:
            while True:
                await asyncio.sleep(TICK_SECONDS)
                try:
                    await self.tick()
                except Exception:  # noqa: BLE001 - the loop must survive anything
                    log.exception("alert evaluation tick failed")
        finally:
            for task in list(self.tasks):
                task.cancel()
            self.deliveries.shutdown(wait=False, cancel_futures=True)
            for client in self.clients.values():
                await client.close()


def register(
    registry: kopf.OperatorRegistry, kube: Kube, default_prometheus: str | None
) -> None:
    """Attach the AlertRule handlers to `registry`."""
    evaluator = Evaluator(kube, default_prometheus)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def rule_changed(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
        meta = body["metadata"]
        if event.get("type") == "DELETED" or meta.get("deletionTimestamp"):
            evaluator.forget(meta["namespace"], meta["name"])
        else:
            evaluator.upsert(body)

    @kopf.on.startup(registry=registry)
    async def start_evaluating(memo: kopf.Memo, **_: Any) -> None:
        memo.alert_evaluator = asyncio.create_task(evaluator.run_forever())

    @kopf.on.cleanup(registry=registry)
    async def stop_evaluating(memo: kopf.Memo, **_: Any) -> None:
        memo.alert_evaluator.cancel()
