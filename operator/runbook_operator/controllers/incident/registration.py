"""How Incidents and the EscalationPolicies they follow join the operator: one policy store
both controllers share, the Incident watch feeding the escalation scheduler."""

from __future__ import annotations

from typing import Any

import kopf

from runbook_operator.api.incident import Incident
from runbook_operator.controllers import escalationpolicy
from runbook_operator.controllers.escalationpolicy import PolicyStore
from runbook_operator.controllers.incident.timers import Escalations
from runbook_operator.controllers.registration import Operator, register_kind


def register(operator: Operator) -> None:
    """Attach EscalationPolicy and Incident. The handlers are async: they change the
    schedulers' state, which only the event loop touches."""
    policies = PolicyStore()
    escalationpolicy.register(operator, policies)
    escalations = Escalations(operator.kube, policies)

    async def incident_changed(body: kopf.Body, **_: Any) -> None:
        escalations.changed(body)

    async def incident_gone(body: kopf.Body, **_: Any) -> None:
        escalations.scheduler.forget((body["metadata"]["namespace"], body["metadata"]["name"]))

    register_kind(operator, Incident, changed=incident_changed, gone=incident_gone,
                  loop=lambda _: escalations.run_forever())
