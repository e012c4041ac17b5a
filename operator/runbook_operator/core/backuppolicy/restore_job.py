"""The Job that restores a policy's backup into a named target (`kubectl runbook backup restore`).

Pure: it takes the BackupPolicy and its backup CronJob as read from the API and returns the Job
body. Building from the CronJob the operator rendered, rather than from the spec, gives the
restore exactly the storage, encryption key and credentials the backups were made with, all
still taken from Secrets by reference.

A restore into a named target is a person's one-off request, so the Job differs from the
operator's runs on purpose:

- it never overwrites: a database target is created fresh (`createdb` fails if it exists,
  `dropExisting: false`) and a files target must be an empty directory; the source database
  or directory itself, and the restore tests' scratch database, are refused;
- `app.kubernetes.io/managed-by` is `kubectl-runbook`, so the operator (which watches only Jobs it
  manages) never judges a restore as a backup run: a restore's result must neither count as a
  backup for the RPO nor enter the backup history;
- no ownerReference, so deleting the policy does not delete a restore in flight; the Job cleans
  itself up through `ttlSecondsAfterFinished` instead;
- one attempt (`backoffLimit: 0`, no pod failure policy): a retry would meet the half-restored
  target left by the first attempt and report that, hiding the real failure.
"""

from __future__ import annotations

import copy
import hashlib
import posixpath
import re
from typing import Any

from pydantic import ValidationError

from runbook_operator.api.backuppolicy import DB_NAME_PATTERN
from runbook_operator.api.common import MANAGED_BY_LABEL
from runbook_operator.core.backuppolicy.names import (
    OPERATION_LABEL,
    POLICY_LABEL,
    RUNNER_CONTAINER,
    RUNNER_LABEL,
)
from runbook_operator.core.backuppolicy.runner_config import (
    RUNNER_CONFIG_ENV,
    SOURCE_MOUNT,
    config_text,
    scratch_database,
)
from runbook_operator.runner.config import PartConfig, RunnerConfig

RESTORE_OPERATION = "restore"
RESTORE_MOUNT = "/var/lib/runbook/restore"
RESTORE_VOLUME = "restore"
REQUESTED_BY = "kubectl-runbook"
TARGET_ANNOTATION = "runbook.dev/restore-into"
BACKUP_ANNOTATION = "runbook.dev/restore-backup"
TTL_SECONDS_AFTER_FINISHED = 86400
DATABASE_NAME_MAX = 63
CLAIM_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
BACKUP_TIMESTAMP_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
#: Connection settings a restore target shares with its source (never `database`, nor the
#: dump tool's `extraArgs`, which mean nothing to pg_restore or mysql).
CONNECTION_KEYS = ("host", "port", "user", "passwordEnv", "sslMode")
SYSTEM_DATABASES = {
    "postgres": {"postgres", "template0", "template1"},
    "mysql": {"mysql", "information_schema", "performance_schema", "sys"},
}


class RestoreRequestError(ValueError):
    """A restore that cannot or must not be made; the message says why in one line."""


def restore_job_name(policy: str, token: str) -> str:
    """`<policy>-restore-<hash>`: at most 63 characters for the longest policy name allowed."""
    return f"{policy}-restore-{hashlib.sha256(token.encode()).hexdigest()[:10]}"


def restore_job(
    policy: dict[str, Any],
    backup_cronjob: dict[str, Any],
    target: str,
    backup_key: str | None,
    token: str,
    *,
    into_claim: str | None = None,
) -> dict[str, Any]:
    """A batch/v1 Job restoring `backup_key` (None: the newest backup) into `target`.

    `target` is a database name for PostgreSQL and MySQL sources; for files it is a directory
    (an absolute path) inside the PersistentVolumeClaim `into_claim`.
    """
    meta = policy["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    _check_ownership(name, meta.get("uid"), backup_cronjob)
    template = copy.deepcopy(backup_cronjob["spec"]["jobTemplate"])
    pod_spec = template["spec"]["template"]["spec"]
    container = _runner_container(name, backup_cronjob, pod_spec)
    config = _runner_config(name, container)
    source = config.source
    if source is None:
        raise RestoreRequestError(f"the backup CronJob of {name} names no source to restore")
    kind = source.kind
    if kind == "command":
        raise RestoreRequestError(
            f"BackupPolicy {name} backs up a command's output; the operator cannot restore it "
            "(only postgres, mysql and files sources can be restored)"
        )
    if kind == "files":
        target_config = _files_target(container, pod_spec, source, target, into_claim)
    else:
        if into_claim is not None:
            raise RestoreRequestError(f"--into-claim applies to files sources, not {kind}")
        check_query = ((policy.get("spec") or {}).get("restoreTest") or {}).get("checkQuery")
        target_config = _database_target(kind, source.settings, target, check_query)
    key = _backup_key(name, backup_key) if backup_key is not None else None
    restore = config.model_copy(update={
        "operation": RESTORE_OPERATION, "restore_target": target_config, "retention": None,
        "backup_key": key,
    })
    _config_var(container)["value"] = config_text(restore)

    labels = {**(template.get("metadata") or {}).get("labels", {}), POLICY_LABEL: name,
              OPERATION_LABEL: RESTORE_OPERATION, MANAGED_BY_LABEL: REQUESTED_BY}
    template["spec"]["template"].setdefault("metadata", {})["labels"] = labels
    job_spec = template["spec"]
    job_spec["backoffLimit"] = 0
    job_spec.pop("podFailurePolicy", None)
    job_spec["ttlSecondsAfterFinished"] = TTL_SECONDS_AFTER_FINISHED
    where = target if into_claim is None else f"{into_claim}:{target}"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": restore_job_name(name, token),
            "namespace": namespace,
            "labels": labels,
            "annotations": {TARGET_ANNOTATION: where,
                            BACKUP_ANNOTATION: key or "newest"},
        },
        "spec": job_spec,
    }


def _check_ownership(policy: str, uid: str | None, cronjob: dict[str, Any]) -> None:
    """Refuse a CronJob that only shares the name: its Secrets and storage could be anyone's."""
    meta = cronjob["metadata"]
    owners = {ref.get("uid") for ref in meta.get("ownerReferences") or []}
    if (meta.get("labels") or {}).get(POLICY_LABEL) != policy or (uid and uid not in owners):
        raise RestoreRequestError(
            f"CronJob {meta['name']} is not the backup CronJob of BackupPolicy {policy}"
        )


def _runner_container(
    policy: str, cronjob: dict[str, Any], pod_spec: dict[str, Any]
) -> dict[str, Any]:
    labels = cronjob["metadata"].get("labels") or {}
    runner = next((c for c in pod_spec.get("containers") or []
                   if c.get("name") == RUNNER_CONTAINER), None)
    if labels.get(RUNNER_LABEL) != "true" or runner is None:
        raise RestoreRequestError(
            f"BackupPolicy {policy} has no destination: its own command makes its backups, so "
            "the operator cannot restore them"
        )
    return runner


def _config_var(container: dict[str, Any]) -> dict[str, Any]:
    return next((e for e in container.get("env") or [] if e.get("name") == RUNNER_CONFIG_ENV), {})


def _runner_config(policy: str, container: dict[str, Any]) -> RunnerConfig:
    """The backup's config as rendered, validated before anything is derived from it."""
    text = _config_var(container).get("value")
    if not text:
        raise RestoreRequestError(f"the backup CronJob of {policy} has no {RUNNER_CONFIG_ENV}")
    try:
        return RunnerConfig.model_validate_json(text)
    except ValidationError as error:  # fields only: a misplaced value could be a secret
        fields = sorted({".".join(map(str, e["loc"])) or "config"
                         for e in error.errors(include_input=False)})
        raise RestoreRequestError(
            f"the backup CronJob of {policy} has an invalid {RUNNER_CONFIG_ENV} "
            f"({', '.join(fields)})") from None


def _database_target(
    kind: str, source: dict[str, Any], target: str, check_query: str | None
) -> PartConfig:
    """The source's connection with `database: target`, created fresh, never dropped first."""
    if not re.fullmatch(DB_NAME_PATTERN, target) or len(target) > DATABASE_NAME_MAX:
        raise RestoreRequestError(
            f"--into {target!r} is not a database name (letters, digits, _, $ and -, starting "
            f"with a letter or _, at most {DATABASE_NAME_MAX} characters)"
        )
    # Compared without case: MySQL folds database names to lower case on some platforms.
    folded = target.casefold()
    if folded == str(source.get("database", "")).casefold():
        raise RestoreRequestError(
            f"--into {target!r} is the source database itself; restore into a new database"
        )
    if folded == scratch_database(str(source.get("database", ""))).casefold():
        raise RestoreRequestError(
            f"--into {target!r} is the restore tests' scratch database, which they drop; "
            "choose another name"
        )
    if folded in SYSTEM_DATABASES[kind]:
        raise RestoreRequestError(f"--into {target!r} is a {kind} system database")
    settings = {key: source[key] for key in CONNECTION_KEYS if key in source}
    settings |= {"database": target, "dropExisting": False}
    if check_query:
        settings["checkQuery"] = check_query
    return PartConfig(kind=kind, settings=settings)


def _files_target(
    container: dict[str, Any],
    pod_spec: dict[str, Any],
    source: PartConfig,
    target: str,
    into_claim: str | None,
) -> PartConfig:
    """`target` inside `into_claim`, mounted read-write at RESTORE_MOUNT.

    The source volume is unmounted: a restore does not read it, and so `into_claim` may be the
    source's own claim, as long as the target does not overlap the backed-up directory.
    """
    if into_claim is None:
        raise RestoreRequestError(
            "a files source needs --into-claim CLAIM: the PersistentVolumeClaim to restore into"
        )
    if not re.fullmatch(CLAIM_PATTERN, into_claim) or len(into_claim) > 253:
        raise RestoreRequestError(f"--into-claim {into_claim!r} is not a claim name")
    parts = target.split("/")
    if not target.startswith("/") or any(p in (".", "..") for p in parts):
        raise RestoreRequestError(
            f"--into {target!r} must be an absolute path inside the claim, without . or .."
        )
    path = posixpath.normpath(target)
    mounts = container.get("volumeMounts") or []
    source_mount = next((m for m in mounts if m.get("mountPath") == SOURCE_MOUNT), None)
    if source_mount is not None:
        volumes = pod_spec.get("volumes") or []
        source_volume = next(v for v in volumes if v["name"] == source_mount["name"])
        source_claim = (source_volume.get("persistentVolumeClaim") or {}).get("claimName")
        source_path = "/" + source.settings["path"][len(SOURCE_MOUNT):].strip("/")
        if source_claim == into_claim and _overlap(path, source_path):
            raise RestoreRequestError(
                f"--into {target!r} overlaps the backed-up directory {source_path!r} of claim "
                f"{into_claim}; restore outside it"
            )
        container["volumeMounts"] = [m for m in mounts if m is not source_mount]
        pod_spec["volumes"] = [v for v in volumes if v is not source_volume]
    pod_spec.setdefault("volumes", []).append(
        {"name": RESTORE_VOLUME, "persistentVolumeClaim": {"claimName": into_claim}})
    container.setdefault("volumeMounts", []).append(
        {"name": RESTORE_VOLUME, "mountPath": RESTORE_MOUNT})
    return PartConfig(kind="files", settings={"path": (RESTORE_MOUNT + path).rstrip("/")})


def _overlap(a: str, b: str) -> bool:
    """Whether one directory contains the other (or they are the same)."""
    a, b = a.rstrip("/") + "/", b.rstrip("/") + "/"
    return a.startswith(b) or b.startswith(a)


def _backup_key(policy: str, key: str) -> str:
    """`<policy>/<timestamp>`; a bare timestamp is taken as this policy's. Keys of other
    policies are refused: a restore reads only the policy's own prefix."""
    key = key.strip("/")
    timestamp = key.removeprefix(f"{policy}/")
    if not re.fullmatch(BACKUP_TIMESTAMP_PATTERN, timestamp):
        raise RestoreRequestError(
            f"--backup {key!r} is not a backup of {policy}: use {policy}/<timestamp> as listed "
            f"by `kubectl runbook backup list {policy}`"
        )
    return f"{policy}/{timestamp}"
