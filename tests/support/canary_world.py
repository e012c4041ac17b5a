"""A small simulated cluster for the CanaryRollout state machine: Deployments that become
ready a tick after they are scaled or changed, an autoscaler that can shrink the primary, a
router whose writes are confirmed a tick later (the replica-ratio router's also scale both
Deployments), a BackupPolicy that runs the backups asked of it, and analysis runs whose
verdicts a test
chooses. `Simulation.tick` does what the controller does — observe, measure when due,
decide, make the effects so, record the router's answer — so tests (and hypothesis) drive
whole rollouts, restarts included: the machine keeps nothing but the status."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from runbook_operator.api.canaryrollout import (
    CanaryRolloutSpec,
    CanaryRolloutStatus,
    Measurement,
    RouterStatus,
    Verdict,
)
from runbook_operator.core.backuppolicy.names import on_demand_job_name
from runbook_operator.core.canary.backup import seen, waiting
from runbook_operator.core.canary.machine import (
    Decision,
    NewCommand,
    World,
    analysis_due,
    decide,
)
from runbook_operator.core.canary.objects import Autoscaler, Workload, replicas_by_router
from runbook_operator.core.canary.steps import compile_steps
from runbook_operator.integrations.routers import Verification
from runbook_operator.integrations.routers.replica_ratio import split, total_replicas

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def spec(**overrides: Any) -> CanaryRolloutSpec:
    """A shorthand canary (5 → 30 → 55 → 80, 1 min interval, failure limit 2)."""
    body: dict[str, Any] = {
        "targetRef": {"name": "checkout"}, "service": {"port": 80},
        "router": {"gatewayAPI": {"httpRoute": "checkout"}},
        "canary": {"initialWeight": 5, "stepWeight": 25, "maxWeight": 80},
        "analysis": {"interval": "1m", "failureLimit": 2, "metrics": [
            {"name": "success-rate", "builtin": "requestSuccessRate",
             "thresholdRange": {"min": 99}}]},
    }
    body.update(overrides)
    return CanaryRolloutSpec.model_validate(body)


@dataclass
class Deployment:
    """A Deployment: its template revision and replicas; pods are ready one tick after a
    change (`broken`: never ready); the old template's pods stop `drains` ticks after a
    new one replaced them."""

    revision: str
    replicas: int
    ready: int = 0
    settled: bool = False
    broken: bool = False
    drains: int = 0
    stopping: int = 0
    _drain_left: int = 0

    def change(self, revision: str | None = None, replicas: int | None = None) -> None:
        if revision is not None and revision != self.revision:
            if self.drains:
                self.stopping, self._drain_left = self.stopping + self.ready, self.drains
            self.revision, self.settled, self.ready = revision, False, 0
        if replicas is not None and replicas != self.replicas:
            self.replicas, self.settled = replicas, False
            self.ready = min(self.ready, replicas)

    def settle(self) -> None:
        if not self.broken:
            self.ready, self.settled = self.replicas, True
        self._drain_left = max(self._drain_left - 1, 0)
        if not self._drain_left:
            self.stopping = 0

    def observed(self) -> Workload:
        return Workload(self.revision, self.replicas, self.ready,
                        self.settled and self.ready == self.replicas and not self.stopping,
                        self.stopping)


@dataclass
class Route:
    """The router: a written weight is confirmed (Yes) from the next tick on."""

    weight: int | None = None
    processed: bool = False
    writes: list[int] = field(default_factory=list)

    def write(self, weight: int) -> None:
        if weight != self.weight:
            self.weight, self.processed = weight, False
            self.writes.append(weight)

    def verify(self, weight: int) -> Verification:
        if self.weight is None:
            return Verification("No", None, "no rules")
        if self.weight != weight:
            return Verification("No", self.weight, "other weight")
        return Verification("Yes" if self.processed else "Unknown", weight)


@dataclass
class Policy:
    """spec.backupBefore's BackupPolicy: it acts on a request the tick after it is asked
    (one run per token, as its Jobs are named after the token), whose run ends `takes`
    ticks later with `outcome` (None: it never ends)."""

    name: str = "db"
    exists: bool = True
    outcome: Literal["Succeeded", "Failed"] | None = "Succeeded"
    takes: int = 3
    asked: list[str] = field(default_factory=list)
    running: dict[str, int] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    acted_on: str | None = None

    def body(self) -> dict[str, Any] | None:
        if not self.exists:
            return None
        return {"metadata": {"name": self.name},
                "status": {"backupNowToken": self.acted_on, "history": self.history}}

    def settle(self) -> None:
        for token, left in list(self.running.items()):
            if left > 1 or self.outcome is None:
                self.running[token] = left - 1
                continue
            del self.running[token]
            self.history.insert(0, {"jobName": on_demand_job_name(self.name, token),
                                    "outcome": self.outcome,
                                    "reason": "" if self.outcome == "Succeeded" else "Error"})
        if self.asked and self.asked[-1] != self.acted_on:
            self.acted_on = self.asked[-1]
            finished = {a["jobName"] for a in self.history}
            if on_demand_job_name(self.name, self.acted_on) not in finished:
                self.running.setdefault(self.acted_on, self.takes)


@dataclass
class Simulation:
    """One CanaryRollout in a simulated cluster (see the module docstring)."""

    spec: CanaryRolloutSpec
    target: Deployment = field(default_factory=lambda: Deployment("r1", 2))
    primary: Deployment | None = None
    route: Route = field(default_factory=Route)
    status: CanaryRolloutStatus = field(default_factory=CanaryRolloutStatus)
    autoscaler: Autoscaler | None = None
    now: datetime = START
    verdict: Callable[[int], Verdict] = lambda step: "Pass"
    holds: tuple[str, ...] = ()
    commands: list[NewCommand] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    #: (weight the router confirmed, primary ready replicas, primary floor) at each write.
    shifts: list[tuple[int, int, int | None]] = field(default_factory=list)
    runs: int = 0
    policy: Policy = field(default_factory=Policy)

    def world(self) -> World:
        written = self.status.router.weight if self.status.router else None
        backup = seen("checkout", self.status, self.policy.body()) \
            if waiting(self.spec, self.status) else None
        return World(
            target=self.target.observed(),
            primary=self.primary.observed() if self.primary else None,
            router=self.route.verify(written) if written is not None else None,
            autoscaler=self.autoscaler, holds=self.holds, backup=backup)

    def _run(self, world: World) -> list[Measurement] | None:
        steps = compile_steps(self.spec)
        if not analysis_due(self.spec, steps, self.status, world, self.now):
            return None
        self.runs += 1
        verdict = self.verdict(self.status.step_index)
        return [Measurement(time=self.now, revision=self.status.revision or "", metric="m",
                            step=self.status.step_index, verdict=verdict, value="1")]

    def tick(self, seconds: float = 1.0) -> Decision:
        """One reconcile, then time passes and the cluster settles."""
        world = self.world()
        run = self._run(world)
        commands, self.commands = self.commands, []
        decision = decide(self.spec, compile_steps(self.spec), self.status, world, self.now,
                          run, commands)
        self.decisions.append(decision)
        self._make_so(decision)
        self.now += timedelta(seconds=seconds)
        for deployment in (self.target, self.primary):
            if deployment is not None:
                deployment.settle()
        self.route.processed = True
        self.policy.settle()
        return decision

    def _make_so(self, decision: Decision) -> None:
        effects, status = decision.effects, decision.status
        if effects.backup is not None and self.policy.exists:
            self.policy.asked.append(effects.backup)
        if effects.promote is not None:
            if self.primary is None:
                self.primary = Deployment(effects.promote, 1)
            self.primary.change(revision=effects.promote)
        if effects.primary_floor is not None and self.primary is not None:
            self.primary.change(replicas=max(self.primary.replicas, effects.primary_floor))
        if effects.canary == "zero":
            self.target.change(replicas=0)
        elif effects.canary == "running" and self.target.replicas == 0:
            self.target.change(replicas=status.canary_replicas or 1)
        if effects.weight is not None:
            answer = self.route.verify(effects.weight)
            if answer.verified == "No":
                if self.route.weight is not None and effects.weight < self.route.weight:
                    self.shifts.append((effects.weight, self.primary.ready if self.primary
                                        else 0, decision.status.primary_replicas))
                self.route.write(effects.weight)
                self._scale_by_router(effects.weight)
                answer = self.route.verify(effects.weight)
            router = RouterStatus(weight=effects.weight, verified=answer.verified,
                                  time=self.now)
            status = status.model_copy(update={"router": router})
        self.status = status

    def _scale_by_router(self, weight: int) -> None:
        """The replica-ratio router's write: both Deployments sized for `weight`."""
        if not replicas_by_router(self.spec) or self.primary is None:
            return
        configured = self.spec.router.replica_ratio.total_replicas  # type: ignore[union-attr]
        total = total_replicas(configured, {"spec": {"replicas": self.primary.replicas}},
                               {"spec": {"replicas": self.target.replicas}},
                               first_write=self.status.router is None)
        primary, canary = split(total, weight)
        self.primary.change(replicas=primary)
        self.target.change(replicas=canary)

    def run_until(self, done: Callable[[Simulation], bool], ticks: int = 2000,
                  seconds: float = 1.0) -> None:
        for _ in range(ticks):
            if done(self):
                return
            self.tick(seconds)
        raise AssertionError(f"not done after {ticks} ticks: {self.status.phase} "
                             f"{self.status.message}")

    def phase_is(self, *phases: str) -> Callable[[Simulation], bool]:
        return lambda sim: sim.status.phase in phases


def initialized(**overrides: Any) -> Simulation:
    """A simulation of `spec(**overrides)` past its first reconcile (the primary promoted)."""
    sim = Simulation(spec(**overrides))
    sim.run_until(sim.phase_is("Initialized"))
    return sim


def rolled_back(sim: Simulation) -> bool:
    """The rollout failed and its rollback completed."""
    rollback = sim.status.rollback
    return sim.status.phase == "Failed" and rollback is not None \
        and rollback.completed_at is not None
