"""kopf handlers, one module per kind; `register_all` attaches them to a registry."""

from __future__ import annotations

import kopf

from runbook_operator.controllers import alertrule, backuppolicy, notificationchannel
from runbook_operator.integrations.kubernetes import Kube


def register_all(
    registry: kopf.OperatorRegistry,
    settings: kopf.OperatorSettings,
    kube: Kube,
    resync_seconds: float,
    namespaces: list[str],
    runner_image: str,
    default_prometheus: str | None,
) -> None:
    backuppolicy.register(registry, settings, kube, resync_seconds, namespaces, runner_image)
    notificationchannel.register(registry, settings, kube, resync_seconds, namespaces)
    alertrule.register(registry, kube, default_prometheus)
