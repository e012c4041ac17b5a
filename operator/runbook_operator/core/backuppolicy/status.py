"""The status a BackupPolicy reconcile or a finished Job writes: kstatus conditions, the RPO,
the backup-now acknowledgement and the schedule time.

Health follows kstatus, so `kubectl wait`, Argo CD and Flux judge it: `Stalled` (and
`Ready=False`) when the spec cannot work until someone changes it; `Ready=False` with reason
`BackupFailing` while the newest backup run failed, since a policy whose backups fail is not
healthy however well its CronJob is rendered; `Ready=True` otherwise. A failing backup is not
`Stalled`: the next run may succeed without a spec change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from runbook_operator.api.backuppolicy import BackupPolicySpec, BackupPolicyStatus, JobRecord
from runbook_operator.api.common import Condition, parse_duration
from runbook_operator.core.backuppolicy import rpo as rpo_core
from runbook_operator.core.backuppolicy.job_outcome import RunVerdict, record_run
from runbook_operator.core.backuppolicy.names import BACKUP_NOW_ANNOTATION
from runbook_operator.core.backuppolicy.notifications import Sent, log_notifications
from runbook_operator.core.backuppolicy.rpo import RPOEvaluation
from runbook_operator.core.conditions import Outcome, Phase, apply_outcome, set_condition

READY_CONDITION = "Ready"
RPO_CONDITION = "RPOMet"
BACKUP_FAILING = "BackupFailing"
MESSAGE_LIMIT = 1024


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def invalid_spec_outcome(problems: Sequence[str]) -> Outcome | None:
    """`Stalled` for a spec the operator cannot render (invalid, or wrong in a way only the
    operator can tell); None when there is no problem."""
    if not problems:
        return None
    return Outcome(Phase.STALLED, "InvalidSpec", "; ".join(problems))


def missing_secrets_outcome(missing: Sequence[str]) -> Outcome | None:
    """`Stalled` while a referenced Secret or key is missing: nothing is rendered with it."""
    if not missing:
        return None
    message = "; ".join(missing) + ". The CronJob is not changed until the Secret exists."
    return Outcome(Phase.STALLED, "SecretNotFound", message)


def scheduled_outcome(spec: BackupPolicySpec, cronjob_name: str) -> Outcome:
    """Ready once the CronJob is applied: suspended, or running on its schedule."""
    if spec.suspend:
        return Outcome(Phase.READY, "Suspended", f"CronJob {cronjob_name} is suspended")
    message = f"CronJob {cronjob_name} runs {spec.schedule!r} in {spec.time_zone}"
    return Outcome(Phase.READY, "Scheduled", message)


def backup_now_request(body: Mapping[str, Any]) -> str | None:
    """The `runbook.dev/backup-now` token not yet acted on, if any."""
    token = (body["metadata"].get("annotations") or {}).get(BACKUP_NOW_ANNOTATION)
    handled = (body.get("status") or {}).get("backupNowToken")
    return token if token and token != handled else None


def evaluate_rpo(
    spec: BackupPolicySpec | None, status: BackupPolicyStatus, created: datetime, now: datetime
) -> RPOEvaluation | None:
    """The RPO of a valid spec that sets one, from the times stored in status."""
    if spec is None or spec.rpo is None:
        return None
    return rpo_core.evaluate(parse_duration(spec.rpo), status.last_successful_time, created,
                             status.rpo_breach_notified_at, now)


def rpo_was_met(status: BackupPolicyStatus) -> bool | None:
    """The RPOMet condition before this evaluation; None when there was none."""
    found = next((c for c in status.conditions if c.type == RPO_CONDITION), None)
    return None if found is None else found.status == "True"


def _failing_message(job: JobRecord) -> str:
    why = f"{job.reason}: {job.message}".strip(": ") or "failed"
    text = f"the newest backup run, Job {job.name}, failed at {job.finished_at:%Y-%m-%dT%H:%M:%SZ}"
    return f"{text}: {' '.join(why.split())}"[:MESSAGE_LIMIT]


def with_backup_health(
    conditions: list[Condition], stored: list[Condition], last_job: JobRecord | None,
    now: datetime, generation: int | None,
) -> list[Condition]:
    """`Ready=False`, reason BackupFailing, while the newest backup run failed on a policy that
    is otherwise Ready. A spec problem keeps its own reason; a success leaves Ready as it is
    for the reconcile (which knows whether the CronJob is in place) to set it True again.
    `stored` are the conditions as read, so a Ready that stays BackupFailing keeps its
    lastTransitionTime (and an unchanged status is not rewritten)."""
    ready = next((c for c in conditions if c.type == READY_CONDITION), None)
    if ready is None or last_job is None or last_job.outcome != "Failed":
        return conditions
    if ready.status != "True" and ready.reason != BACKUP_FAILING:
        return conditions
    before = next((c for c in stored if c.type == READY_CONDITION), ready)
    conditions = [before if c.type == READY_CONDITION else c for c in conditions]
    return set_condition(conditions, READY_CONDITION, "False", BACKUP_FAILING,
                         _failing_message(last_job), now, generation)


def _with_rpo(
    conditions: list[Condition], rpo: RPOEvaluation | None, now: datetime, generation: int
) -> list[Condition]:
    if rpo is None:
        return [c for c in conditions if c.type != RPO_CONDITION]
    return set_condition(
        conditions, RPO_CONDITION, "True" if rpo.met else "False",
        "WithinObjective" if rpo.met else "ObjectiveBreached", rpo.message, now, generation,
    )


def reconciled_status(
    old: BackupPolicyStatus,
    outcome: Outcome,
    generation: int,
    cronjob: Mapping[str, Any] | None,
    now: datetime,
    rpo: RPOEvaluation | None = None,
    backup_now_token: str | None = None,
    sent: Sequence[Sent] = (),
) -> BackupPolicyStatus:
    """The status a reconcile writes over `old` (as read just before writing): conditions for
    its outcome and the newest run, the RPO, the notifications it sent, and what it learned
    from the CronJob it applied."""
    conditions = apply_outcome(old.conditions, outcome, now, generation)
    conditions = with_backup_health(conditions, old.conditions, old.last_job, now, generation)
    update: dict[str, Any] = {
        "observed_generation": generation,
        "conditions": _with_rpo(conditions, rpo, now, generation),
        "rpo_deadline": rpo.deadline if rpo is not None else None,
    }
    if rpo is not None and rpo.notify:
        update["rpo_breach_notified_at"] = now
    if backup_now_token is not None:
        update["backup_now_token"] = backup_now_token
    if cronjob is not None:
        update["cron_job_name"] = cronjob["metadata"]["name"]
        scheduled = parse_time((cronjob.get("status") or {}).get("lastScheduleTime"))
        if scheduled and (old.last_schedule_time is None or scheduled > old.last_schedule_time):
            update["last_schedule_time"] = scheduled
    return log_notifications(old, sent).model_copy(update=update)


def status_after_run(
    old: BackupPolicyStatus, verdict: RunVerdict, sent: Sequence[Sent], now: datetime
) -> BackupPolicyStatus:
    """`old` with a finished run folded in, the notifications it caused logged, and Ready
    turned BackupFailing at once when it was a failed backup."""
    new = log_notifications(record_run(old, verdict), sent)
    conditions = with_backup_health(new.conditions, new.conditions, new.last_job, now,
                                    old.observed_generation)
    return new.model_copy(update={"conditions": conditions})


def status_after_schedule(old: BackupPolicyStatus, scheduled: datetime) -> BackupPolicyStatus:
    """`old` with the CronJob's newer lastScheduleTime; times never go back."""
    if old.last_schedule_time is not None and old.last_schedule_time >= scheduled:
        return old
    return old.model_copy(update={"last_schedule_time": scheduled})
