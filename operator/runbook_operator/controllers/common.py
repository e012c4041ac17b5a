"""Helpers every controller shares."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import kopf

from runbook_operator.api.common import API_VERSION, ApiModel
from runbook_operator.controllers.errors import TRANSIENT_API_ERRORS, transient_error_message
from runbook_operator.core.conditions import Outcome, Phase
from runbook_operator.integrations.kubernetes import Kube, StatusConflict

#: Objects a resync pass lists at a time: a list of 1,000 BackupPolicies decoded at once was
#: tens of MiB held for the whole pass (bench/load.py).
RESYNC_PAGE = 100
#: A status change for `Kube.update_status`: the patch from the object as read (None: none).
StatusChange = Callable[[dict[str, Any]], dict[str, Any] | None]


def lags_or_unready(body: Mapping[str, Any]) -> bool:
    """A resource needs work when its status lags the spec or it is not Ready."""
    status = body.get("status") or {}
    if status.get("observedGeneration") != body["metadata"].get("generation"):
        return True
    ready = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None
    )
    return ready is None or ready.get("status") != "True"


def status_patch(old: ApiModel, new: ApiModel,
                 whole: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """The merge patch from `old` to `new` status: changed fields, and null for removed ones
    (a merge patch leaves absent fields untouched). None when nothing changed. The objects
    named in `whole` are sent whole when they change, with nulls: a merge patch merges nested
    objects and would keep a field cleared inside them."""
    old_wire, new_wire = old.to_wire(), new.to_wire()
    patch: dict[str, Any] = {k: v for k, v in new_wire.items() if old_wire.get(k) != v}
    patch.update({k: None for k in old_wire if k not in new_wire})
    changed = [k for k in whole if patch.get(k) is not None]
    if changed:
        full = new.model_dump(mode="json", by_alias=True)
        patch.update({k: full[k] for k in changed})
    return patch or None


def plain(value: Any) -> Any:
    """A deep copy of `value` in plain dicts and lists (kopf's bodies are read-only views)."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def update_status_from(kube: Kube, api_version: str, kind: str, body: Mapping[str, Any],
                       change: StatusChange) -> dict[str, Any] | None:
    """`Kube.update_status` starting from `body`, the copy a watch event or a list just gave,
    instead of reading it again: one patch guarded by its resourceVersion; only when someone
    wrote meanwhile, the read-compute-write on fresh data. Returns what `update_status` does
    (`body`, as plain dicts, when nothing needs writing)."""
    current = plain(body)
    meta = current["metadata"]
    patch = change(current)
    if patch is None:
        return current
    try:
        return kube.patch_status(api_version, kind, meta["name"], meta["namespace"], patch,
                                 meta["resourceVersion"])
    except StatusConflict:
        return kube.update_status(api_version, kind, meta["name"], meta["namespace"], change)


def warn_if_newly_stalled(
    kube: Kube,
    body: Mapping[str, Any],
    outcome: Outcome,
    conditions_before: list[dict[str, Any]],
    logger: Any,
) -> None:
    """One Warning Event per distinct stall (not one per resync)."""
    if outcome.phase is not Phase.STALLED:
        return
    stalled = next((c for c in conditions_before if c.get("type") == "Stalled"), {})
    if stalled.get("status") != "True" or stalled.get("message") != outcome.message:
        kube.event(dict(body), "Warning", outcome.reason, outcome.message)
        logger.warning("Stalled (%s): %s", outcome.reason, outcome.message)


def logging_transient_errors(
    work: Callable[[], None],
    logger: logging.Logger | kopf.Logger,
    failed: str = "reconcile failed, will retry on the next resync",
) -> None:
    """Transient API failures are retried by the next event or resync; they are logged (after
    `failed`), and never crash the operator or leave a half-written status."""
    try:
        work()
    except TRANSIENT_API_ERRORS as error:
        logger.warning("%s: %s", failed, transient_error_message(error))


async def resync_forever(
    kube: Kube,
    kind: str,
    namespaces: list[str],
    interval: float,
    logger: logging.Logger | kopf.Logger,
    reconcile: Callable[[dict[str, Any]], None],
    field_selector: str | None = None,
) -> None:
    """Reconcile every object of `kind` periodically (blocking `reconcile` in a worker thread):
    repairs drift, retries failures and notices Secrets that appeared, which the operator
    does not watch. One paged LIST per interval instead of a kopf timer per object: kopf
    guards timers with a finalizer, which would need write access to the user's resources.
    A page of `RESYNC_PAGE` objects at a time, so a pass over thousands holds one page.
    With `field_selector` the API server sends only the objects it selects: a pass over
    thousands of which few need anything decodes those few. Neither an unreachable API
    server nor one object's bug ever ends the loop."""
    while True:
        await asyncio.sleep(interval)
        pages = kube.pages(API_VERSION, kind, namespaces or [None], RESYNC_PAGE,
                           field_selector)
        while True:
            try:
                bodies = await asyncio.to_thread(next, pages, None)
            except TRANSIENT_API_ERRORS as error:
                logger.warning("resync of %ss failed, retried in %ss: %s", kind, interval,
                               transient_error_message(error))
                break
            if bodies is None:
                break
            for body in bodies:
                if body["metadata"].get("deletionTimestamp"):
                    continue
                try:
                    await asyncio.to_thread(logging_transient_errors, partial(reconcile, body),
                                            logger)
                except Exception:  # noqa: BLE001 - isolate one object's bug from the rest
                    meta = body["metadata"]
                    logger.exception("resync of %s %s/%s failed", kind, meta["namespace"],
                                     meta["name"])
