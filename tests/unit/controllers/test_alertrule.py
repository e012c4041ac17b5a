"""controllers.alertrule: which API requests one evaluation makes, and how the evaluation
loop keeps rules apart, against an in-memory stand-in for the Kube adapter (the e2e tests run
the real API server)."""

from __future__ import annotations

import asyncio
import base64
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from runbook_operator.api.common import NotificationRecord
from runbook_operator.controllers import alertrule, metrics
from runbook_operator.controllers.scheduler import Snapshot, pack
from runbook_operator.core.alertrule.decide import Evaluation
from runbook_operator.core.alertrule.rule import Rule
from runbook_operator.core.alertrule.status import heartbeat_of
from runbook_operator.devcluster.waiting import wait_for
from runbook_operator.integrations.kubeapi import ApiError
from runbook_operator.integrations.prometheus import Ok, Sample
from tests.support.fakes import FakeKube

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
KEY = ("shop", "web-5xx")
SPEC = {"query": "errors", "condition": {"operator": "gt", "threshold": 0.05}, "for": "0s",
        "interval": "15s", "channels": [{"name": "oncall"}]}


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Notifications are recorded instead of delivered."""
    log: list[str] = []

    def notify_channel(kube, namespace, channel, compose):
        messages = compose(False)
        log.extend(f"{message.event}:{channel}" for message in messages)
        return [(message, delivered(message, channel)) for message in messages]

    monkeypatch.setattr(alertrule, "notify_channel", notify_channel)
    return log


def delivered(message: Any, channel: str) -> NotificationRecord:
    return NotificationRecord(time=message.timestamp, channel=channel,
                              fingerprint=message.dedup_key, event=message.event,
                              severity=message.severity, result="delivered", attempt=1)


def body(generation: int = 1, status: dict | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "runbook.dev/v1alpha1", "kind": "AlertRule",
            "metadata": {"name": KEY[1], "namespace": KEY[0], "generation": generation,
                         "resourceVersion": "100", "uid": "u1"},
            "spec": {**SPEC, **spec}, "status": status or {}}


def observe(rule: dict[str, Any], value: float) -> Evaluation:
    compiled = alertrule.prepare(rule)
    assert isinstance(compiled, Rule)
    return alertrule.threshold_evaluation(KEY, compiled, Ok([Sample({"service": "web"}, value)]))


def rule_sample(name: str, labels: dict[str, str]) -> float | None:
    """A per-rule series' value as /metrics renders it (None: no such series)."""
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def run(kube: FakeKube, rule: dict[str, Any], value: float, now: datetime) -> dict[str, Any]:
    newest = alertrule.evaluate(kube, observe(rule, value), rule, 0.01, now)  # type: ignore[arg-type]
    assert newest is not None
    return dict(newest)


def test_first_evaluation_is_one_write_without_a_read(sent: list[str]) -> None:
    kube = FakeKube(body())
    written = run(kube, body(), 0.01, T0)
    assert kube.requests == ["patch"]
    assert written["status"]["state"] == "Normal" and sent == []


def test_an_evaluation_that_changes_nothing_lasting_makes_no_request(sent: list[str]) -> None:
    kube = FakeKube(body())
    cached = run(kube, body(), 0.01, T0)
    kube.requests.clear()
    again = run(kube, cached, 0.02, T0 + timedelta(seconds=15))  # another value, same state
    assert kube.requests == []
    assert again == cached


@pytest.mark.parametrize(("values", "state"), [((0.01, 0.02, 0.03), "Normal"),
                                               ((0.5, 0.6, 0.7), "Firing")])
def test_a_rule_that_stays_normal_or_firing_is_not_decided_again(
        sent: list[str], monkeypatch: pytest.MonkeyPatch, values: tuple[float, ...],
        state: str) -> None:
    kube = FakeKube(body())
    quiet: dict[alertrule.Key, Any] = {}
    cached = run(kube, body(), values[0], T0)
    assert cached["status"]["state"] == state
    kube.requests.clear()
    rule = alertrule.prepare(cached)
    assert isinstance(rule, Rule)

    def evaluate(value: float, seconds: int) -> Any:
        observed = alertrule.threshold_evaluation(KEY, rule, Ok([Sample({"service": "web"},
                                                                        value)]))
        return alertrule.evaluate(kube, observed, cached, 0.01, T0 + timedelta(seconds=seconds),
                                  quiet=quiet)

    assert evaluate(values[1], 15) is cached and KEY in quiet
    monkeypatch.setattr(alertrule, "decide", None)  # deciding again would fail
    assert evaluate(values[2], 30) is cached
    assert kube.requests == []
    labels = {"namespace": KEY[0], "rule": KEY[1]}
    assert rule_sample("runbook_alert_value", labels) == values[2]
    assert rule_sample("runbook_alert_state", {**labels, "state": state}) == 1


def test_the_heartbeat_writes_time_and_value(sent: list[str]) -> None:
    kube = FakeKube(body())
    cached = run(kube, body(), 0.01, T0)
    kube.requests.clear()
    later = heartbeat_of(KEY).after(T0)
    run(kube, cached, 0.02, later - timedelta(seconds=1))
    assert kube.requests == []
    written = run(kube, cached, 0.02, later)
    assert kube.requests == ["patch"]
    assert written["status"]["lastValue"] == "0.02"
    assert written["status"]["lastEvaluation"] == later.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(("budget", "minutes"), [(2.0, 42), (0.0, 5)])
def test_with_thousands_of_rules_the_heartbeat_comes_less_often(
        sent: list[str], budget: float, minutes: int) -> None:
    """5,000 rules within 2 heartbeat writes a second: a rule beats once every 42 minutes,
    not 5 (0: no budget)."""
    kube = FakeKube(body())
    cached = run(kube, body(), 0.01, T0)
    kube.requests.clear()
    evaluator = alertrule.Evaluator(kube, None, heartbeat_writes=budget)  # type: ignore[arg-type]
    evaluator.scheduler.items.update({("shop", f"rule-{i}"): None for i in range(5_000)})  # type: ignore[misc]
    evaluation = observe(cached, 0.02)
    beat = heartbeat_of(KEY, timedelta(minutes=minutes)).after(T0)
    assert evaluator._evaluate_logging_errors(evaluation, cached, 0.01,
                                              beat - timedelta(seconds=1), True, True) is cached
    assert kube.requests == []
    evaluator._evaluate_logging_errors(evaluation, cached, 0.01, beat, True, True)
    assert kube.requests == ["patch"]


def counting_evaluator(monkeypatch: pytest.MonkeyPatch, counted: int | Exception,
                       ) -> tuple[alertrule.Evaluator, list[Any]]:
    """An Evaluator whose Kube counts `counted` AlertRules (or fails so); its scheduler's loop
    only notes the rule's heartbeat period when it starts."""
    kube = FakeKube(body())
    noted: list[Any] = []

    def count(api_version: str, kind: str, namespaces: list[str | None]) -> int:
        noted.append((kind, namespaces))
        if isinstance(counted, Exception):
            raise counted
        return counted

    kube.count = count  # type: ignore[attr-defined]
    evaluator = alertrule.Evaluator(kube, None)  # type: ignore[arg-type]

    async def loop() -> None:
        noted.append(evaluator._heartbeat(KEY).period)

    monkeypatch.setattr(evaluator.scheduler, "run_forever", loop)
    asyncio.run(evaluator.run_forever(["shop"]))
    return evaluator, noted


def test_heartbeats_follow_the_rules_counted_at_the_start_until_as_many_are_known(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """After a restart kopf delivers the rules over seconds; a period from the few known at
    first would make most of 5,000 rules' heartbeats due at once."""
    evaluator, noted = counting_evaluator(monkeypatch, 5_000)
    assert noted == [("AlertRule", ["shop"]), timedelta(minutes=42)]  # 0 known, 5,000 counted
    rules = [("shop", f"rule-{i}") for i in range(5_000)]
    for key in rules[4_000:]:  # deleted before the start delivered them
        evaluator.scheduler.forget(key)
    assert evaluator._heartbeat(KEY).period == timedelta(minutes=34)  # 4,000
    evaluator.scheduler.items.update({key: None for key in rules[:4_000]})  # type: ignore[misc]
    for key in rules[:3_000]:
        evaluator.scheduler.forget(key)
    assert evaluator._heartbeat(KEY).period == timedelta(minutes=9)  # the 1,000 known


def test_a_start_whose_count_fails_follows_the_rules_known(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _, noted = counting_evaluator(monkeypatch, ApiError(503, "Service Unavailable", ""))
    assert noted == [("AlertRule", ["shop"]), timedelta(minutes=5)]


def test_a_state_change_rereads_before_notifying_then_writes_once(sent: list[str]) -> None:
    kube = FakeKube(body())
    cached = run(kube, body(), 0.01, T0)
    kube.requests.clear()
    written = run(kube, cached, 0.5, T0 + timedelta(seconds=15))
    assert kube.requests == ["get", "patch"] and sent == ["firing:oncall"]
    assert written["status"]["state"] == "Firing"


def test_a_stale_cache_never_repeats_a_notification(sent: list[str]) -> None:
    kube = FakeKube(body())
    stale = run(kube, body(), 0.01, T0)
    run(kube, stale, 0.5, T0 + timedelta(seconds=15))  # fires and notifies
    assert sent == ["firing:oncall"]
    # The cache still holds the Normal copy (the watch event of the write has not arrived).
    written = run(kube, stale, 0.5, T0 + timedelta(seconds=30))
    assert sent == ["firing:oncall"]
    assert written["status"]["state"] == "Firing"


def test_a_conflict_without_side_effects_decides_again_on_the_fresh_copy(
        sent: list[str]) -> None:
    kube = FakeKube(body())
    stale = run(kube, body(), 0.5, T0)  # Firing, notified
    recovered = run(kube, stale, 0.01, T0 + timedelta(seconds=15))  # Normal, resolved sent
    assert sent == ["firing:oncall", "resolved:oncall"]
    kube.requests.clear()
    # From the stale Firing copy the decision would be "resolve": the re-read shows it is done.
    run(kube, stale, 0.01, T0 + timedelta(seconds=30))
    assert sent == ["firing:oncall", "resolved:oncall"]
    assert kube.stored["status"]["state"] == "Normal"
    assert kube.stored["status"]["notifications"] == recovered["status"]["notifications"]


def test_a_decision_pass_makes_no_request_and_says_what_is_due(sent: list[str]) -> None:
    kube = FakeKube(body())
    first = alertrule.evaluate(kube, observe(body(), 0.01), body(), 0.01, T0,  # type: ignore[arg-type]
                               may_write=False, may_deliver=False)
    assert isinstance(first, alertrule.DecidedWrite)  # the first status
    cached = run(kube, body(), 0.01, T0)
    kube.requests.clear()
    later = T0 + timedelta(seconds=15)
    firing = alertrule.evaluate(kube, observe(cached, 0.5), cached, 0.01, later,  # type: ignore[arg-type]
                                may_write=False, may_deliver=False)
    assert firing is alertrule.Deferred.DELIVERY
    same = alertrule.evaluate(kube, observe(cached, 0.02), cached, 0.01, later,  # type: ignore[arg-type]
                              may_write=False, may_deliver=False)
    assert same == cached
    assert kube.requests == [] and sent == []


def test_the_status_write_pool_makes_the_decided_write_without_deciding_again(
        sent: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    decided = alertrule.evaluate(FakeKube(body()), observe(body(), 0.5), body(), 0.01, T0,  # type: ignore[arg-type]
                                 may_write=False, may_deliver=True)
    assert isinstance(decided, alertrule.DecidedWrite)  # Firing, sent: the write is left
    elsewhere = FakeKube(body())
    expected = run(elsewhere, body(), 0.5, T0)
    kube = FakeKube(body())
    monkeypatch.setattr(alertrule, "decide", None)  # deciding again would fail
    written = alertrule.write_decided(kube, KEY, body(), T0, decided)  # type: ignore[arg-type]
    assert kube.requests == ["patch"] and written == expected
    assert rule_sample(
        "runbook_alert_state", {"namespace": KEY[0], "rule": KEY[1], "state": "Firing"}) == 1


def test_a_decided_write_onto_a_rule_that_moved_on_is_decided_again(sent: list[str]) -> None:
    kube = FakeKube(body())
    evaluation = observe(body(), 0.01)
    decided = alertrule.evaluate(kube, evaluation, body(), 0.01, T0,  # type: ignore[arg-type]
                                 may_write=False, may_deliver=False)
    assert isinstance(decided, alertrule.DecidedWrite)
    run(kube, body(), 0.01, T0)  # another writer got there first
    kube.requests.clear()
    evaluator = alertrule.Evaluator(kube, None)  # type: ignore[arg-type]
    newest = evaluator._write_logging_errors(evaluation, body(), 0.01, T0, decided)
    # The stale write is refused; decided again from the newest copy, nothing is left to write.
    assert kube.requests == ["patch", "get"]
    assert newest == kube.stored


def test_a_batch_is_decided_one_decoded_rule_at_a_time(sent: list[str]) -> None:
    kube = FakeKube(body())
    rule = body()
    snapshots = [Snapshot(pack(rule), rule["metadata"]["resourceVersion"]) for _ in range(3)]
    evaluator = alertrule.Evaluator(kube, None)  # type: ignore[arg-type]
    decided = evaluator._decide_all([(observe(rule, 0.5), s) for s in snapshots], 0.01, T0)
    assert decided == [alertrule.Deferred.DELIVERY] * 3  # it fires; sent in the delivery pool
    assert not any("_decoded" in vars(s) for s in snapshots)


def test_observed_generation_is_that_of_the_spec_evaluated(sent: list[str]) -> None:
    kube = FakeKube(body(generation=2))
    kube.stored["spec"]["condition"]["threshold"] = 0.9  # generation 2 on the server
    cached = body(generation=1)  # what the evaluator knows
    run(kube, cached, 0.5, T0)  # fires under generation 1's threshold, re-reading first
    assert kube.stored["status"]["observedGeneration"] == 1
    assert all(c["observedGeneration"] == 1 for c in kube.stored["status"]["conditions"])


def test_a_webhook_hears_the_group_and_pagerduty_each_alert_and_all_is_recorded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One instance of two resolves: the webhook gets one message, still firing, with the
    resolved alert and the other; the per-alert channel only the resolve. Every alert the
    webhook message carried is recorded, so the group repeats as one."""
    heard: list[tuple[str, Any]] = []

    def notify_channel(kube, namespace, channel, compose):
        messages = compose(channel == "oncall")
        heard.extend((channel, m) for m in messages)
        return [(m, NotificationRecord(time=T0, channel=channel, fingerprint=m.dedup_key,
                                       event=m.event, severity=m.severity,
                                       result="delivered")) for m in messages]

    monkeypatch.setattr(alertrule, "notify_channel", notify_channel)
    rule = body(channels=[{"name": "oncall"}, {"name": "pager"}])
    kube = FakeKube(rule)

    def evaluate(cached: dict[str, Any], values: dict[str, float],
                 now: datetime) -> dict[str, Any]:
        compiled = alertrule.prepare(cached)
        assert isinstance(compiled, Rule)
        samples = [Sample({"pod": pod}, value) for pod, value in values.items()]
        newest = alertrule.evaluate(kube, alertrule.threshold_evaluation(  # type: ignore[arg-type]
            KEY, compiled, Ok(samples)), cached, 0.01, now)
        assert newest is not None
        return dict(newest)

    firing = evaluate(rule, {"a": 0.5, "b": 0.5}, T0)
    assert [(channel, type(m).__name__) for channel, m in heard] == [
        ("oncall", "AlertGroup"), ("pager", "Notification"), ("pager", "Notification")]
    heard.clear()
    partly = evaluate(firing, {"a": 0.01, "b": 0.5}, T0 + timedelta(seconds=15))
    (webhook, group), (pager, resolve) = heard
    assert (webhook, group.event) == ("oncall", "firing")
    assert sorted((a.labels["pod"], a.status) for a in group.alerts) == [
        ("a", "resolved"), ("b", "firing")]
    assert (pager, resolve.event, resolve.labels["pod"]) == ("pager", "resolved", "a")
    records = {(r["channel"], r["event"], r["time"]) for r in partly["status"]["notifications"]}
    later = (T0 + timedelta(seconds=15)).isoformat().replace("+00:00", "Z")
    assert records == {("oncall", "resolved", later), ("oncall", "firing", later),
                       ("pager", "resolved", later),
                       ("pager", "firing", T0.isoformat().replace("+00:00", "Z"))}


class Rules:
    """Several AlertRules, each held by its own FakeKube, behind one Kube-shaped object."""

    def __init__(self, *bodies: dict[str, Any]) -> None:
        self.by_name = {b["metadata"]["name"]: FakeKube(b) for b in bodies}

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None):
        return self.by_name[name].get(api_version, kind, name, namespace)

    def patch_status(self, api_version, kind, name, namespace, patch, resource_version):
        return self.by_name[name].patch_status(api_version, kind, name, namespace, patch,
                                               resource_version)

    def update_status(self, api_version, kind, name, namespace, change):
        return self.by_name[name].update_status(api_version, kind, name, namespace, change)

    def event(self, *args: Any) -> None:
        pass


class Prometheus:
    """Answers every instant query with one series of the value set for it."""

    def __init__(self, values: dict[str, float]) -> None:
        self.values = values

    async def instant_many(self, queries: list[str], now: datetime) -> dict[str, Any]:
        return {q: Ok([Sample({"service": "web"}, self.values[q])]) for q in queries}

    async def close(self) -> None:
        pass


def named(name: str, query: str) -> dict[str, Any]:
    rule = body(query=query, interval="5s")
    rule["metadata"]["name"] = name
    return rule


def due_now(evaluator: alertrule.Evaluator) -> None:
    for key in evaluator.scheduler.items:
        evaluator.scheduler.schedule(key, 0.0)


async def evaluated(evaluator: alertrule.Evaluator, name: str) -> None:
    """Wait, with a deadline, until the rule's evaluation is over; the loop runs meanwhile."""
    await asyncio.to_thread(wait_for, lambda: (KEY[0], name) not in evaluator.scheduler.in_flight,
                            f"{name} evaluated", 10)


def evaluations_of(name: str) -> float:
    return rule_sample("runbook_alert_evaluations_total",
                       {"namespace": KEY[0], "rule": name}) or 0.0


def test_a_slow_receiver_holds_up_only_its_own_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """While one rule's notification hangs, the loop goes on evaluating the others, and does
    not start the hung rule again (which would notify twice)."""

    entered, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def notify_channel(kube, namespace, channel, compose):
        (message,) = compose(False)
        calls.append(message.source.name)
        entered.set()
        release.wait(30)
        return [(message, delivered(message, channel))]

    monkeypatch.setattr(alertrule, "notify_channel", notify_channel)
    slow, quick = named("slow", "errors_slow"), named("quick", "errors_quick")
    kube = Rules(slow, quick)

    async def scenario() -> None:
        evaluator = alertrule.Evaluator(kube, "http://prometheus")  # type: ignore[arg-type]
        evaluator.clients[("http://prometheus", None)] = Prometheus(  # type: ignore[assignment]
            {"errors_slow": 0.5, "errors_quick": 0.01})
        evaluator.scheduler.upsert(slow)
        evaluator.scheduler.upsert(quick)
        await evaluator.scheduler.tick()
        assert await asyncio.to_thread(entered.wait, 10), "the slow rule never notified"
        await evaluated(evaluator, "quick")
        before = evaluations_of("quick")
        for _ in range(3):
            due_now(evaluator)
            await evaluator.scheduler.tick()
            await evaluated(evaluator, "quick")
        assert evaluations_of("quick") == before + 3
        assert ("shop", "slow") in evaluator.scheduler.in_flight and calls == ["slow"]
        evaluator.scheduler.forget(("shop", "slow"))  # deleted while in flight: its metrics must go
        release.set()
        await asyncio.wait_for(evaluator.scheduler.settle(), 10)
        assert ("shop", "slow") not in evaluator.scheduler.in_flight
        evaluator.deliveries.shutdown()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 30))
    finally:
        release.set()
    assert kube.by_name["slow"].stored["status"]["state"] == "Firing"
    assert kube.by_name["slow"].stored["status"]["notifications"][0]["result"] == "delivered"
    assert evaluations_of("slow") == 0


def test_a_prometheus_token_comes_from_the_rules_secret_and_a_missing_one_stalls(
        sent: list[str]) -> None:

    url = "http://prometheus"
    authed = named("authed", "errors_authed")
    authed["spec"]["prometheus"] = {"url": url, "authSecretRef": {"name": "prom", "key": "token"}}
    orphan = named("orphan", "errors_orphan")
    orphan["spec"]["prometheus"] = {"url": url, "authSecretRef": {"name": "gone", "key": "token"}}
    kube = Rules(authed, orphan)
    secrets = {"prom": {"data": {"token": base64.b64encode(b"s3cret\n").decode()}}}
    original = kube.get

    def get(api_version: str, kind: str, name: str, namespace: str | None = None):
        if kind == "Secret":
            return secrets.get(name)
        return original(api_version, kind, name, namespace)

    kube.get = get  # type: ignore[method-assign]
    events: list[tuple[str, str]] = []
    kube.event = lambda body, type_, reason, message: events.append((reason, message))  # type: ignore[method-assign]

    async def scenario() -> alertrule.Evaluator:
        evaluator = alertrule.Evaluator(kube, None)  # type: ignore[arg-type]
        evaluator.clients[(url, "s3cret")] = Prometheus(  # type: ignore[assignment]
            {"errors_authed": 0.01})
        evaluator.scheduler.upsert(authed)
        evaluator.scheduler.upsert(orphan)
        await evaluator.scheduler.tick()
        await asyncio.wait_for(evaluator.scheduler.settle(), 10)
        evaluator.deliveries.shutdown()
        return evaluator

    evaluator = asyncio.run(scenario())
    assert set(evaluator.clients) == {(url, "s3cret")}  # trimmed, and no client without it
    assert kube.by_name["authed"].stored["status"]["state"] == "Normal"
    stalled = next(c for c in kube.by_name["orphan"].stored["status"]["conditions"]
                   if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "SecretNotFound")
    assert events == [("SecretNotFound", "Secret 'gone' not found")]


class HangingPrometheus(Prometheus):
    """A server that does not answer until released."""

    def __init__(self, values: dict[str, float]) -> None:
        super().__init__(values)
        self.release = None  # an asyncio.Event, made inside the loop

    async def instant_many(self, queries: list[str], now: datetime) -> dict[str, Any]:
        self.release = self.release or asyncio.Event()
        await self.release.wait()
        return await super().instant_many(queries, now)


def test_a_hanging_prometheus_holds_up_only_the_rules_that_query_it(sent: list[str]) -> None:

    stuck, fine = named("stuck", "errors_stuck"), named("fine", "errors_fine")
    stuck["spec"]["prometheus"] = {"url": "http://slow-prometheus"}
    kube = Rules(stuck, fine)
    slow = HangingPrometheus({"errors_stuck": 0.01})

    async def scenario() -> None:
        evaluator = alertrule.Evaluator(kube, "http://prometheus")  # type: ignore[arg-type]
        evaluator.clients[("http://slow-prometheus", None)] = slow  # type: ignore[assignment]
        evaluator.clients[("http://prometheus", None)] = Prometheus(  # type: ignore[assignment]
            {"errors_fine": 0.01})
        evaluator.scheduler.upsert(stuck)
        evaluator.scheduler.upsert(fine)
        for _ in range(3):
            due_now(evaluator)
            await evaluator.scheduler.tick()
            await evaluated(evaluator, "fine")
        assert evaluations_of("fine") == 3
        assert evaluator.scheduler.in_flight == {("shop", "stuck")} and evaluations_of("stuck") == 0
        assert slow.release is not None
        slow.release.set()
        await asyncio.wait_for(evaluator.scheduler.settle(), 10)
        assert evaluations_of("stuck") == 1  # one query in flight at a time, not one per tick
        evaluator.deliveries.shutdown()

    asyncio.run(asyncio.wait_for(scenario(), 30))


class HeldWrites(Rules):
    """Status writes that wait until released (an API server slower than the evaluations)."""

    def __init__(self, *bodies: dict[str, Any]) -> None:
        super().__init__(*bodies)
        self.release = threading.Event()

    def patch_status(self, api_version, kind, name, namespace, patch, resource_version):
        assert self.release.wait(10), "the writes were never released"
        return super().patch_status(api_version, kind, name, namespace, patch,
                                    resource_version)


class AskedPrometheus(Prometheus):
    """Records which queries were asked."""

    def __init__(self, values: dict[str, float]) -> None:
        super().__init__(values)
        self.asked: list[str] = []

    async def instant_many(self, queries: list[str], now: datetime) -> dict[str, Any]:
        self.asked.extend(queries)
        return await super().instant_many(queries, now)


def test_new_rules_wait_for_room_in_the_status_write_backlog(
        monkeypatch: pytest.MonkeyPatch, sent: list[str]) -> None:
    """While as many status writes wait as the backlog allows, rules whose first evaluation
    would add one are not evaluated; a rule evaluated before is. Every new rule is evaluated
    and written once the writes go out."""
    monkeypatch.setattr(alertrule, "STATUS_WRITE_BACKLOG", 3)
    new = [named(f"new-{i}", f"errors_{i}") for i in range(7)]
    known = named("known", "errors_known")
    known["status"] = {"observedGeneration": 1, "state": "Normal",
                       "lastEvaluation": "2026-11-22T08:00:00Z"}
    kube = HeldWrites(*new, known)
    prometheus = AskedPrometheus({**{f"errors_{i}": 0.01 for i in range(7)},
                                  "errors_known": 0.01})

    async def scenario() -> None:
        evaluator = alertrule.Evaluator(kube, "http://prometheus")  # type: ignore[arg-type]
        evaluator.clients[("http://prometheus", None)] = prometheus  # type: ignore[assignment]
        for rule in new:
            evaluator.scheduler.upsert(rule)
        await evaluator.scheduler.tick()
        await asyncio.to_thread(wait_for, lambda: evaluator.writes_waiting == 3,
                                "3 writes waiting", 10)
        assert sorted(prometheus.asked) == ["errors_0", "errors_1", "errors_2"]
        postponed = {key: evaluator.scheduler.items[key].due
                     for key in evaluator.unwritten}
        assert len(postponed) == 4
        assert all(due > evaluator.scheduler.clock() for due in postponed.values())

        evaluator.scheduler.upsert(known)
        due_now(evaluator)
        await evaluator.scheduler.tick()
        await asyncio.to_thread(wait_for, lambda: "errors_known" in prometheus.asked,
                                "the known rule evaluated", 10)
        assert len(prometheus.asked) == 4 and len(evaluator.unwritten) == 4

        kube.release.set()
        for _ in range(3):
            await asyncio.to_thread(wait_for, lambda: evaluator.writes_waiting == 0,
                                    "the writes made", 10)
            await evaluator.scheduler.settle()
            due_now(evaluator)
            await evaluator.scheduler.tick()
        await evaluator.scheduler.settle()
        assert not evaluator.unwritten
        first = [q for q in prometheus.asked if q != "errors_known"]
        assert sorted(set(first)) == [f"errors_{i}" for i in range(7)]
        evaluator.writes.shutdown()
        evaluator.deliveries.shutdown()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 30))
    finally:
        kube.release.set()
    for rule in new:
        status = kube.by_name[rule["metadata"]["name"]].stored["status"]
        assert status["observedGeneration"] == 1 and status["lastEvaluation"]
