"""kopf handlers for BackupPolicy: read, call the core (core/backuppolicy), write status, emit
events.

Reconciliation is level-triggered: any event on a policy whose status lags its spec, and a
periodic resync of all policies, run the same idempotent reconcile. Nothing is kept in memory,
so a restart (even kill -9) resumes from what the API server holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from runbook_operator.api.backuppolicy import BackupPolicy, BackupPolicySpec, BackupPolicyStatus
from runbook_operator.api.common import (
    API_VERSION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
)
from runbook_operator.controllers import metrics
from runbook_operator.controllers.common import (
    lags_or_unready,
    logging_transient_errors,
    status_patch,
    update_status_from,
    warn_if_newly_stalled,
)
from runbook_operator.controllers.errors import validation_message
from runbook_operator.controllers.metrics import measured
from runbook_operator.controllers.notify import notify
from runbook_operator.controllers.registration import Operator, register_kind
from runbook_operator.core.backuppolicy import status as policy_status
from runbook_operator.core.backuppolicy.cronjob import (
    may_have_restore_test,
    on_demand_job,
    render_cronjob,
    render_restore_test_cronjob,
    semantic_problems,
)
from runbook_operator.core.backuppolicy.job_outcome import finished_job, judge_run, runner_message
from runbook_operator.core.backuppolicy.names import (
    JOB_NAME_LABEL,
    POLICY_LABEL,
    RUNNER_LABEL,
    Owner,
    restore_test_cronjob_name,
)
from runbook_operator.core.backuppolicy.notifications import (
    Planned,
    Sent,
    plan_rpo_notification,
    plan_run_notification,
)
from runbook_operator.core.backuppolicy.rpo import RPOEvaluation
from runbook_operator.core.conditions import Outcome, Phase
from runbook_operator.core.secret_refs import missing_secrets
from runbook_operator.integrations.kubeapi import BadRequest, Forbidden, Invalid
from runbook_operator.integrations.kubernetes import Kube

KIND = BackupPolicy.info.kind
OWNED_LABELS = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, POLICY_LABEL: kopf.PRESENT}


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def needs_reconcile(body: kopf.Body | dict[str, Any]) -> bool:
    """A policy needs work when its status lags the spec, it is not Ready, or a backup-now
    request waits."""
    return lags_or_unready(body) or policy_status.backup_now_request(body) is not None


def _parse_spec(body: kopf.Body | dict[str, Any]) -> tuple[BackupPolicySpec | None, list[str]]:
    """The spec (None when it does not validate) and what is wrong with it."""
    try:
        spec = BackupPolicySpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError as error:
        return None, [validation_message(error, "spec")]
    return spec, semantic_problems(spec)


def _status_change(
    build: Callable[[BackupPolicyStatus], BackupPolicyStatus],
) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    """A change for Kube.update_status: the patch from the status as read to `build(status)`."""

    def change(current: dict[str, Any]) -> dict[str, Any] | None:
        old = BackupPolicyStatus.model_validate(current.get("status") or {})
        return status_patch(old, build(old))

    return change


def _send(kube: Kube, namespace: str, planned: Planned | None) -> list[Sent]:
    if planned is None:
        return []
    notification = planned.notification
    return [(notification, notify(kube, namespace, planned.channels, notification))]


def _apply(
    kube: Kube, body: kopf.Body, spec: BackupPolicySpec | None, problems: list[str],
    runner_image: str,
) -> tuple[Outcome, dict[str, Any] | None]:
    """Check the spec and its Secrets, apply the CronJobs; say how it went."""
    invalid = policy_status.invalid_spec_outcome(problems)
    if invalid is not None:
        return invalid, None
    assert spec is not None  # a spec that does not validate always comes with problems
    meta = body["metadata"]
    refs = spec.secret_refs()
    found = {ref.name: kube.secret_keys(meta["namespace"], ref.name) for ref in refs}
    missing = policy_status.missing_secrets_outcome(missing_secrets(refs, found))
    if missing is not None:
        return missing, None
    owner = Owner(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])
    try:
        applied = kube.apply(render_cronjob(spec, owner, runner_image))
        restore_test = render_restore_test_cronjob(spec, owner, runner_image)
        if restore_test is not None:
            kube.apply(restore_test)
        elif may_have_restore_test(meta.get("generation")):
            kube.delete_if_exists(
                "batch/v1", "CronJob", restore_test_cronjob_name(owner.name),
                owner.namespace, owned_by=owner.uid,
            )
    except (Invalid, BadRequest) as error:
        return Outcome(Phase.STALLED, "CronJobRejected", error.message), None
    except Forbidden as error:
        return Outcome(Phase.STALLED, "Forbidden", error.message), None
    return policy_status.scheduled_outcome(spec, applied["metadata"]["name"]), applied


def _notify_rpo(
    kube: Kube,
    body: kopf.Body,
    spec: BackupPolicySpec | None,
    old: BackupPolicyStatus,
    rpo: RPOEvaluation | None,
    now: datetime,
    logger: logging.Logger | kopf.Logger,
) -> list[Sent]:
    """Once per breach a Warning Event; the channel notifications the core plans."""
    if rpo is not None and rpo.notify:
        kube.event(body, "Warning", "RPOBreached", rpo.message)
        logger.warning("%s", rpo.message)
    if spec is None:
        return []
    meta = body["metadata"]
    planned = plan_rpo_notification(spec, meta["name"], meta["namespace"], rpo,
                                    policy_status.rpo_was_met(old), now)
    return _send(kube, meta["namespace"], planned)


def reconcile(
    kube: Kube, body: kopf.Body, logger: logging.Logger | kopf.Logger, runner_image: str
) -> None:
    meta = body["metadata"]
    now = _now()
    with measured(KIND) as result:
        spec, problems = _parse_spec(body)
        outcome, cronjob = _apply(kube, body, spec, problems, runner_image)
        old = BackupPolicyStatus.model_validate(dict(body.get("status") or {}))
        created = policy_status.parse_time(meta["creationTimestamp"]) or now
        rpo = policy_status.evaluate_rpo(spec, old, created, now)
        token = policy_status.backup_now_request(body)
        if token is not None and cronjob is not None:
            created_job = kube.create_if_absent(on_demand_job(cronjob, token))
            logger.info("backup-now %s: %s", token,
                        "Job created" if created_job else "already done")
        else:
            token = None
        sent = _notify_rpo(kube, body, spec, old, rpo, now, logger)
        written = update_status_from(
            kube, API_VERSION, KIND, body,
            _status_change(lambda current: policy_status.reconciled_status(
                current, outcome, meta["generation"], cronjob, now, rpo, token, sent)),
        )
        if written is not None:
            metrics.publish_backup(meta["namespace"], meta["name"], written.get("status") or {})
        metrics.count_backup_reconcile(meta["namespace"], meta["name"])
        result.value = outcome.phase.name.lower()
    before = [c for c in (body.get("status") or {}).get("conditions") or []]
    warn_if_newly_stalled(kube, body, outcome, before, logger)


def _job_runner_message(kube: Kube, job: kopf.Body) -> str | None:
    """The runner's result, read from the pods of the Job."""
    meta = job["metadata"]
    pods = kube.list(
        "v1", "Pod", [meta["namespace"]], label_selector=f"{JOB_NAME_LABEL}={meta['name']}"
    )
    return runner_message(pods)


def record_finished_job(kube: Kube, job: kopf.Body) -> None:
    """Fold a finished Job (scheduled or created by hand from a CronJob) into its policy."""
    if finished_job(dict(job)) is None:
        return
    labels = job["metadata"].get("labels") or {}
    message = _job_runner_message(kube, job) if labels.get(RUNNER_LABEL) == "true" else None
    verdict = judge_run(dict(job), message)
    if verdict is None:
        return
    policy = labels[POLICY_LABEL]
    namespace = job["metadata"]["namespace"]
    current = kube.get(API_VERSION, KIND, policy, namespace)
    if current is None:
        return
    old = BackupPolicyStatus.model_validate(current.get("status") or {})
    spec, _ = _parse_spec(current)
    sent = _send(kube, namespace, plan_run_notification(spec, policy, namespace, verdict, old))
    now = _now()
    kube.update_status(API_VERSION, KIND, policy, namespace, _status_change(
        lambda status: policy_status.status_after_run(status, verdict, sent, now)))


def record_schedule(kube: Kube, cronjob: kopf.Body) -> None:
    """Copy the CronJob's lastScheduleTime into its policy's status."""
    scheduled = policy_status.parse_time((cronjob.get("status") or {}).get("lastScheduleTime"))
    if scheduled is None:
        return
    policy = cronjob["metadata"]["labels"][POLICY_LABEL]
    kube.update_status(API_VERSION, KIND, policy, cronjob["metadata"]["namespace"], _status_change(
        lambda status: policy_status.status_after_schedule(status, scheduled)))


def register(operator: Operator) -> None:
    """Attach the BackupPolicy handlers and resync, and those of the Jobs and CronJobs."""
    kube, runner_image = operator.kube, operator.config.runner_image
    registry = operator.registry
    owned = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{POLICY_LABEL}"
    for plural in ("jobs", "cronjobs"):
        # Filter server-side: the operator never streams Jobs and CronJobs it did not render.
        operator.settings.watching.label_selectors["batch", plural] = owned

    def policy_changed(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        if needs_reconcile(body):
            logging_transient_errors(lambda: reconcile(kube, body, logger, runner_image), logger)

    def policy_gone(body: kopf.Body, **_: Any) -> None:
        metrics.forget_backup(body["metadata"]["namespace"], body["metadata"]["name"])

    register_kind(operator, BackupPolicy, changed=policy_changed, gone=policy_gone,
                  resync=lambda body, logger: reconcile(kube, body, logger, runner_image))

    @kopf.on.event("batch", "v1", "jobs", labels=OWNED_LABELS, registry=registry)
    def job_changed(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        logging_transient_errors(
            lambda: record_finished_job(kube, body), logger, "could not record Job result")

    @kopf.on.event("batch", "v1", "cronjobs", labels=OWNED_LABELS, registry=registry)
    def cronjob_changed(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        logging_transient_errors(
            lambda: record_schedule(kube, body), logger, "could not record schedule time")
