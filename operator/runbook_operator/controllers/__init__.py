"""kopf handlers, one module per kind; `register_all` attaches every kind to a registry."""

from __future__ import annotations

import kopf

from runbook_operator.controllers import (
    alertrule,
    backuppolicy,
    canary,
    incident,
    incident_sources,
    notificationchannel,
)
from runbook_operator.controllers.registration import Operator, OperatorConfig, run_loops
from runbook_operator.integrations.kubernetes import Kube

#: `incident` registers EscalationPolicy too: both share the compiled policies.
KINDS = (backuppolicy, notificationchannel, alertrule, incident, incident_sources, canary)


def register_all(registry: kopf.OperatorRegistry, settings: kopf.OperatorSettings, kube: Kube,
                 config: OperatorConfig) -> None:
    operator = Operator(registry, settings, kube, config)
    for kind in KINDS:
        kind.register(operator)
    run_loops(operator)
