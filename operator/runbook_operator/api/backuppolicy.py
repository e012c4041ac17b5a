"""BackupPolicy: a scheduled backup rendered as a native CronJob."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from runbook_operator.api.common import (
    ApiModel,
    Duration,
    KindInfo,
    NameLimit,
    NamedList,
    NotificationLog,
    PrinterColumn,
    Resource,
    ResourceStatus,
    SecretKey,
    SecretKeyRef,
    ValidationReason,
    cel,
    health_columns,
    parse_duration,
    status_field,
    validations,
    with_rules,
)
from runbook_operator.api.incident import INCIDENT_SEVERITY_FIELD, IncidentTrigger
from runbook_operator.api.schedule import CronSchedule, TimeZone

CRONJOB_SUFFIX = "-backup"
RESTORE_TEST_SUFFIX = "-restore"
MAX_NAME_LENGTH = 52 - max(len(CRONJOB_SUFFIX), len(RESTORE_TEST_SUFFIX))
NAME_TOO_LONG = (f"name must be at most {MAX_NAME_LENGTH} characters "
                 f"(CronJob names add '{RESTORE_TEST_SUFFIX}')")

Quantity = str | int


class EnvVar(ApiModel):
    """An environment variable for the backup container: a literal value or a Secret key."""

    model_config = with_rules(
        cel("has(self.value) != has(self.secretKeyRef)",
            "set exactly one of value and secretKeyRef"),
    )

    name: str = Field(
        description="Variable name.",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        max_length=128,
    )
    value: str | None = Field(
        default=None,
        description="A literal, non-secret value. Use secretKeyRef for credentials.",
    )
    secret_key_ref: SecretKeyRef | None = Field(
        default=None,
        description="Takes the value from a Secret key; the value never appears in generated "
        "objects.",
    )

    @model_validator(mode="after")
    def _exactly_one_value(self) -> EnvVar:
        if (self.value is None) == (self.secret_key_ref is None):
            raise ValueError("set exactly one of value and secretKeyRef")
        return self


class CommandSource(ApiModel):
    """A custom command. Without a destination it is the whole backup, run in `image`; with a
    destination it runs in the runner's image and its stdout is the backup, which the runner
    compresses, encrypts, stores and verifies."""

    image: str | None = Field(
        default=None,
        description="Container image that runs the command (only without a destination).",
        min_length=1,
        max_length=512,
    )
    command: list[str] = Field(
        description="Entrypoint, as an exec array (not run through a shell).",
        min_length=1,
        max_length=64,
    )
    args: list[str] = Field(
        default_factory=list, description="Arguments passed to the command.", max_length=256
    )
    env: NamedList[EnvVar] = Field(
        default_factory=list,
        description="Environment variables; credentials must come from secretKeyRef.",
        max_length=64,
    )

    def secret_refs(self) -> list[SecretKeyRef]:
        return [e.secret_key_ref for e in self.env if e.secret_key_ref is not None]


HOST_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$"
DB_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_$-]*$"


class DatabaseSource(ApiModel):
    """Connection to a database server; the password comes from a Secret."""

    host: str = Field(description="Server host name (a Service name works).",
                      pattern=HOST_PATTERN, max_length=253)
    port: int | None = Field(default=None, ge=1, le=65535,
                             description="Server port (default: the engine's standard port).")
    database: str = Field(description="Database to dump.", pattern=DB_NAME_PATTERN,
                          max_length=63)
    user: str = Field(description="User to connect as.", min_length=1, max_length=63)
    password_secret_ref: SecretKeyRef = Field(description="Secret key holding the password.")
    extra_args: list[str] = Field(
        default_factory=list, max_length=32,
        description="Extra arguments for the dump tool (e.g. --exclude-table=audit_log).",
    )


class FilesSource(ApiModel):
    """Files on a PersistentVolumeClaim, archived with tar."""

    claim_name: str = Field(description="PersistentVolumeClaim to back up (mounted read-only).",
                            pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)
    path: str = Field(default="/", pattern=r"^/([^/]+(/[^/]+)*)?/?$", max_length=1024,
                      description="Directory inside the volume to archive.")
    exclude: list[str] = Field(default_factory=list, max_length=64,
                               description="Glob patterns of paths to leave out.")


SOURCE_KINDS = ("postgres", "mysql", "files", "command")
_ONE_SOURCE = " + ".join(f"(has(self.{kind}) ? 1 : 0)" for kind in SOURCE_KINDS) + " == 1"


class BackupSource(ApiModel):
    """What to back up. Exactly one source kind is set."""

    model_config = with_rules(
        cel(_ONE_SOURCE, "set exactly one source: postgres, mysql, files or command"),
    )

    postgres: DatabaseSource | None = Field(
        default=None, description="PostgreSQL, dumped with pg_dump in custom format.")
    mysql: DatabaseSource | None = Field(
        default=None, description="MySQL or MariaDB, dumped with mysqldump --single-transaction.")
    files: FilesSource | None = Field(default=None, description="Files on a volume, as tar.")
    command: CommandSource | None = Field(
        default=None, description="A custom command (see CommandSource).")

    @model_validator(mode="after")
    def _exactly_one_source(self) -> BackupSource:
        if sum(getattr(self, kind) is not None for kind in SOURCE_KINDS) != 1:
            raise ValueError("set exactly one source: postgres, mysql, files or command")
        return self

    def kind(self) -> str:
        return next(kind for kind in SOURCE_KINDS if getattr(self, kind) is not None)


class PVCDestination(ApiModel):
    """A directory on a PersistentVolumeClaim."""

    claim_name: str = Field(description="PersistentVolumeClaim that holds the backups.",
                            pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)
    path: str = Field(default="backups", max_length=512,
                      pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$",
                      description="Directory inside the volume (relative); backups go under "
                      "<path>/<namespace>/<policy>/.")


class S3Credentials(ApiModel):
    """Keys of a Secret holding S3 credentials."""

    name: str = Field(description="Secret name.", pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
                      max_length=253)
    access_key_id_key: SecretKey = Field(default="AWS_ACCESS_KEY_ID",
                                         description="Key holding the access key id.")
    secret_access_key_key: SecretKey = Field(default="AWS_SECRET_ACCESS_KEY",
                                             description="Key holding the secret access key.")


class S3Destination(ApiModel):
    """An S3-compatible bucket (AWS S3, MinIO, Ceph RGW, ...)."""

    endpoint: str | None = Field(default=None, pattern=r"^https?://[^ /]+(/.*)?$",
                                 max_length=512,
                                 description="Endpoint URL; empty for AWS S3.")
    region: str = Field(default="us-east-1", max_length=64, description="Bucket region.")
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
                        description="Bucket name.")
    prefix: str = Field(default="", max_length=512, pattern=r"^([A-Za-z0-9_.-]+/?)*$",
                        description="Key prefix; backups go under <prefix>/<namespace>/<policy>/.")
    force_path_style: bool = Field(default=True,
                                   description="Path-style addressing (needed by MinIO).")
    credentials_secret_ref: S3Credentials = Field(description="Where the credentials are.")


class Destination(ApiModel):
    """Where backups are stored. Exactly one kind is set."""

    model_config = with_rules(
        cel("has(self.pvc) != has(self.s3)", "set exactly one destination: pvc or s3"),
    )

    pvc: PVCDestination | None = Field(default=None, description="A volume directory.")
    s3: S3Destination | None = Field(default=None, description="An S3-compatible bucket.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Destination:
        if (self.pvc is None) == (self.s3 is None):
            raise ValueError("set exactly one destination: pvc or s3")
        return self


class Encryption(ApiModel):
    """Client-side encryption of every backup with a key from a Secret."""

    model_config = with_rules(
        cel("self.mode == 'none' || has(self.keySecretRef)",
            "aes-256-gcm needs keySecretRef (or set mode: none explicitly)",
            ".keySecretRef", "FieldValueRequired"),
    )

    mode: Literal["aes-256-gcm", "none"] = Field(
        default="aes-256-gcm", description="aes-256-gcm (authenticated, chunked) or none.")
    key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding the 32-byte key, base64 or hex encoded.",
    )

    @model_validator(mode="after")
    def _key_unless_none(self) -> Encryption:
        if self.mode != "none" and self.key_secret_ref is None:
            raise ValueError("aes-256-gcm needs keySecretRef (or set mode: none explicitly)")
        return self


class Retention(ApiModel):
    """Which backups to keep, applied after each successful backup inside the policy's own
    prefix. The newest verified backup and the newest restore-tested one are never deleted; no
    rule keeps everything."""

    keep_last: int = Field(default=0, ge=0, le=1000, description="Keep the newest N backups.")
    keep_daily: int = Field(default=0, ge=0, le=1000,
                            description="Keep the newest backup of each of the last N days.")
    keep_weekly: int = Field(default=0, ge=0, le=1000,
                             description="Keep the newest backup of each of the last N weeks.")
    keep_monthly: int = Field(default=0, ge=0, le=1000,
                              description="Keep the newest backup of each of the last N months.")
    keep_yearly: int = Field(default=0, ge=0, le=100,
                             description="Keep the newest backup of each of the last N years.")
    max_age: Duration | None = Field(
        default=None, description="Delete backups older than this (e.g. 30d), whatever else.")
    dry_run: bool = Field(default=False,
                          description="Report what would be deleted without deleting.")

    @field_validator("max_age")
    @classmethod
    def _at_least_a_second(cls, value: str | None) -> str | None:
        """The runner counts whole seconds, and an age of 0 would delete every backup."""
        if value is not None and parse_duration(value) < timedelta(seconds=1):
            raise ValueError("maxAge must be at least 1s")
        return value


class RestoreTest(ApiModel):
    """Restore the newest backup into a scratch target on a schedule, to prove it restores."""

    schedule: CronSchedule = Field(description="Cron schedule of the restore test.")
    check_query: str | None = Field(
        default=None, max_length=4096,
        description="SQL run on the restored database; the test fails if it errors.")
    timeout: Duration = Field(default="1h", description="Maximum duration of one test.")
    suspend: bool = Field(default=False, description="Pause restore tests.")


class Notifications(ApiModel):
    """Which NotificationChannels hear about this policy, and about what."""

    channels: list[str] = Field(
        default_factory=list, max_length=16,
        description="Names of NotificationChannels in this namespace.")
    on_failure: bool = Field(default=True, description="Notify when a backup fails.")
    on_rpo_breach: bool = Field(default=True, description="Notify when the RPO is breached.")
    on_success: bool = Field(default=False, description="Notify when a backup succeeds.")


class ResourceRequirements(ApiModel):
    """CPU and memory for the backup container, as in a Pod spec."""

    requests: dict[str, Quantity] = Field(
        default_factory=dict, description="Minimum resources, e.g. {cpu: 100m, memory: 128Mi}."
    )
    limits: dict[str, Quantity] = Field(
        default_factory=dict, description="Maximum resources, e.g. {memory: 512Mi}."
    )


class BackupPolicySpec(ApiModel):
    """Desired backup schedule, source, destination and objectives."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": lambda schema: schema.update(
            validations(*(rule.cel() for rule in RUNNER_RULES))
        )
    }

    schedule: CronSchedule = Field(
        description="Cron schedule (5 fields or a macro such as @daily), evaluated in timeZone."
    )
    time_zone: TimeZone = Field(
        default="UTC", description="IANA time zone the schedule is evaluated in."
    )
    suspend: bool = Field(
        default=False,
        description="Pause scheduling; runs already started continue. Backups are not lost: "
        "the next tick after resuming runs.",
    )
    source: BackupSource = Field(description="What to back up.")
    starting_deadline: Duration = Field(
        default="5m",
        description="How late a missed run may still start (for example after an outage); "
        "older missed runs are skipped rather than run in a burst.",
    )
    timeout: Duration = Field(
        default="1h",
        description="A run still going after this long is stopped and reported as failed.",
    )
    backoff_limit: int = Field(
        default=1, ge=0, le=10, description="Retries of a failed run before it counts as failed."
    )
    successful_jobs_history_limit: int = Field(
        default=3, ge=0, le=100, description="Finished successful Jobs to keep for inspection."
    )
    failed_jobs_history_limit: int = Field(
        default=3, ge=0, le=100, description="Failed Jobs to keep for inspection."
    )
    service_account_name: str | None = Field(
        default=None,
        description="ServiceAccount the backup Pod runs as (default: the namespace's default).",
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        max_length=253,
    )
    resources: ResourceRequirements | None = Field(
        default=None, description="CPU and memory requests and limits for the backup container."
    )
    destination: Destination | None = Field(
        default=None,
        description="Where the runner stores backups. Without it, source.command is the whole "
        "backup job.",
    )
    compression: Literal["zstd", "gzip", "none"] = Field(
        default="zstd", description="Compression applied by the runner.")
    encryption: Encryption | None = Field(
        default=None, description="Encryption applied by the runner (required with a destination).")
    retention: Retention | None = Field(default=None, description="Pruning rules.")
    restore_test: RestoreTest | None = Field(
        default=None, description="Scheduled restore tests of the newest backup.")
    rpo: Duration | None = Field(
        default=None,
        description="Recovery point objective: the newest good backup must be younger than this.")
    notifications: Notifications | None = Field(
        default=None, description="Who is told about failures, RPO breaches and successes.")
    incident: IncidentTrigger | None = Field(
        default=None,
        description="Open an Incident when a backup run fails or the RPO is breached: one per "
        "policy, updated while open (each further failure), a new one for a failure after it "
        "was resolved and a backup succeeded.")

    @model_validator(mode="after")
    def _runner_rules(self) -> BackupPolicySpec:
        for problem in runner_rule_violations(self):
            raise ValueError(problem)
        return self

    def secret_refs(self) -> list[SecretKeyRef]:
        """Every Secret key the rendered Jobs depend on."""
        refs: list[SecretKeyRef] = []
        source = self.source
        if source.command:
            refs += source.command.secret_refs()
        for db in (source.postgres, source.mysql):
            if db:
                refs.append(db.password_secret_ref)
        if self.encryption and self.encryption.key_secret_ref:
            refs.append(self.encryption.key_secret_ref)
        if self.destination and self.destination.s3:
            creds = self.destination.s3.credentials_secret_ref
            refs += [SecretKeyRef(name=creds.name, key=creds.access_key_id_key),
                     SecretKeyRef(name=creds.name, key=creds.secret_access_key_key)]
        return refs


@dataclass(frozen=True)
class RunnerRule:
    """A cross-field rule of the spec, once for the API server (CEL) and once for the
    operator's re-validation (`holds`)."""

    rule: str
    message: str
    field_path: str
    reason: ValidationReason
    holds: Callable[[BackupPolicySpec], bool]

    def cel(self) -> dict[str, str]:
        return cel(self.rule, self.message, self.field_path, self.reason)


RUNNER_RULES = [
    RunnerRule(
        "has(self.destination) || (has(self.source.command) && has(self.source.command.image))",
        "without a destination the backup is source.command run in its own image: "
        "set source.command.image, or set a destination",
        ".destination", "FieldValueRequired",
        lambda s: s.destination is not None
        or (s.source.command is not None and s.source.command.image is not None),
    ),
    RunnerRule(
        "!has(self.destination) || !has(self.source.command) || !has(self.source.command.image)",
        "with a destination, source.command runs in the runner image and its stdout is the "
        "backup: remove source.command.image",
        ".source.command.image", "FieldValueForbidden",
        lambda s: s.destination is None or s.source.command is None
        or s.source.command.image is None,
    ),
    RunnerRule(
        "!has(self.destination) || has(self.encryption)",
        "with a destination, set encryption (keySecretRef, or mode: none explicitly)",
        ".encryption", "FieldValueRequired",
        lambda s: s.destination is None or s.encryption is not None,
    ),
    RunnerRule(
        "!has(self.restoreTest) || !has(self.source.command)",
        "restoreTest needs a source it can restore: postgres, mysql or files",
        ".restoreTest", "FieldValueForbidden",
        lambda s: s.restore_test is None or s.source.command is None,
    ),
    RunnerRule(
        "has(self.destination) || (!has(self.retention) && !has(self.restoreTest))",
        "retention and restoreTest need a destination",
        ".destination", "FieldValueRequired",
        lambda s: s.destination is not None or (s.retention is None and s.restore_test is None),
    ),
]


def runner_rule_violations(spec: BackupPolicySpec) -> list[str]:
    """The same cross-field rules the CRD enforces with CEL, for the operator's re-validation."""
    return [rule.message for rule in RUNNER_RULES if not rule.holds(spec)]


class JobRecord(ApiModel):
    """The most recent finished backup Job."""

    name: str = Field(description="Name of the Job.")
    outcome: Literal["Succeeded", "Failed"] = Field(description="How the Job ended.")
    finished_at: datetime = Field(description="When the Job finished.")
    reason: str = Field(default="", description="Why it failed (the Job's condition reason).")
    message: str = Field(default="", description="The Job's condition message.")


HISTORY_LIMIT = 20


class BackupRecord(ApiModel):
    """A backup the runner stored and verified."""

    time: datetime = Field(description="When the backup finished.")
    job_name: str = Field(description="The Job that made it.")
    location: str = Field(default="", description="Where it is (s3://... or file://...).")
    key: str = Field(default="", description="Its key under the policy's prefix.")
    size_bytes: int = Field(default=0, ge=0, description="Stored size in bytes.")
    sha256: str = Field(default="", description="SHA-256 of the stored object.")
    key_id: str | None = Field(
        default=None, description="Id of the encryption key it was encrypted with (none when "
        "not encrypted): the key a restore needs.")
    duration_seconds: float = Field(default=0, ge=0, description="How long the run took.")
    verified: bool = Field(default=False, description="Whether verification passed.")
    pruned_count: int = Field(default=0, ge=0,
                              description="Backups retention deleted after this one.")
    pruned: list[str] = Field(default_factory=list, max_length=10,
                              description="Some of the pruned backups' keys.")
    prune_dry_run: bool = Field(
        default=False, description="True when retention.dryRun: pruned lists what would go.")


class BackupAttempt(ApiModel):
    """One finished run, successful or not (the newest first, capped)."""

    time: datetime = Field(description="When the run finished.")
    job_name: str = Field(description="The Job.")
    outcome: Literal["Succeeded", "Failed"] = Field(description="How it ended.")
    reason: str = Field(default="", description="CamelCase reason of a failure.")
    message: str = Field(default="", description="What happened, for people.")
    size_bytes: int | None = Field(default=None, description="Stored size, when it succeeded.")
    key_id: str | None = Field(
        default=None, description="Id of the encryption key, when it stored an encrypted backup.")


class RestoreTestRecord(ApiModel):
    """The last restore test: which backup, how long (a measured RTO), and the outcome."""

    time: datetime = Field(description="When the test finished.")
    job_name: str = Field(description="The Job that ran it.")
    outcome: Literal["Succeeded", "Failed"] = Field(description="How it ended.")
    backup_key: str = Field(default="", description="The backup that was restored.")
    duration_seconds: float = Field(default=0, ge=0, description="Restore duration (RTO).")
    message: str = Field(default="", description="Check result or failure reason.")


NOTIFICATION_LOG_LIMIT = 10


class BackupPolicyStatus(ResourceStatus):
    """What the operator observed and decided."""

    cron_job_name: str | None = Field(default=None, description="The CronJob that runs backups.")
    last_schedule_time: datetime | None = Field(
        default=None, description="When the CronJob last started a run."
    )
    last_successful_time: datetime | None = Field(
        default=None, description="When a backup run last succeeded."
    )
    last_failure_time: datetime | None = Field(
        default=None, description="When a backup run last failed."
    )
    last_job: JobRecord | None = Field(default=None, description="The last finished backup Job.")
    last_backup: BackupRecord | None = Field(
        default=None, description="The newest successful backup the runner reported.")
    history: list[BackupAttempt] = Field(
        default_factory=list, max_length=HISTORY_LIMIT,
        description=f"The last {HISTORY_LIMIT} runs, newest first.")
    last_verified_backup: RestoreTestRecord | None = Field(
        default=None, description="The newest restore test.")
    restore_test_cron_job_name: str | None = Field(
        default=None, description="The CronJob that runs restore tests.")
    notifications: NotificationLog = Field(
        default_factory=list, max_length=NOTIFICATION_LOG_LIMIT,
        description=f"The last {NOTIFICATION_LOG_LIMIT} notifications sent, newest first.")
    backup_now_token: str | None = Field(
        default=None, description="The last runbook.dev/backup-now annotation value acted on.")
    rpo_deadline: datetime | None = Field(
        default=None, description="When the RPO is breached unless a backup succeeds first.")
    rpo_breach_notified_at: datetime | None = Field(
        default=None, description="When the current RPO breach was notified (once per breach).")


class BackupPolicy(Resource):
    """Backs up a source on a schedule through a CronJob the operator renders and owns."""

    info = KindInfo(
        kind="BackupPolicy",
        plural="backuppolicies",
        selectable_fields=[INCIDENT_SEVERITY_FIELD],
        short_names=["bp"],
        printer_columns=[
            PrinterColumn(
                name="Schedule",
                type="string",
                json_path=".spec.schedule",
                description="Cron schedule.",
            ),
            PrinterColumn(
                name="Suspend",
                type="boolean",
                json_path=".spec.suspend",
                description="Whether scheduling is paused.",
            ),
            PrinterColumn(
                name="Last Success",
                type="date",
                json_path=".status.lastSuccessfulTime",
                description="Time since the last successful backup.",
            ),
            PrinterColumn(
                name="Last Failure",
                type="date",
                json_path=".status.lastFailureTime",
                description="Time since the last failed backup.",
                priority=1,
            ),
            PrinterColumn(
                name="RPO Met",
                type="string",
                json_path='.status.conditions[?(@.type=="RPOMet")].status',
                description="Whether the newest good backup is within the RPO.",
            ),
            *health_columns(),
        ],
        name_limit=NameLimit(length=MAX_NAME_LENGTH, message=NAME_TOO_LONG),
    )

    spec: BackupPolicySpec = Field(description="Desired backup schedule and source.")
    status: BackupPolicyStatus = status_field(BackupPolicyStatus)
