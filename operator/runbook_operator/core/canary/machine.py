"""The CanaryRollout state machine: one pure function of the spec, the status, what the
operator observed and `now`, returning the next status and what the world should look like.

The world is described, not commanded: `Effects` says which weight the router must carry,
whether the primary must run a revision or have a number of replicas, whether the canary
runs or is at zero. The controller makes it so idempotently each tick and reports back what
the router answered; the machine advances only on what it observed (a weight the router
confirmed, pods that are ready). Every time it depends on (when a step began, when the
rollout last progressed, when the next analysis is due, when it was paused) is in status, so
a restarted operator continues where it was: no step repeated, none skipped.

Invariants the unit tests check with hypothesis: within a revision the confirmed weight only
grows, except while traffic moves back to the primary (rollback, promotion's last step, a
step that lowers it, a new revision); traffic moves back only once the primary has the
replicas `objects.primary_floor` asks for; a step is left only when it is done (a weight
confirmed, a pause over, enough passing runs) or skipped by hand.

With a router that realises the weight as replica counts (`objects.replicas_by_router`), the
effects never scale a Deployment: the router sizes both for each weight (the growing one
first), and its read-back waits for their pods, so the machine waits on the router alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from runbook_operator.api.canaryrollout import (
    AcknowledgedCommand,
    BackupBefore,
    BackupState,
    BackupWait,
    CanaryRolloutSpec,
    CanaryRolloutStatus,
    Command,
    Measurement,
    Phase,
    Rollback,
    COMMAND_LOG_LIMIT,
    MEASUREMENT_LIMIT,
)
from runbook_operator.api.common import parse_duration
from runbook_operator.core.canary.analysis import failing, run_verdict
from runbook_operator.core.canary.backup import BackupSeen, current
from runbook_operator.core.canary.objects import (
    Autoscaler,
    Workload,
    primary_floor,
    replicas_by_router,
)
from runbook_operator.core.canary.steps import Analyse, Pause, SetWeight, Step, weight_at
from runbook_operator.integrations.routers import Verification

ACTIVE: frozenset[Phase] = frozenset({"Progressing", "Paused", "WaitingPromotion"})
#: The effects that scale Deployments (left out when the router scales them).
SCALING_EFFECTS = ("primary_floor", "canary")
#: Where traffic moves back from 100% by way of, when the router scales: at 100% the
#: primary has no pod, and half of them start before the canary's last ones stop.
MIDWAY = 50
CanaryScale = Literal["running", "zero"]


@dataclass(frozen=True)
class World:
    """What the controller observed this tick."""

    target: Workload
    primary: Workload | None
    router: Verification | None
    """The router's answer about the weight last written (None: not asked yet)."""
    autoscaler: Autoscaler | None = None
    """The target's autoscaler's bounds (with autoscalerRef)."""
    holds: tuple[str, ...] = ()
    """Why the rollout must not move now: closed gates (preRollout, rollout webhooks, a
    blocking Incident). Filled by the gates' code."""
    promotion_holds: tuple[str, ...] = ()
    """Why promotion must wait (confirmPromotion gates)."""
    rollback_asked: str | None = None
    """A rollback webhook asked to roll back, and why."""
    backup: BackupSeen | None = None
    """spec.backupBefore's policy, while the rollout waits for its backup."""


@dataclass(frozen=True)
class Effects:
    """What the world must look like after this tick."""

    promote: str | None = None
    """Run the target's template (this revision) on the primary."""
    primary_floor: int | None = None
    """The primary must have at least this many replicas (its autoscaler's minimum raised);
    None: its autoscaler's own minimum."""
    canary: CanaryScale | None = None
    """The target running (scaled to status.canaryReplicas if at zero) or at zero."""
    weight: int | None = None
    """The canary weight the router must carry (None: the router is not set up yet)."""
    backup: str | None = None
    """Ask spec.backupBefore's policy for a backup with this runbook.dev/backup-now token."""


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    status: CanaryRolloutStatus
    effects: Effects
    events: tuple[Event, ...] = ()
    wake_at: datetime | None = None
    """Nothing to do before then (None: look again soon, something is in flight)."""


@dataclass(frozen=True)
class NewCommand:
    """A command annotation whose token the operator has not acted on."""

    command: Command
    token: str


@dataclass
class _Tick:
    """One decision in the making: the status so far, the effects, the events."""

    spec: CanaryRolloutSpec
    steps: list[Step]
    world: World
    now: datetime
    s: dict[str, Any]
    effects: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    wake_at: datetime | None = None
    waiting_on_traffic: bool = False

    def __post_init__(self) -> None:
        self.entered = (self.s.get("phase"), self.s.get("last_transition_time"))

    @property
    def router_scales(self) -> bool:
        return replicas_by_router(self.spec)

    @property
    def interval(self) -> timedelta:
        return parse_duration(self.spec.analysis.interval)

    def set(self, **changes: Any) -> None:
        self.s.update(changes)

    def event(self, reason: str, message: str, type_: Literal["Normal", "Warning"] = "Normal"
              ) -> None:
        self.events.append(Event(type_, reason, message))

    def say(self, message: str) -> None:
        self.s["message"] = message

    def phase(self, phase: Phase) -> None:
        """Set the phase. Passing through Progressing on the way back to the active phase
        the tick began in (WaitingPromotion, Paused) is no transition and keeps its time;
        re-entering Failed or Succeeded in one tick (a retry that fails at once) is one."""
        began, since = self.entered
        if phase == began and phase in ACTIVE:
            self.s["phase"], self.s["last_transition_time"] = phase, since
        elif self.s.get("phase") != phase:
            self.s["phase"], self.s["last_transition_time"] = phase, self.now

    def confirmed(self, weight: int) -> bool:
        answer = self.world.router
        return answer is not None and answer.verified == "Yes" and answer.weight == weight

    def hold(self) -> None:
        """Leave the router at the weight last written (confirmed or not)."""
        router = self.s.get("router")
        self.effects["weight"] = router.weight if router is not None else self.s["weight"]

    def wake(self, at: datetime | None) -> None:
        if at is not None and (self.wake_at is None or at < self.wake_at):
            self.wake_at = at

    @property
    def next_look(self) -> datetime | None:
        """When to look again: soon (None) while traffic is being moved — a rollback or a
        promotion started by a tick that had set a later wake-up must not wait for it."""
        return None if self.waiting_on_traffic else self.wake_at


def _step_label(index: int, steps: list[Step]) -> str:
    return f"{min(index + 1, len(steps))}/{len(steps)}" if steps else "0/0"


def _describe(step: Step) -> str:
    if isinstance(step, SetWeight):
        return f"setWeight {step.weight}"
    if isinstance(step, Pause):
        return f"pause {step.duration}" if step.duration else "pause until promoted"
    return f"analysis ({step.passes} passing run{'s' if step.passes > 1 else ''})"


def _enter_step(t: _Tick, index: int) -> None:
    t.set(step_index=index, step=_step_label(index, t.steps), step_started_at=t.now,
          progressed_at=t.now, passes=0,
          next_analysis_at=(t.now + t.interval if index < len(t.steps)
                            and isinstance(t.steps[index], Analyse) else None))


def _start(t: _Tick, revision: str, reason: str, message: str) -> None:
    """Begin rolling `revision` out from the first step, at the next tick (so the
    preRollout gates are asked before any traffic moves)."""
    primary = t.world.primary
    t.set(revision=revision, rollout_started_at=t.now, failed_checks=0, paused_at=None,
          failed_metrics="", rollback=None, incident=None, primary_replicas=None,
          canary_replicas=max(primary.replicas if primary else 1, 1))
    _enter_step(t, 0)
    t.phase("Progressing")
    t.event(reason, message)
    t.say(message)


def _shift(t: _Tick, weight: int) -> bool:
    """Ask the router for `weight`; traffic moving back to the primary waits until the
    primary has the replicas to carry it. True once the router confirmed `weight`."""
    current = t.s["weight"]
    if t.router_scales and current == 100 and weight < MIDWAY:
        t.effects["weight"] = MIDWAY
        t.say(f"moving traffic back by way of {MIDWAY}%: the primary's pods start before "
              "the canary's stop")
        return False
    if weight < current and not t.router_scales:
        primary = t.world.primary
        floor = t.s.get("primary_replicas")
        if floor is None:
            floor = primary_floor(primary.replicas if primary else 0,
                                  t.world.target.replicas, t.world.autoscaler)
            t.set(primary_replicas=floor)
        t.effects["primary_floor"] = floor
        ready = primary.ready if primary else 0
        if ready < floor:
            t.waiting_on_traffic = True
            t.hold()
            t.say(f"scaling the primary to {floor} ready replicas ({ready} now) before traffic "
                  f"moves back to it")
            return False
    t.effects["weight"] = weight
    if t.confirmed(weight):
        t.set(primary_replicas=None)
        t.effects.pop("primary_floor", None)
        return True
    t.waiting_on_traffic = True
    answer = t.world.router
    t.say(f"waiting for the router to carry {weight}% to the canary"
          + (f": {answer.message}" if answer and answer.message else ""))
    return False


def _rollback(t: _Tick, reason: str, message: str) -> None:
    """Start rolling back: all traffic to the primary, the canary to zero (the target
    reverted to the primary's revision goes the same way, as Finalising)."""
    reverted = reason == "Reverted"
    t.set(rollback=Rollback(reason=reason, message=message[:1024], started_at=t.now),
          failed_revision=t.s.get("failed_revision") if reverted else t.s["revision"],
          paused_at=None)
    t.phase("Finalising" if reverted else "Failed")
    t.event("RollingBack", f"{reason}: {message}", "Normal" if reverted else "Warning")


def _roll_back_now(t: _Tick, reason: str, message: str) -> None:
    _rollback(t, reason, message)
    _continue_rollback(t)


def _continue_rollback(t: _Tick) -> None:
    rollback: Rollback = t.s["rollback"]
    t.effects["canary"] = "running"
    if not _shift(t, 0):
        return
    t.effects["canary"] = "zero"
    if t.world.target.replicas != 0:
        t.say("traffic is back on the primary; scaling the canary to zero")
        return
    done = rollback.model_copy(update={"completed_at": t.now,
                                       "primary_replicas": t.world.primary.replicas
                                       if t.world.primary else None})
    t.set(rollback=done)
    if rollback.reason == "Reverted":
        t.phase("Initialized")
        t.say("the target is back at the primary's revision")
        t.event("Reverted", "the target was reverted to the primary's revision")
        return
    t.phase("Failed")
    t.say(f"rolled back ({rollback.reason}): {rollback.message}")
    t.event("RolledBack", f"{rollback.reason}: {rollback.message}", "Warning")


def _initialize(t: _Tick) -> None:
    target, primary = t.world.target, t.world.primary
    t.phase("Initializing")
    t.set(revision=target.revision)
    floor = t.s.get("primary_replicas") or (1 if t.router_scales else max(target.replicas, 1))
    t.set(primary_replicas=floor)
    t.effects["primary_floor"] = floor
    if primary is None or primary.revision != target.revision:
        t.effects["promote"] = target.revision
        t.say("creating the primary from the target's template")
        return
    if not primary.rolled_out or primary.ready < floor:
        t.say(f"waiting for the primary: {primary.ready}/{floor} ready" + _stopping(primary))
        return
    t.effects["weight"] = 0
    if not t.confirmed(0):
        t.say("waiting for the router to send all traffic to the primary")
        return
    t.effects["canary"] = "zero"
    if target.replicas != 0:
        t.say("scaling the target to zero: the primary serves")
        return
    t.set(primary_revision=primary.revision, primary_replicas=None, weight=0)
    t.effects.pop("primary_floor", None)
    t.phase("Initialized")
    t.say(f"the primary runs revision {primary.revision}")
    t.event("Initialized", f"the primary runs revision {primary.revision} and has all traffic")


def _steady(t: _Tick) -> None:
    """Initialized, Succeeded, or Failed once rolled back: watch for a new revision."""
    revision = t.world.target.revision
    t.effects.update(weight=0, canary="zero")
    if revision == t.s.get("primary_revision"):
        if t.s.get("phase") == "Failed":
            t.phase("Initialized")
            t.say("the target is back at the primary's revision")
        return
    if revision == t.s.get("failed_revision"):
        return
    _start(t, revision, "RolloutStarted", f"new revision {revision}: rolling out")


def _deadline(t: _Tick) -> datetime | None:
    """When the current step gives up waiting (None: it waits for time or people)."""
    if t.s.get("phase") != "Progressing" or t.s.get("paused_at") is not None:
        return None
    index = t.s["step_index"]
    if index >= len(t.steps) or isinstance(t.steps[index], Pause):
        return None
    deadline = parse_duration(t.spec.progress_deadline)
    base = t.s["progressed_at"]
    if isinstance(t.steps[index], Analyse):
        base = base + t.interval
    return base + deadline


def _backed_up(t: _Tick, before: BackupBefore) -> bool:
    """Whether this rollout's backup succeeded; until then (at the first step: a step
    skipped by hand goes on without it), ask for it once, wait for it (its own timeout, not
    the progress deadline), roll back when it fails."""
    record = current(t.s.get("backup"), t.s.get("rollout_started_at"))
    if record is not None and record.state == "Succeeded":
        return True
    seen, policy = t.world.backup, before.backup_policy_ref.name
    if seen is None:
        t.say(f"looking at BackupPolicy {policy!r}")
        return False
    since = record.since if record is not None else t.now
    requested = record.requested_at if record is not None else None
    ends = since + parse_duration(before.timeout)

    def record_as(state: BackupState, message: str) -> None:
        over = state not in ("PolicyNotFound", "Requested")
        t.set(backup=BackupWait(policy=policy, token=seen.token, state=state, since=since,
                                requested_at=requested, finished_at=t.now if over else None,
                                message=message[:1024]))
        t.say(message)

    if seen.outcome == "Succeeded":
        record_as("Succeeded", f"the backup of BackupPolicy {policy!r} succeeded: "
                  f"{seen.message}")
        t.event("BackupSucceeded", t.s["message"])
        _enter_step(t, 0)
        return True
    if seen.outcome == "Failed":
        record_as("Failed", f"the backup of BackupPolicy {policy!r} failed: {seen.message}")
        _roll_back_now(t, "BackupFailed", t.s["message"])
        return False
    if t.now >= ends:
        record_as("TimedOut", f"the backup of BackupPolicy {policy!r} did not succeed within "
                  f"{before.timeout}")
        _roll_back_now(t, "BackupTimeout", t.s["message"])
        return False
    if not seen.found:
        if record is None or record.state != "PolicyNotFound":
            t.event("BackupPolicyNotFound", f"BackupPolicy {policy!r} not found", "Warning")
        record_as("PolicyNotFound", f"BackupPolicy {policy!r} not found: the rollout waits "
                  f"for it until {ends.isoformat()}")
        return False
    if requested is None:
        requested = t.now
        t.effects["backup"] = seen.token
        t.event("BackupRequested", f"asked BackupPolicy {policy!r} for a backup ({seen.token})")
    doing = "runs" if seen.acknowledged else "is asked for"
    record_as("Requested", f"waiting for the backup of BackupPolicy {policy!r}: "
              f"{seen.message} {doing} (until {ends.isoformat()})")
    return False


def _advance(t: _Tick) -> None:
    index = t.s["step_index"] + 1
    _enter_step(t, index)
    if index < len(t.steps):
        t.event("Step", f"step {_step_label(index, t.steps)}: {_describe(t.steps[index])}")


def _record_run(t: _Tick, run: list[Measurement]) -> None:
    verdict = run_verdict(run)
    merged = (run + list(t.s.get("measurements") or []))[:MEASUREMENT_LIMIT]
    t.set(measurements=merged, next_analysis_at=t.now + t.interval,
          failed_metrics=", ".join(failing(run))[:256])
    if verdict == "Pass":
        t.set(passes=t.s["passes"] + 1, progressed_at=t.now)
    elif verdict == "Fail":
        failed = t.s["failed_checks"] + 1
        t.set(failed_checks=failed, passes=0)
        t.event("AnalysisFailed", f"{', '.join(failing(run))} failed "
                f"({failed}/{t.spec.analysis.failure_limit})", "Warning")


def _progress(t: _Tick, run: list[Measurement] | None = None) -> None:
    """Progressing, Paused or WaitingPromotion: the steps."""
    t.effects["canary"] = "running"
    t.hold()
    if t.world.rollback_asked is not None:
        _roll_back_now(t, "RollbackWebhook", t.world.rollback_asked)
        return
    if t.s.get("paused_at") is not None:
        t.phase("Paused")
        t.say("paused by hand: `kubectl runbook canary resume` goes on")
        return
    t.phase("Progressing")
    if t.spec.backup_before is not None and t.s["step_index"] == 0 \
            and not _backed_up(t, t.spec.backup_before):
        return
    deadline = _deadline(t)
    if deadline is not None and t.now >= deadline:
        _roll_back_now(t, "ProgressDeadline", f"step {t.s['step']} made no progress within "
                  f"{t.spec.progress_deadline}: {t.s.get('message', '')}")
        return
    t.wake(deadline)
    if t.world.holds:
        t.say("held: " + "; ".join(t.world.holds))
        return
    arrived = False
    for _ in range(len(t.steps) + 1):
        index = t.s["step_index"]
        if index >= len(t.steps):
            _await_promotion(t, arrived)
            return
        step = t.steps[index]
        if not _run_step(t, step, run):
            return
        run = None
        _advance(t)
        arrived = True


def _run_step(t: _Tick, step: Step, run: list[Measurement] | None) -> bool:
    """Work on the current step; True when it is done."""
    target = t.world.target
    if isinstance(step, SetWeight):
        if step.weight > t.s["weight"] and not t.router_scales and not (
                target.rolled_out and target.ready > 0):
            t.say(f"waiting for the canary's pods: {target.ready}/{target.replicas} ready")
            return False
        return _shift(t, step.weight)
    t.effects["weight"] = weight_at(t.steps, t.s["step_index"])
    if isinstance(step, Pause):
        if step.duration is None:
            t.phase("Paused")
            t.say("paused until `kubectl runbook canary promote`")
            return False
        ends = t.s["step_started_at"] + step.duration
        if t.now >= ends:
            return True
        t.wake(ends)
        t.say(f"pausing until {ends.isoformat()}")
        return False
    if run is not None:
        _record_run(t, run)
        if t.s["failed_checks"] >= t.spec.analysis.failure_limit:
            _roll_back_now(t, "FailureLimit", f"{t.s['failed_checks']} failed analysis runs: "
                      f"{t.s['failed_metrics']}")
            return False
    if t.s["passes"] >= step.passes:
        return True
    due = t.s["next_analysis_at"]
    t.wake(due)
    t.say(f"analysing at {t.s['weight']}%: {t.s['passes']}/{step.passes} passing runs, "
          f"{t.s['failed_checks']}/{t.spec.analysis.failure_limit} failed")
    return False


def _await_promotion(t: _Tick, arrived: bool) -> None:
    """`arrived`: the last step ended this tick, so the confirmPromotion gates (asked only
    at promotion) have not been asked yet: they are, from the next tick on."""
    holds = t.world.promotion_holds
    if arrived and any(h.type == "confirmPromotion" for h in t.spec.analysis.webhooks):
        holds = ("the confirmPromotion gates are asked next",)
    if holds:
        t.phase("WaitingPromotion")
        t.say("waiting for promotion: " + "; ".join(holds))
        return
    t.phase("Promoting")
    t.event("Promoting", f"promoting revision {t.s['revision']}")
    _promote(t)


def _stopping(primary: Workload | None) -> str:
    """The old pods the primary waits for, as said in the message."""
    if primary is None or not primary.stopping:
        return ""
    return f", {primary.stopping} old pod(s) still stopping"


def _promote(t: _Tick) -> None:
    """All traffic to the canary, then its template to the primary."""
    t.effects["canary"] = "running"
    target, primary = t.world.target, t.world.primary
    if not t.router_scales and not (target.rolled_out and target.ready > 0):
        t.hold()
        t.say(f"waiting for the canary's pods: {target.ready}/{target.replicas} ready")
        return
    if not _shift(t, 100):
        return
    t.effects["promote"] = t.s["revision"]
    if (primary is None or primary.revision != t.s["revision"] or not primary.rolled_out
            or primary.ready < primary.replicas):
        ready = primary.ready if primary else 0
        t.say(f"the primary is taking revision {t.s['revision']}: {ready} ready"
              + _stopping(primary))
        return
    t.phase("Finalising")
    _finalise(t)


def _finalise(t: _Tick) -> None:
    """All traffic back to the promoted primary, the canary to zero."""
    t.effects["canary"] = "running"
    if not _shift(t, 0):
        return
    t.effects["canary"] = "zero"
    if t.world.target.replicas != 0:
        t.say("the primary serves revision " + t.s["revision"] + "; scaling the canary to zero")
        return
    t.phase("Succeeded")
    t.set(failed_metrics="")
    t.say(f"promoted revision {t.s['revision']}")
    t.event("Promoted", f"revision {t.s['revision']} promoted")


def _command(t: _Tick, command: NewCommand) -> str:
    """Act on one manual command; what it did."""
    phase = t.s.get("phase")
    rollback: Rollback | None = t.s.get("rollback")
    copying = t.world.primary is not None and t.world.primary.revision == t.s.get("revision")
    if command.command in ("promote", "promoteFull") and phase in ACTIVE:
        t.set(paused_at=None)
        if command.command == "promoteFull" or phase == "WaitingPromotion":
            _enter_step(t, len(t.steps))
            t.phase("Promoting")
            return "promoting"
        _advance(t)
        return f"skipped to step {t.s['step']}"
    if command.command == "abort" and (phase in ACTIVE or (phase == "Promoting" and not copying)):
        _rollback(t, "Aborted", "aborted by hand")
        return "rolling back"
    if command.command == "retry" and phase == "Failed" and rollback and rollback.completed_at:
        t.set(failed_revision=None)
        return "rolling the revision out again"
    if command.command == "pause" and phase in ("Progressing", "WaitingPromotion") \
            and t.s.get("paused_at") is None:
        t.set(paused_at=t.now)
        return "paused"
    if command.command == "resume" and t.s.get("paused_at") is not None:
        held = t.now - t.s["paused_at"]
        for name in ("step_started_at", "progressed_at", "next_analysis_at"):
            if t.s.get(name) is not None:
                t.s[name] = t.s[name] + held
        t.set(paused_at=None)
        return f"resumed after {held.total_seconds():.0f}s"
    return f"ignored in phase {phase}"


def _acknowledge(t: _Tick, commands: list[NewCommand]) -> None:
    log = list(t.s.get("commands") or [])
    for command in sorted(commands, key=lambda c: c.token):
        result = _command(t, command)
        t.event("Command", f"{command.command}: {result}")
        log.insert(0, AcknowledgedCommand(command=command.command, token=command.token,
                                          time=t.now, result=result))
    t.set(commands=capped(log))


def capped(log: list[AcknowledgedCommand]) -> list[AcknowledgedCommand]:
    """The newest commands, always keeping each command's newest token (the one its
    annotation holds: a token that fell out of the log would be acted on again)."""
    newest = {c.command: c for c in reversed(log)}
    kept = log[:COMMAND_LOG_LIMIT - len(newest)]
    return [c for c in log if c in kept or newest[c.command] is c]


def decide(spec: CanaryRolloutSpec, steps: list[Step], status: CanaryRolloutStatus,
           world: World, now: datetime, run: list[Measurement] | None = None,
           commands: list[NewCommand] | None = None) -> Decision:
    """The next status and the world it wants (see the module docstring). `run` is the
    analysis run measured this tick (when `analysis_due` said so)."""
    t = _Tick(spec, steps, world, now, dict(status))
    answer = world.router
    if answer is not None and answer.verified == "Yes" and answer.weight is not None:
        t.set(weight=answer.weight)
    if world.primary is not None and world.primary.rolled_out:
        t.set(primary_revision=world.primary.revision)
    if commands:
        _acknowledge(t, commands)
    revision = world.target.revision
    phase = t.s.get("phase")
    rollback: Rollback | None = t.s.get("rollback")
    if phase in (None, "Initializing"):
        _initialize(t)
    elif rollback is not None and rollback.completed_at is None:
        _continue_rollback(t)
    elif phase in ("Initialized", "Succeeded", "Failed"):
        _steady(t)
    elif revision == t.s.get("primary_revision") and phase in ACTIVE:
        _roll_back_now(t, "Reverted", f"the target is back at the primary's revision {revision}")
    elif revision != t.s.get("revision"):
        _start(t, revision, "NewRevision", f"new revision {revision} during the rollout of "
               f"{t.s.get('revision')}: analysing it from the first step")
    elif phase in ACTIVE:
        _progress(t, run)
    elif phase == "Promoting":
        _promote(t)
    else:
        _finalise(t)
    effects = {k: v for k, v in t.effects.items()
               if not (t.router_scales and k in SCALING_EFFECTS)}
    return Decision(CanaryRolloutStatus.model_validate(t.s), Effects(**effects),
                    tuple(t.events), t.next_look)


def analysis_due(spec: CanaryRolloutSpec, steps: list[Step], status: CanaryRolloutStatus,
                 world: World, now: datetime) -> bool:
    """Whether this tick measures: an analysis step of the revision the target runs, its run
    due, not paused or held, the step's weight confirmed by the router, the canary ready."""
    if status.phase != "Progressing" or status.paused_at is not None or world.holds:
        return False
    if status.revision != world.target.revision or status.step_index >= len(steps):
        return False
    if not isinstance(steps[status.step_index], Analyse) or status.next_analysis_at is None:
        return False
    weight = weight_at(steps, status.step_index)
    ready = world.target.rolled_out and world.target.ready > 0
    confirmed = (world.router is not None and world.router.verified == "Yes"
                 and world.router.weight == weight)
    return now >= status.next_analysis_at and ready and confirmed
