"""Apply the retention rules after a successful backup, strictly inside the policy's own
backups (listed from their manifests in the namespace's part of the storage, so another
policy's or namespace's objects are never candidates), never deleting the newest verified nor
the newest restore-tested backup."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from runbook_operator.core.retention import Backup, Rules, plan
from runbook_operator.runner.catalog import list_backups
from runbook_operator.runner.interfaces import Storage
from runbook_operator.runner.manifest import MANIFEST_NAME

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PruneOutcome:
    deleted: list[str]
    """Backup keys deleted, or that would be deleted in a dry run."""
    kept: int
    dry_run: bool


def prune(
    storage: Storage,
    policy: str,
    namespace: str,
    rules: Rules,
    now: datetime,
    zone: str = "UTC",
    dry_run: bool = False,
) -> PruneOutcome:
    backups = list_backups(storage, policy, namespace)
    decided = plan(
        [Backup(key=b.key, time=b.finished_at, verified=b.verified,
                restore_tested=b.restore_tested_at is not None) for b in backups],
        rules, now, zone,
    )
    doomed = [b.key for b in decided.delete]
    if not dry_run:
        for key in doomed:
            objects = list(storage.list(f"{key}/"))
            # The manifest goes first: a backup without one is incomplete and never restored,
            # so an interrupted prune cannot leave a half-deleted backup that looks whole.
            manifest = [o for o in objects if o.endswith(f"/{MANIFEST_NAME}")]
            storage.delete(manifest)
            storage.delete([o for o in objects if o not in manifest])
            log.info("pruned %s", key)
    return PruneOutcome(deleted=doomed, kept=len(decided.keep), dry_run=dry_run)
