"""What an AlertRule's status becomes after an evaluation, and when it is worth writing.

Status is written only when something lasting changes (state, times, instances, conditions,
notifications, errors), plus a heartbeat: the per-evaluation values (last value, evaluation
time and duration, anomaly score) are published as metrics on every evaluation instead, because
writing them each time cost more than everything else the operator does per rule
(bench/README.md). The value a firing instance fires with (`activeValue`) is written with
those lasting changes (the firing notification, its repeats, escalations) and the heartbeat,
not on every move: a resolve repeats the text of the last firing value status holds, as
Alertmanager resolves with the annotations of the last update Prometheus sent it.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from runbook_operator.api.alertrule import (
    NOTIFICATION_LOG_LIMIT,
    ActionRecord,
    AlertRuleStatus,
)
from runbook_operator.api.common import NotificationRecord
from runbook_operator.core.alertrule.decide import Decision, Evaluation, Key
from runbook_operator.core.alertrule.state import QueryError, summarize
from runbook_operator.core.conditions import Outcome, Phase, apply_outcome, set_condition
from runbook_operator.core.notify_plan import record

FIRING_CONDITION = "Firing"
#: How often an AlertRule's status is written when nothing lasting changed, so that
#: lastEvaluation and lastValue stay roughly current (they are metrics on every evaluation).
STATUS_HEARTBEAT = timedelta(minutes=5)
#: The heartbeat writes all rules together make at most, a second on average, by default:
#: at 5,000 rules, heartbeats every 5 minutes were 18 writes a second, each 2-4 ms of the
#: operator's CPU (twice what everything else cost) and as much load on the API server.
HEARTBEAT_WRITES_PER_SECOND = 2.0

_VOLATILE_STATUS = {"last_evaluation", "last_value", "evaluation_duration_seconds"}
_VOLATILE_INSTANCE = {"last_evaluation", "last_value", "active_value"}
_VOLATILE_ANOMALY = {"last_score"}


def heartbeat_period(rules: int, writes_per_second: float) -> timedelta:
    """How often each of `rules` rules beats: STATUS_HEARTBEAT, or longer so that their
    heartbeats make at most `writes_per_second` writes a second (0: no bound), in whole
    minutes so that it changes seldom as rules come and go. As kubelet reports a node's status
    every 5 minutes when nothing changed, and not more often whatever the cluster's size."""
    if writes_per_second <= 0:
        return STATUS_HEARTBEAT
    minutes = math.ceil(rules / writes_per_second / 60)
    return max(STATUS_HEARTBEAT, timedelta(minutes=minutes))


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """When a rule's status is written again with nothing lasting changed: once every
    `period`, at the rule's own moment of it (a hash of its name). Rules created or restarted
    together so beat evenly spread from their first period on, and no rule beats twice in a
    period, so all of them write at most rules / period a second. A heartbeat counted from each
    rule's last write instead brought rules written together back together, a wave of writes
    every period (bench/README.md, "Heartbeats counted")."""

    period: timedelta
    phase: int
    """Whole seconds into each period (counted from the epoch) at which the rule beats: with
    a period of whole seconds too, a beat's time is exact, so the next one is never itself."""

    def after(self, written: datetime) -> datetime:
        """The rule's first heartbeat after a status write at `written`."""
        period = self.period.total_seconds()
        beats = math.floor((written.timestamp() - self.phase) / period) + 1
        return datetime.fromtimestamp(self.phase + beats * period, tz=UTC)


@functools.lru_cache(maxsize=1 << 16)
def heartbeat_of(key: Key, period: timedelta = STATUS_HEARTBEAT) -> Heartbeat:
    """The rule's heartbeat (kept: asked at every evaluation)."""
    spread = zlib.crc32("/".join(key).encode()) / 2**32
    return Heartbeat(period, int(spread * period.total_seconds()))


def next_status(old: AlertRuleStatus, evaluation: Evaluation, decision: Decision,
                sent: Sequence[NotificationRecord], actions: list[ActionRecord], seconds: float,
                now: datetime, generation: int) -> tuple[AlertRuleStatus, Outcome]:
    """The status after this evaluation; `generation` is that of the spec evaluated."""
    instances = decision.instances
    summary = summarize(instances)
    samples = evaluation.samples
    error = samples.message if isinstance(samples, QueryError) else None
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
        "notifications": record(old.notifications, sent, {i.fingerprint for i in instances},
                                NOTIFICATION_LOG_LIMIT),
        "anomaly": evaluation.anomaly or old.anomaly,
        "actions": actions,
    })
    return new, outcome


def stalled_status(old: AlertRuleStatus, reason: str, message: str, now: datetime,
                   generation: int) -> AlertRuleStatus:
    """The status of a rule the operator cannot evaluate, and why."""
    outcome = Outcome(Phase.STALLED, reason, message)
    return old.model_copy(update={
        "observed_generation": generation,
        "conditions": apply_outcome(old.conditions, outcome, now, generation),
    })


def _lasting(status: AlertRuleStatus) -> dict[str, object]:
    """The parts of status a reader or a restarted operator needs, without per-tick values."""
    lasting = status.model_dump(exclude=_VOLATILE_STATUS | {"instances", "anomaly"})
    lasting["instances"] = [i.model_dump(exclude=_VOLATILE_INSTANCE) for i in status.instances]
    lasting["anomaly"] = (None if status.anomaly is None
                          else status.anomaly.model_dump(exclude=_VOLATILE_ANOMALY))
    return lasting


def status_write_due(
    old: AlertRuleStatus, new: AlertRuleStatus, now: datetime, heartbeat: Heartbeat
) -> bool:
    """Whether an evaluation's status must be written: something lasting changed, or the
    heartbeat is due so that `lastEvaluation` and `lastValue` stay roughly current for
    `kubectl`."""
    if old.last_evaluation is None or now >= heartbeat.after(old.last_evaluation):
        return True
    return _lasting(old) != _lasting(new)
