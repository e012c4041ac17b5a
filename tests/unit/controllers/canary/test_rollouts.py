"""controllers.canary.Rollouts: which rollouts an HTTPRoute's watch event wakes (one in
flight, whose status cannot say yet that it wrote a weight, after its tick)."""

from __future__ import annotations

import math
from typing import Any

import kopf
from runbook_operator.controllers import register_all
from runbook_operator.controllers.canary import Rollouts
from runbook_operator.controllers.registration import Operator, OperatorConfig

CONFIG = OperatorConfig(runner_image="runner:1", default_prometheus="http://prometheus",
                        resync_seconds=5, namespaces=("shop",))
UNCONFIRMED = {"phase": "Progressing", "weight": 30,
               "router": {"weight": 30, "verified": "Unknown", "time": "2026-01-01T00:00:00Z"}}
CONFIRMED = {**UNCONFIRMED, "router": {**UNCONFIRMED["router"], "verified": "Yes"}}


def rollout(name: str, route: str, status: dict[str, Any], namespace: str = "shop",
            ) -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name, "generation": 1,
                         "resourceVersion": "1"},
            "spec": {"targetRef": {"name": name}, "service": {"port": 80},
                     "router": {"gatewayAPI": {"httpRoute": route}},
                     "canary": {"stepWeight": 25},
                     "analysis": {"interval": "1m", "metrics": []}},
            "status": status}


def route(name: str, observed: int, namespace: str = "shop") -> dict[str, Any]:
    conditions = [{"type": t, "status": "True", "observedGeneration": observed}
                  for t in ("Accepted", "ResolvedRefs")]
    return {"metadata": {"namespace": namespace, "name": name, "generation": 4},
            "status": {"parents": [{"parentRef": {"name": "web"}, "conditions": conditions}]}}


def test_routes_are_watched_for_the_rollouts() -> None:
    registry = kopf.OperatorRegistry()
    register_all(registry, kopf.OperatorSettings(), object(), CONFIG)  # type: ignore[arg-type]
    watched = {h.id: h.selector for h in registry._watching.get_all_handlers()}
    selector = watched["httproutes-of-rollouts"]
    assert selector is not None
    assert (selector.group, selector.version, selector.any_name) == (
        "gateway.networking.k8s.io", "v1", "httproutes")


def test_a_route_reported_on_wakes_the_rollouts_waiting_to_read_their_weight_from_it() -> None:
    rollouts = Rollouts(Operator(kopf.OperatorRegistry(), kopf.OperatorSettings(),
                                 object(), CONFIG))  # type: ignore[arg-type]
    scheduler = rollouts.scheduler
    for body in [rollout("waiting", "checkout", UNCONFIRMED),
                 rollout("resting", "checkout", CONFIRMED),
                 rollout("elsewhere", "cart", UNCONFIRMED),
                 rollout("waiting", "checkout", UNCONFIRMED, namespace="other")]:
        scheduler.upsert(body)
    for item in scheduler.items.values():
        item.due = math.inf

    def woken() -> set[tuple[str, str]]:
        return {key for key, item in scheduler.items.items() if item.due != math.inf}

    rollouts.route_changed(route("checkout", observed=3))
    assert woken() == set()
    rollouts.route_changed(route("checkout", observed=4))
    assert woken() == {("shop", "waiting")}
    scheduler.in_flight.add(("shop", "resting"))
    rollouts.route_changed(route("checkout", observed=4))
    assert scheduler.woken == {("shop", "resting")}
