"""BackupPolicy: a scheduled backup rendered as a native CronJob."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from runbook_operator.api.common import (
    CONDITIONS_SCHEMA_EXTRA,
    ApiModel,
    Condition,
    Duration,
    KindInfo,
    PrinterColumn,
    Resource,
    SecretKeyRef,
    age_column,
    ready_column,
    reason_column,
)
from runbook_operator.api.schedule import CronSchedule, TimeZone

CRONJOB_SUFFIX = "-backup"
MAX_NAME_LENGTH = 52 - len(CRONJOB_SUFFIX)

Quantity = str | int


class EnvVar(ApiModel):
    """An environment variable for the backup container: a literal value or a Secret key."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.value) != has(self.secretKeyRef)",
                    "message": "set exactly one of value and secretKeyRef",
                }
            ]
        }
    }

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
        description="Takes the value from a Secret key; the value never appears in generated objects.",
    )

    @model_validator(mode="after")
    def _exactly_one_value(self) -> EnvVar:
        if (self.value is None) == (self.secret_key_ref is None):
            raise ValueError(f"env {self.name}: set exactly one of value and secretKeyRef")
        return self


class CommandSource(ApiModel):
    """Runs a command in a container image of your choice as the backup."""

    image: str = Field(
        description="Container image that runs the backup command.", min_length=1, max_length=512
    )
    command: list[str] = Field(
        description="Entrypoint, as an exec array (not run through a shell).",
        min_length=1,
        max_length=64,
    )
    args: list[str] = Field(
        default_factory=list, description="Arguments passed to the command.", max_length=256
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        description="Environment variables; credentials must come from secretKeyRef.",
        max_length=64,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
    )

    def secret_refs(self) -> list[SecretKeyRef]:
        return [e.secret_key_ref for e in self.env if e.secret_key_ref is not None]


class BackupSource(ApiModel):
    """What to back up. Exactly one source kind is set."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {"rule": "has(self.command)", "message": "set exactly one source: command"}
            ]
        }
    }

    command: CommandSource | None = Field(
        default=None, description="A custom command whose run is the backup."
    )

    @model_validator(mode="after")
    def _exactly_one_source(self) -> BackupSource:
        if self.command is None:
            raise ValueError("set exactly one source: command")
        return self


class ResourceRequirements(ApiModel):
    """CPU and memory for the backup container, as in a Pod spec."""

    requests: dict[str, Quantity] = Field(
        default_factory=dict, description="Minimum resources, e.g. {cpu: 100m, memory: 128Mi}."
    )
    limits: dict[str, Quantity] = Field(
        default_factory=dict, description="Maximum resources, e.g. {memory: 512Mi}."
    )


class BackupPolicySpec(ApiModel):
    """Desired backup schedule and source."""

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

    def secret_refs(self) -> list[SecretKeyRef]:
        """Every Secret key the rendered Job depends on."""
        return self.source.command.secret_refs() if self.source.command else []


class JobRecord(ApiModel):
    """The most recent finished backup Job."""

    name: str = Field(description="Name of the Job.")
    outcome: Literal["Succeeded", "Failed"] = Field(description="How the Job ended.")
    finished_at: datetime = Field(description="When the Job finished.")
    reason: str = Field(default="", description="Why it failed (the Job's condition reason).")
    message: str = Field(default="", description="The Job's condition message.")


class BackupPolicyStatus(ApiModel):
    """What the operator observed and decided."""

    observed_generation: int | None = Field(
        default=None, description="The metadata.generation last reconciled."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Reconciling and Stalled conditions.",
        json_schema_extra=CONDITIONS_SCHEMA_EXTRA,
    )
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


class BackupPolicy(Resource):
    """Backs up a source on a schedule through a CronJob the operator renders and owns."""

    info = KindInfo(
        kind="BackupPolicy",
        plural="backuppolicies",
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
            ready_column(),
            reason_column(),
            age_column(),
        ],
        root_validations=[
            {
                "rule": f"size(self.metadata.name) <= {MAX_NAME_LENGTH}",
                "message": f"name must be at most {MAX_NAME_LENGTH} characters "
                f"(the CronJob name adds '{CRONJOB_SUFFIX}')",
            }
        ],
    )

    spec: BackupPolicySpec = Field(description="Desired backup schedule and source.")
    status: BackupPolicyStatus = Field(
        default_factory=BackupPolicyStatus, description="Observed state, written by the operator."
    )
