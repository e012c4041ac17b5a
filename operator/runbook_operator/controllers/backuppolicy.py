"""kopf handlers for BackupPolicy: read, decide (core.backup), write status, emit events.

Reconciliation is level-triggered: any event on a policy whose status lags its spec, and a
periodic resync of all policies, run the same idempotent reconcile. Nothing is kept in memory, so a restart
(even kill -9) resumes from what the API server holds.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes.dynamic.exceptions import (
    BadRequestError,
    ForbiddenError,
    UnprocessibleEntityError,
)
from pydantic import ValidationError

from runbook_operator.api.backuppolicy import BackupPolicy, BackupPolicySpec, BackupPolicyStatus
from runbook_operator.api.common import (
    API_VERSION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    parse_duration,
)
from runbook_operator.controllers.common import (
    lags_or_unready,
    reconcile_logging_errors,
    status_patch,
    warn_if_newly_stalled,
)
from runbook_operator.controllers.errors import (
    TRANSIENT_API_ERRORS,
    api_error_message,
    transient_error_message,
    validation_message,
)
from runbook_operator.controllers import metrics
from runbook_operator.controllers.metrics import measured
from runbook_operator.core import backup
from runbook_operator.core import rpo as rpo_core
from runbook_operator.core.conditions import Outcome, Phase, apply_outcome, set_condition
from runbook_operator.core.rpo import RPOEvaluation
from runbook_operator.api.notificationchannel import DeliveryRecord
from runbook_operator.controllers.notify import notify
from runbook_operator.controllers.registration import Operator, register_kind
from runbook_operator.core.delivery import Notification
from runbook_operator.integrations.kubernetes import Kube

KIND = BackupPolicy.info.kind
RPO_CONDITION = "RPOMet"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
OWNED_LABELS = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, backup.POLICY_LABEL: kopf.PRESENT}


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def needs_reconcile(body: kopf.Body | dict[str, Any]) -> bool:
    """A policy needs work when its status lags the spec, it is not Ready, or a backup-now
    request waits."""
    return lags_or_unready(body) or _backup_now_request(body) is not None


def _backup_now_request(body: kopf.Body | dict[str, Any]) -> str | None:
    """The backup-now token not yet acted on, if any."""
    token = (body["metadata"].get("annotations") or {}).get(backup.BACKUP_NOW_ANNOTATION)
    handled = (body.get("status") or {}).get("backupNowToken")
    return token if token and token != handled else None


def _parse_spec(body: kopf.Body) -> BackupPolicySpec | ValidationError:
    try:
        return BackupPolicySpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError as error:
        return error


def _decide(
    kube: Kube, body: kopf.Body, spec: BackupPolicySpec | ValidationError, runner_image: str
) -> tuple[Outcome, dict[str, Any] | None]:
    """Validate, check referenced Secrets, apply the CronJob; say how it went."""
    meta = body["metadata"]
    if isinstance(spec, ValidationError):
        return Outcome(Phase.STALLED, "InvalidSpec", validation_message(spec, "spec")), None
    problems = backup.semantic_problems(spec)
    if problems:
        return Outcome(Phase.STALLED, "InvalidSpec", "; ".join(problems)), None
    refs = spec.secret_refs()
    found = {ref.name: kube.secret_keys(meta["namespace"], ref.name) for ref in refs}
    missing = backup.missing_secrets(refs, found)
    if missing:
        message = "; ".join(missing) + ". The CronJob is not changed until the Secret exists."
        return Outcome(Phase.STALLED, "SecretNotFound", message), None
    owner = backup.Owner(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])
    try:
        applied = kube.apply(backup.render_cronjob(spec, owner, runner_image))
        restore_test = backup.render_restore_test_cronjob(spec, owner, runner_image)
        if restore_test is not None:
            kube.apply(restore_test)
        else:
            kube.delete_if_exists(
                "batch/v1", "CronJob", backup.restore_test_cronjob_name(owner.name),
                owner.namespace, owned_by=owner.uid,
            )
    except (UnprocessibleEntityError, BadRequestError) as error:
        return Outcome(Phase.STALLED, "CronJobRejected", api_error_message(error)), None
    except ForbiddenError as error:
        return Outcome(Phase.STALLED, "Forbidden", api_error_message(error)), None
    name = applied["metadata"]["name"]
    if spec.suspend:
        return Outcome(Phase.READY, "Suspended", f"CronJob {name} is suspended"), applied
    message = f"CronJob {name} runs {spec.schedule!r} in {spec.time_zone}"
    return Outcome(Phase.READY, "Scheduled", message), applied


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _status_change(
    outcome: Outcome,
    generation: int,
    cronjob: dict[str, Any] | None,
    now: datetime,
    rpo: RPOEvaluation | None = None,
    breach_notified: bool = False,
    backup_now_token: str | None = None,
    sent: list[tuple[Notification, list[DeliveryRecord]]] = (),
):
    """A status change function for Kube.update_status (pure given its inputs)."""

    def change(current: dict[str, Any]) -> dict[str, Any] | None:
        old = BackupPolicyStatus.model_validate(current.get("status") or {})
        conditions = apply_outcome(old.conditions, outcome, now, generation)
        update: dict[str, Any] = {"observed_generation": generation}
        if backup_now_token is not None:
            update["backup_now_token"] = backup_now_token
        if rpo is None:
            conditions = [c for c in conditions if c.type != RPO_CONDITION]
            update["rpo_deadline"] = None
        else:
            conditions = set_condition(
                conditions, RPO_CONDITION, "True" if rpo.met else "False",
                "WithinObjective" if rpo.met else "ObjectiveBreached", rpo.message, now, generation,
            )
            update["rpo_deadline"] = rpo.deadline
            if breach_notified:
                update["rpo_breach_notified_at"] = now
        update["conditions"] = conditions
        for notification, outcomes in sent:
            old_log = backup.log_notifications(old, notification, outcomes).notifications
            update["notifications"] = old_log
            old = old.model_copy(update={"notifications": old_log})
        if cronjob is not None:
            update["cron_job_name"] = cronjob["metadata"]["name"]
            scheduled = _parse_time((cronjob.get("status") or {}).get("lastScheduleTime"))
            if scheduled and (old.last_schedule_time is None or scheduled > old.last_schedule_time):
                update["last_schedule_time"] = scheduled
        new = old.model_copy(update=update)
        return status_patch(old, new)

    return change


def _evaluate_rpo(
    spec: BackupPolicySpec | ValidationError, body: kopf.Body, now: datetime
) -> RPOEvaluation | None:
    if isinstance(spec, ValidationError) or spec.rpo is None:
        return None
    status = BackupPolicyStatus.model_validate(dict(body.get("status") or {}))
    return rpo_core.evaluate(
        parse_duration(spec.rpo),
        status.last_successful_time,
        _parse_time(body["metadata"]["creationTimestamp"]) or now,
        status.rpo_breach_notified_at,
        now,
    )


def _notify_rpo(
    kube: Kube,
    body: kopf.Body,
    spec: BackupPolicySpec | ValidationError,
    rpo: RPOEvaluation | None,
    now: datetime,
    logger: logging.Logger | kopf.Logger,
) -> list[tuple[Notification, list[DeliveryRecord]]]:
    """Once per breach: a Warning Event and, if configured, channel notifications; and an
    all-clear when a notified breach ends."""
    if rpo is None or isinstance(spec, ValidationError):
        return []
    previous = next((c for c in (body.get("status") or {}).get("conditions") or []
                     if c.get("type") == RPO_CONDITION), {})
    recovered = rpo.met and previous.get("status") == "False"
    if rpo.notify:
        kube.event(body, "Warning", "RPOBreached", rpo.message)
        logger.warning("%s", rpo.message)
    wanted = spec.notifications
    if not (rpo.notify or recovered) or not wanted or not wanted.channels:
        return []
    if not wanted.on_rpo_breach:
        return []
    meta = body["metadata"]
    notification = backup.rpo_notification(meta["name"], meta["namespace"], rpo, now)
    return [(notification, notify(kube, meta["namespace"], wanted.channels, notification))]


def reconcile(
    kube: Kube, body: kopf.Body, logger: logging.Logger | kopf.Logger, runner_image: str
) -> None:
    meta = body["metadata"]
    now = _now()
    with measured(KIND) as result:
        spec = _parse_spec(body)
        outcome, cronjob = _decide(kube, body, spec, runner_image)
        rpo = _evaluate_rpo(spec, body, now)
        token = _backup_now_request(body)
        if token is not None and cronjob is not None:
            created = kube.create_if_absent(backup.on_demand_job(cronjob, token))
            logger.info("backup-now %s: %s", token, "Job created" if created else "already done")
        else:
            token = None
        sent = _notify_rpo(kube, body, spec, rpo, now, logger)
        before = [c for c in (body.get("status") or {}).get("conditions") or []]
        written = kube.update_status(
            API_VERSION,
            KIND,
            meta["name"],
            meta["namespace"],
            _status_change(
                outcome, meta["generation"], cronjob, now, rpo, bool(rpo and rpo.notify), token,
                sent,
            ),
        )
        if written is not None:
            metrics.publish_backup(meta["namespace"], meta["name"], written.get("status") or {})
        result.value = outcome.phase.name.lower()
    warn_if_newly_stalled(kube, body, outcome, before, logger)


def _termination_message(kube: Kube, job: kopf.Body) -> str | None:
    """The runner's result: the termination message of the Job's newest finished pod."""
    meta = job["metadata"]
    pods = kube.list(
        "v1", "Pod", [meta["namespace"]], label_selector=f"{JOB_NAME_LABEL}={meta['name']}"
    )
    finished = []
    for pod in pods:
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (container.get("state") or {}).get("terminated")
            if container.get("name") == backup.RUNNER_CONTAINER and terminated:
                finished.append((terminated.get("finishedAt") or "", terminated.get("message")))
    return max(finished)[1] if finished else None


def record_finished_job(kube: Kube, job: kopf.Body) -> None:
    """Fold a finished Job (scheduled or created by hand from a CronJob) into its policy."""
    if backup.finished_job(dict(job)) is None:
        return
    labels = job["metadata"].get("labels") or {}
    message = _termination_message(kube, job) if labels.get(backup.RUNNER_LABEL) == "true" else None
    verdict = backup.judge_run(dict(job), message)
    if verdict is None:
        return
    policy = labels[backup.POLICY_LABEL]
    namespace = job["metadata"]["namespace"]
    current = kube.get(API_VERSION, KIND, policy, namespace)
    if current is None:
        return
    old = BackupPolicyStatus.model_validate(current.get("status") or {})
    sent: list[tuple[Notification, list[DeliveryRecord]]] = []
    if backup.record_run(old, verdict) != old:  # first time this Job is seen: tell people
        spec = _parse_spec(current)
        wanted = spec.notifications if isinstance(spec, BackupPolicySpec) else None
        failed = verdict.record.outcome == "Failed"
        if wanted and wanted.channels and (wanted.on_failure if failed else wanted.on_success):
            notification = backup.run_notification(policy, namespace, verdict)
            sent.append((notification, notify(kube, namespace, wanted.channels, notification)))

    def change(current: dict[str, Any]) -> dict[str, Any] | None:
        before = BackupPolicyStatus.model_validate(current.get("status") or {})
        after = backup.record_run(before, verdict)
        for notification, outcomes in sent:
            after = backup.log_notifications(after, notification, outcomes)
        return status_patch(before, after)

    kube.update_status(API_VERSION, KIND, policy, namespace, change)


def record_schedule(kube: Kube, cronjob: kopf.Body) -> None:
    """Copy the CronJob's lastScheduleTime into its policy's status."""
    scheduled = _parse_time((cronjob.get("status") or {}).get("lastScheduleTime"))
    if scheduled is None:
        return
    policy = cronjob["metadata"]["labels"][backup.POLICY_LABEL]

    def change(current: dict[str, Any]) -> dict[str, Any] | None:
        old = BackupPolicyStatus.model_validate(current.get("status") or {})
        if old.last_schedule_time is not None and old.last_schedule_time >= scheduled:
            return None
        return status_patch(old, old.model_copy(update={"last_schedule_time": scheduled}))

    kube.update_status(API_VERSION, KIND, policy, cronjob["metadata"]["namespace"], change)


def register(operator: Operator) -> None:
    """Attach the BackupPolicy handlers and resync, and those of the Jobs and CronJobs."""
    kube, runner_image = operator.kube, operator.config.runner_image
    registry = operator.registry
    owned = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{backup.POLICY_LABEL}"
    for plural in ("jobs", "cronjobs"):
        # Filter server-side: the operator never streams Jobs and CronJobs it did not render.
        operator.settings.watching.label_selectors["batch", plural] = owned

    def policy_changed(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        if needs_reconcile(body):
            reconcile_logging_errors(lambda: reconcile(kube, body, logger, runner_image), logger)

    def policy_gone(body: kopf.Body, **_: Any) -> None:
        metrics.forget_backup(body["metadata"]["namespace"], body["metadata"]["name"])

    register_kind(operator, BackupPolicy, changed=policy_changed, gone=policy_gone,
                  resync=lambda body, logger: reconcile(kube, body, logger, runner_image))

    @kopf.on.event("batch", "v1", "jobs", labels=OWNED_LABELS, registry=registry)
    def job_changed(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        try:
            record_finished_job(kube, body)
        except TRANSIENT_API_ERRORS as error:
            logger.warning("could not record Job result: %s", transient_error_message(error))

    @kopf.on.event("batch", "v1", "cronjobs", labels=OWNED_LABELS, registry=registry)
    def cronjob_changed(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        try:
            record_schedule(kube, body)
        except TRANSIENT_API_ERRORS as error:
            logger.warning("could not record schedule time: %s", transient_error_message(error))
