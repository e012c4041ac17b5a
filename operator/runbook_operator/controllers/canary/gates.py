"""Calling a CanaryRollout's webhook gates (blocking: a worker thread), through the shared
outbound caller: its timeout and retries per webhook, URLs from Secrets never shown."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from runbook_operator.api.canaryrollout import GateStatus, Webhook
from runbook_operator.api.common import parse_duration
from runbook_operator.core.delivery import RetryRules
from runbook_operator.integrations.kubernetes import Kube
from runbook_operator.integrations.secrets import SecretError, read_secret
from runbook_operator.integrations.webhooks import CallFailed, Endpoint, call_json

#: Backoff between a gate's attempts (its `retries`), in seconds.
FIRST_BACKOFF, LONGEST_BACKOFF = 1.0, 5.0


def _endpoint(kube: Kube, namespace: str, hook: Webhook) -> Endpoint:
    if hook.url is not None:
        return Endpoint.public(hook.url)
    assert hook.url_secret_ref is not None
    return Endpoint.secret(read_secret(kube, namespace, hook.url_secret_ref))


def call(kube: Kube, namespace: str, hooks: Sequence[Webhook],
         payloads: Sequence[dict[str, Any]], now: datetime) -> list[GateStatus]:
    """Each webhook's answer: open when it accepted (2xx), closed with the reason when not."""
    answers = []
    for hook, payload in zip(hooks, payloads, strict=True):
        rules = RetryRules(max_attempts=hook.retries + 1, initial=FIRST_BACKOFF,
                           maximum=LONGEST_BACKOFF)
        try:
            said = call_json(_endpoint(kube, namespace, hook), payload,
                             parse_duration(hook.timeout).total_seconds(), rules)
            answers.append(GateStatus(name=hook.name, open=True, message=said[:1024],
                                      time=now))
        except (CallFailed, SecretError) as error:
            answers.append(GateStatus(name=hook.name, open=False, message=str(error)[:1024],
                                      time=now))
    return answers
