"""Labels, annotations, container and object names shared by the renderer, the judge of
finished Jobs, the controller and the kubectl plugin: one definition, so they cannot drift."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from runbook_operator.api.backuppolicy import CRONJOB_SUFFIX, RESTORE_TEST_SUFFIX
from runbook_operator.api.common import MANAGED_BY_LABEL, MANAGED_BY_VALUE

POLICY_LABEL = "runbook.dev/backuppolicy"
OPERATION_LABEL = "runbook.dev/operation"
RUNNER_LABEL = "runbook.dev/runner"
COMPONENT_LABEL = "app.kubernetes.io/component"
#: Set by the Job controller on a Job's pods.
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
BACKUP_NOW_ANNOTATION = "runbook.dev/backup-now"
RUNNER_CONTAINER = "runner"
BACKUP_CONTAINER = "backup"


@dataclass(frozen=True)
class Owner:
    """Identity of the BackupPolicy a rendered object belongs to."""

    name: str
    namespace: str
    uid: str


def on_demand_job_name(policy_name: str, token: str) -> str:
    """The Job a `runbook.dev/backup-now` token runs as: derived from the token, so acting on
    one request twice creates nothing new, and whoever asked can find its run in history."""
    return f"{policy_name}-now-{hashlib.sha256(token.encode()).hexdigest()[:10]}"


def cronjob_name(policy_name: str) -> str:
    return f"{policy_name}{CRONJOB_SUFFIX}"


def restore_test_cronjob_name(policy_name: str) -> str:
    return f"{policy_name}{RESTORE_TEST_SUFFIX}"


def selector_labels(policy_name: str) -> dict[str, str]:
    """Labels that find everything rendered for one policy (CronJob, Jobs, Pods)."""
    return {MANAGED_BY_LABEL: MANAGED_BY_VALUE, POLICY_LABEL: policy_name}
