"""The EscalationPolicies AlertRules follow (spec.escalationPolicyRef), read by name for the
evaluation loop: each is kept a few seconds, so a thousand rules following one policy cost one
GET per few seconds, and a changed policy is followed within that time."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from runbook_operator.api.common import API_VERSION
from runbook_operator.api.escalationpolicy import (
    EscalationPolicy,
    EscalationPolicySpec,
    EscalationPolicyStatus,
)
from runbook_operator.controllers.errors import validation_message
from runbook_operator.core.alertrule.escalation_policy import following, on_call
from runbook_operator.core.alertrule.rule import Rule
from runbook_operator.integrations.kubernetes import Kube

KIND = EscalationPolicy.info.kind
POLICY_TTL_SECONDS = 5.0


@dataclass(frozen=True)
class Unfollowable:
    """Why a rule cannot follow its policy: the Stalled reason and message."""

    reason: str
    message: str


class FollowedPolicies:
    """EscalationPolicies by (namespace, name), read with GET and kept `ttl` seconds."""

    def __init__(self, kube: Kube, ttl: float = POLICY_TTL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.kube, self.ttl, self.clock = kube, ttl, clock
        self.read_at: dict[tuple[str, str], tuple[float, dict[str, Any] | None]] = {}

    def read(self, namespace: str, name: str) -> dict[str, Any] | None:
        key = (namespace, name)
        cached = self.read_at.get(key)
        if cached is not None and self.clock() - cached[0] < self.ttl:
            return cached[1]
        body = self.kube.get(API_VERSION, KIND, name, namespace)
        self.read_at[key] = (self.clock(), body)
        return body

    def follow(self, namespace: str, rule: Rule) -> Rule | Unfollowable:
        """`rule` escalating along its policy (blocking: a worker thread)."""
        name = rule.escalation_policy
        assert name is not None
        body = self.read(namespace, name)
        if body is None:
            return Unfollowable("EscalationPolicyNotFound",
                                f"EscalationPolicy {name!r} not found in {namespace}")
        try:
            spec = EscalationPolicySpec.model_validate(body.get("spec") or {})
        except ValidationError as error:
            return Unfollowable("EscalationPolicyInvalid", f"EscalationPolicy {name!r}: "
                                f"{validation_message(error, 'spec')}")
        status = EscalationPolicyStatus.model_validate(body.get("status") or {})
        return following(rule, spec, on_call(status, datetime.now(UTC)))
