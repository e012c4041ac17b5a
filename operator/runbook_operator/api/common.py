"""Building blocks shared by every kind: naming, conditions, durations, references.

The pydantic models in this package are the single source of truth for the API: the CRDs in
`crds/` are generated from them (see `crdgen`), and the operator re-validates what it reads with
the same models.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic.alias_generators import to_camel

GROUP = "runbook.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "runbook"
FIELD_MANAGER = "runbook-operator"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "runbook-operator"

DURATION_PATTERN = r"^([0-9]+(ms|s|m|h|d))+$"
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}

#: The longest duration the operator takes: longer is a typo, and times that far from now do
#: not fit a datetime. A pattern cannot bound a value, so the API server accepts more and the
#: operator reports it (Stalled, InvalidSpec).
MAX_DURATION = timedelta(days=36500)
DNS_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
#: The name of another object in the resource's namespace.
ResourceName = Annotated[str, Field(pattern=DNS_NAME_PATTERN, max_length=253)]
#: A key of a Secret's data (what the API server allows there).
SecretKey = Annotated[str, Field(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253)]


def parse_duration(text: str) -> timedelta:
    """Parse `1h30m`-style durations (units ms, s, m, h, d) as used across the API."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"invalid duration {text!r}: use e.g. 30s, 5m, 1h30m, 7d")
    seconds = sum(int(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(text))
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"duration {text!r} is longer than {MAX_DURATION.days}d")
    return timedelta(seconds=seconds)


def _bounded(text: str) -> str:
    """A duration the operator can compute with (see MAX_DURATION)."""
    parse_duration(text)
    return text


Duration = Annotated[str, Field(pattern=DURATION_PATTERN, max_length=64),
                     AfterValidator(_bounded)]
#: Go-style durations without days, so CEL's duration() can read them (for rules that compare).
GO_DURATION_PATTERN = r"^([0-9]+(ms|s|m|h))+$"
GoDuration = Annotated[str, Field(pattern=GO_DURATION_PATTERN, max_length=32),
                       AfterValidator(_bounded)]


class ApiModel(BaseModel):
    """Base of every API model: camelCase on the wire, unknown fields ignored.

    Unknown fields are ignored rather than rejected because the API server prunes them already,
    and an operator older than its CRD must keep working.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        use_attribute_docstrings=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict as it appears in the Kubernetes object."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """One observation of the resource's state, in the standard Kubernetes condition shape."""

    type: str = Field(
        description="Condition type: Ready, Reconciling and Stalled (kstatus) plus domain types.",
        pattern=r"^[A-Za-z][A-Za-z0-9]*$",
        max_length=64,
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        description="A CamelCase machine-readable reason for the last transition.",
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        max_length=1024,
    )
    message: str = Field(
        default="", description="A human-readable explanation of the condition.", max_length=32768
    )
    last_transition_time: datetime = Field(
        description="When the condition last changed status (RFC 3339 UTC)."
    )
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="The metadata.generation the condition was computed from.",
    )


def list_map(*keys: str) -> dict[str, Any]:
    """Schema markers of a list whose items are identified by `keys` (a "map" list), so
    server-side apply merges items by key and the API server rejects duplicate keys."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


CONDITIONS_SCHEMA_EXTRA = list_map("type")
LIST_MAP_BY_NAME = list_map("name")


def unique_names(items: list[Any]) -> list[Any]:
    """The operator's twin of a list-map's key check: no two items share a `name`."""
    names = [item.name for item in items]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"names must be unique: {', '.join(duplicates)}")
    return items


_Item = TypeVar("_Item")
#: A list whose items are identified by their `name`: server-side apply merges by name, and
#: both the API server and the operator reject two items of one name.
NamedList = Annotated[
    list[_Item], AfterValidator(unique_names), Field(json_schema_extra=LIST_MAP_BY_NAME)
]


def unique_items(items: list[Any]) -> list[Any]:
    """The operator's twin of a set list's check: no value twice."""
    duplicates = sorted({str(item) for item in items if items.count(item) > 1})
    if duplicates:
        raise ValueError(f"values must be unique: {', '.join(duplicates)}")
    return items


#: A list of distinct values: server-side apply merges it as a set, and both the API server
#: and the operator reject a value given twice.
SetList = Annotated[
    list[_Item], AfterValidator(unique_items),
    Field(json_schema_extra={"x-kubernetes-list-type": "set"}),
]


#: How the API server classifies a failed rule (apiextensions ValidationRule.reason).
ValidationReason = Literal[
    "FieldValueInvalid", "FieldValueRequired", "FieldValueForbidden", "FieldValueDuplicate"
]


def cel(
    rule: str,
    message: str,
    field_path: str | None = None,
    reason: ValidationReason | None = None,
) -> dict[str, str]:
    """One `x-kubernetes-validations` entry. A rule on an object that is about one of its
    fields names it with `field_path` (relative to the object, e.g. `.encryption`), so the API
    server reports that field; `reason` says whether it is missing, forbidden or invalid. A
    choice among several fields ("exactly one of") is about the object and stays there."""
    entry = {"rule": rule, "message": message}
    if field_path is not None:
        entry["fieldPath"] = field_path
    if reason is not None:
        entry["reason"] = reason
    return entry


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    """`json_schema_extra` of a model or field carrying CEL rules."""
    return {"x-kubernetes-validations": list(rules)}


def with_rules(*rules: dict[str, str]) -> ConfigDict:
    """ApiModel's config plus CEL rules on the model's whole object."""
    return ApiModel.model_config | {"json_schema_extra": validations(*rules)}


class ResourceStatus(ApiModel):
    """The header of every kind's status: the generation reconciled and the conditions, so
    `kubectl wait`, Argo CD and Flux read every kind's health the same way."""

    observed_generation: int | None = Field(
        default=None, description="The metadata.generation last reconciled."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Reconciling and Stalled (kstatus), plus the kind's own types "
        "(e.g. Firing, RPOMet).",
        json_schema_extra=CONDITIONS_SCHEMA_EXTRA,
    )


DeliveryResultValue = Literal["delivered", "retrying", "failed"]


# One record for every use: a channel's last delivery, the attempts of one delivery, and the
# notification log each kind keeps in status to deduplicate (keyed by subject and channel).
class NotificationRecord(ApiModel):
    """One notification sent through a NotificationChannel, or one attempt at sending it:
    what it said about which subject, when, and how it ended (never with a secret)."""

    time: datetime = Field(description="When it was sent (when the attempt ended).")
    channel: str = Field(description="The NotificationChannel.", max_length=253)
    fingerprint: str = Field(
        description="The subject it was about (an alert instance, an incident): the "
        "notification's dedup key.",
        max_length=255,
    )
    event: str = Field(
        description="What it said about the subject: firing, error or resolved (alerts); "
        "failed, breached, succeeded or resolved (backups).",
        max_length=64,
    )
    severity: str = Field(description="Severity it was sent with.", max_length=32)
    level: int = Field(default=0, ge=0, description="Escalation steps reached when sent.")
    result: DeliveryResultValue = Field(
        description="delivered, retrying or failed (after the channel's retries)."
    )
    status_code: int | None = Field(
        default=None, description="HTTP status, or the SMTP reply code for email."
    )
    message: str | None = Field(
        default=None, description="What happened, for people.", max_length=1024
    )
    attempt: int | None = Field(
        default=None, ge=1, description="Attempt number of a delivery, starting at 1."
    )


class SecretKeyRef(ApiModel):
    """Selects one key of a Secret in the resource's own namespace."""

    name: str = Field(
        description="Name of the Secret, in the same namespace as this resource.",
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
    )
    key: SecretKey = Field(description="Key inside the Secret's data.")



def _readable(item: Any) -> bool:
    try:
        NotificationRecord.model_validate(item)
    except ValidationError:
        return False
    return True


def _log_without_unreadable(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Records an older operator wrote without today's required fields (or that a newer CRD
    pruned) are dropped rather than failing the whole status; the next notification writes a
    complete record again."""
    try:
        return handler(value)
    except ValidationError:
        if not isinstance(value, list):
            raise
        return handler([item for item in value if _readable(item)])


def _record_unless_unreadable(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """One record, None when an older operator wrote it without today's required fields."""
    try:
        return handler(value)
    except ValidationError:
        if not isinstance(value, dict):
            raise
        return None


NotificationLog = Annotated[list[NotificationRecord], WrapValidator(_log_without_unreadable)]
LastNotification = Annotated[NotificationRecord | None, WrapValidator(_record_unless_unreadable)]


class PrinterColumn(BaseModel):
    """An `additionalPrinterColumns` entry for `kubectl get`."""

    name: str
    type: Literal["string", "integer", "number", "boolean", "date"]
    json_path: str
    description: str
    priority: int = 0


def ready_column() -> PrinterColumn:
    return PrinterColumn(
        name="Ready",
        type="string",
        json_path='.status.conditions[?(@.type=="Ready")].status',
        description="Whether the resource is reconciled and healthy.",
    )


def reason_column() -> PrinterColumn:
    return PrinterColumn(
        name="Reason",
        type="string",
        json_path='.status.conditions[?(@.type=="Ready")].reason',
        description="Why the resource is or is not Ready.",
        priority=1,
    )


def age_column() -> PrinterColumn:
    return PrinterColumn(
        name="Age",
        type="date",
        json_path=".metadata.creationTimestamp",
        description="Time since the resource was created.",
    )


def health_columns() -> list[PrinterColumn]:
    """Ready, why (in wide output) and Age: the columns that follow a kind's own."""
    return [ready_column(), reason_column(), age_column()]


class NameLimit(BaseModel):
    """How long metadata.name may be, for kinds whose generated children add a suffix to it."""

    length: int
    message: str

    def rule(self) -> dict[str, str]:
        """The root rule the API server applies."""
        return cel(f"size(self.metadata.name) <= {self.length}", self.message,
                   ".metadata.name", "FieldValueInvalid")


class KindInfo(BaseModel):
    """What the CRD generator needs to know about a kind beyond its schema."""

    kind: str
    plural: str
    short_names: list[str]
    printer_columns: list[PrinterColumn]
    name_limit: NameLimit | None = None
    selectable_fields: list[str] = []
    """Field paths (`spec.a.b`, scalar) that field selectors may name: the API server filters
    a LIST or watch by them, so neither kubectl nor the operator receives what it does not ask
    for (CRD selectableFields, Kubernetes >= 1.31)."""


class Resource(ApiModel):
    """Base of every top-level kind: subclasses declare `spec`, `status` and `info`."""

    info: ClassVar[KindInfo]

    @model_validator(mode="before")
    @classmethod
    def _name_fits(cls, data: Any) -> Any:
        """The operator's twin of the root rule of `info.name_limit`, for whole objects."""
        limit = cls.info.name_limit
        name = ((data.get("metadata") or {}).get("name") or "") if isinstance(data, dict) else ""
        if limit is not None and len(name) > limit.length:
            raise ValueError(limit.message)
        return data

    @classmethod
    def singular(cls) -> str:
        return cls.info.kind.lower()

    @classmethod
    def crd_name(cls) -> str:
        return f"{cls.info.plural}.{GROUP}"


def status_field(model: type[ResourceStatus]) -> Any:
    """A kind's `status` field: the operator's alone, empty until its first reconcile."""
    return Field(default_factory=model, description="Observed state, written by the operator.")
