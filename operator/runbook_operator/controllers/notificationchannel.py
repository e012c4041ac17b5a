"""kopf handlers for NotificationChannel: validate, check referenced Secrets, write status.

A channel is Ready when its spec is valid and every Secret key it references exists; it is
Stalled (with a Warning Event) otherwise. Reconciliation is level-triggered like BackupPolicy's:
events on channels whose status lags, plus a periodic resync that notices Secrets created
later (the operator may only `get` Secrets by name, never watch them).

Deliveries happen in the kinds that notify (BackupPolicy, AlertRule, ...); they fold their
delivery records into the channel's status with `record_delivery`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from runbook_operator.api.common import API_VERSION, NotificationRecord
from runbook_operator.api.notificationchannel import (
    ChannelType,
    NotificationChannel,
    NotificationChannelSpec,
    NotificationChannelStatus,
)
from runbook_operator.controllers.common import (
    lags_or_unready,
    logging_transient_errors,
    status_patch,
    warn_if_newly_stalled,
)
from runbook_operator.controllers.errors import validation_message
from runbook_operator.controllers.metrics import measured
from runbook_operator.controllers.registration import Operator, register_kind
from runbook_operator.core.secret_refs import missing_secrets
from runbook_operator.core.conditions import Outcome, Phase, apply_outcome
from runbook_operator.core.delivery import record_deliveries
from runbook_operator.integrations.kubernetes import Kube

KIND = NotificationChannel.info.kind


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def decide(
    spec: dict[str, Any], secrets: dict[str, set[str] | None]
) -> tuple[Outcome, ChannelType | None]:
    """Outcome of a reconcile, given the spec and the key names of the Secrets it references
    (None for a Secret that does not exist). Pure: the reads happen in the caller."""
    try:
        parsed = NotificationChannelSpec.model_validate(spec)
    except ValidationError as error:
        return Outcome(Phase.STALLED, "InvalidSpec", validation_message(error, "spec")), None
    channel_type = parsed.channel_type()
    refs = parsed.secret_refs()
    missing = missing_secrets(refs, secrets)
    if missing:
        message = "; ".join(missing) + ". Deliveries through this channel fail until it exists."
        return Outcome(Phase.STALLED, "SecretNotFound", message), channel_type
    message = f"{channel_type} channel ready" + (
        f"; {len(refs)} Secret reference(s) resolved" if refs else ""
    )
    return Outcome(Phase.READY, "SecretsResolved", message), channel_type


def _referenced_secrets(spec: dict[str, Any]) -> list[str]:
    try:
        parsed = NotificationChannelSpec.model_validate(spec)
    except ValidationError:
        return []
    return sorted({ref.name for ref in parsed.secret_refs()})


def _status_change(
    outcome: Outcome, generation: int, channel_type: ChannelType | None, now: datetime
):
    """A status change function for Kube.update_status; delivery fields are left alone."""

    def change(current: dict[str, Any]) -> dict[str, Any] | None:
        old = NotificationChannelStatus.model_validate(current.get("status") or {})
        new = old.model_copy(
            update={
                "observed_generation": generation,
                "conditions": apply_outcome(old.conditions, outcome, now, generation),
                "type": channel_type,
            }
        )
        return status_patch(old, new)

    return change


def reconcile(kube: Kube, body: kopf.Body, logger: logging.Logger | kopf.Logger) -> None:
    meta = body["metadata"]
    spec = dict(body.get("spec") or {})
    with measured(KIND) as result:
        secrets = {
            name: kube.secret_keys(meta["namespace"], name) for name in _referenced_secrets(spec)
        }
        outcome, channel_type = decide(spec, secrets)
        before = (body.get("status") or {}).get("conditions") or []
        kube.update_status(
            API_VERSION,
            KIND,
            meta["name"],
            meta["namespace"],
            _status_change(outcome, meta["generation"], channel_type, _now()),
        )
        result.value = outcome.phase.name.lower()
    warn_if_newly_stalled(kube, body, outcome, before, logger)


def record_delivery(
    kube: Kube, namespace: str, name: str, records: Sequence[NotificationRecord]
) -> None:
    """Fold the attempts of one or more deliveries (as `notifiers.deliver` returns them) into
    the channel's status: last delivery and counters. Blocking; call it from a thread in
    async code."""

    def change(current: dict[str, Any]) -> dict[str, Any] | None:
        old = NotificationChannelStatus.model_validate(current.get("status") or {})
        new = record_deliveries(old, records)
        patch = status_patch(old, new)
        if patch is not None and new.last_delivery is not None and "lastDelivery" in patch:
            # With nulls: a merge patch merges nested objects and would keep an old statusCode.
            patch["lastDelivery"] = new.last_delivery.model_dump(mode="json", by_alias=True)
        return patch

    kube.update_status(API_VERSION, KIND, name, namespace, change)


def register(operator: Operator) -> None:
    """Attach the NotificationChannel handlers and resync."""
    kube = operator.kube

    def channel_changed(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        if lags_or_unready(body):
            logging_transient_errors(lambda: reconcile(kube, body, logger), logger)

    register_kind(operator, NotificationChannel, changed=channel_changed,
                  resync=lambda body, logger: reconcile(kube, body, logger))
