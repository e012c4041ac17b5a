"""When a CanaryRollout is looked at next: a pure function of its spec, the status a tick
leaves and the decision's wake-up time.

A rollout with something in flight (a weight not yet confirmed, pods starting, a step whose
time comes) is looked at within seconds. One that waits for nothing but a new revision of its
target or a person — Initialized, Succeeded, Failed once rolled back, or Paused until
promoted, with the router confirmed at its weight — *rests*: it is looked at once per
analysis interval (as Flagger checks a canary), between `REST_SHORTEST` and `REST_LONGEST`.
Its own watch events (a spec change, a command annotation) wake it at once; a pod-template
change of the target, which the operator does not watch, starts a rollout within one rest.
A rollout waiting to read its weight back from an HTTPRoute is woken by the route's watch
event that carries its Gateways' report (`waits_on_route`), so while the route carries its
weight and only that report is missing, its looks fall back to `LONGEST_WAIT`: at 200
rollouts, looking every second at each one waiting for its report asked for more requests
than the client's limit.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from runbook_operator.api.canaryrollout import CanaryRolloutSpec, CanaryRolloutStatus
from runbook_operator.api.common import parse_duration

#: How often a rollout with something in flight and no time to wait for is looked at.
IN_FLIGHT = timedelta(seconds=1)
#: The longest a rollout in flight, or a steady one whose router is not confirmed, goes
#: unlooked at (pods, the router and people can change anything).
LONGEST_WAIT = timedelta(seconds=5)
#: Bounds of a resting rollout's period (its analysis interval, clamped): the longest a
#: target's new template waits before its rollout starts is `REST_LONGEST`.
REST_SHORTEST = timedelta(seconds=5)
REST_LONGEST = timedelta(seconds=30)


def rest_period(spec: CanaryRolloutSpec) -> timedelta:
    """How often a resting rollout is looked at: its analysis interval, clamped."""
    interval = parse_duration(spec.analysis.interval)
    return min(max(interval, REST_SHORTEST), REST_LONGEST)


def confirmed(status: CanaryRolloutStatus) -> bool:
    """Whether the router last confirmed the weight the status carries."""
    router = status.router
    return router is not None and router.verified == "Yes" and router.weight == status.weight


def steady(status: CanaryRolloutStatus) -> bool:
    """Waiting for nothing but a new revision of the target (or a command)."""
    rolled_back = status.phase == "Failed" and status.rollback is not None \
        and status.rollback.completed_at is not None
    return status.phase in ("Initialized", "Succeeded", "Paused") or rolled_back


def next_look(spec: CanaryRolloutSpec, status: CanaryRolloutStatus,
              wake_at: datetime | None, now: datetime) -> timedelta:
    """How long until the rollout is looked at again, after a tick that left `status` and
    asked to be woken at `wake_at` (None: soon, something is in flight)."""
    if steady(status):
        return rest_period(spec) if confirmed(status) else LONGEST_WAIT
    if wake_at is None:
        return LONGEST_WAIT if awaits_report(spec, status) else IN_FLIGHT
    return max(min(wake_at - now, LONGEST_WAIT), timedelta(0))


def awaits_report(spec: CanaryRolloutSpec, status: CanaryRolloutStatus) -> bool:
    """The HTTPRoute carries the weight wanted; only its Gateways' report on it is missing
    (which arrives as the route's watch event)."""
    router = status.router
    return spec.router.gateway_api is not None and router is not None \
        and router.verified == "Unknown" and router.weight == status.weight


def waits_on_route(spec: CanaryRolloutSpec, status: CanaryRolloutStatus, route: str,
                   in_flight: bool) -> bool:
    """Whether news of the HTTPRoute `route` (in the rollout's namespace) is what the rollout
    waits for: the route is its router's, and the router has not confirmed its weight or a
    tick is in flight (it may be writing a weight, which the status it started from cannot
    say; the Gateway's report comes within milliseconds of the write)."""
    return route_of(spec) == route and (in_flight or not confirmed(status))


def route_of(spec: CanaryRolloutSpec) -> str | None:
    """The HTTPRoute the rollout's router writes (None: its router is not the Gateway API's)."""
    router = spec.router.gateway_api
    return None if router is None else router.http_route
