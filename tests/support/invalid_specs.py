"""One invalid object for every CEL rule and every schema constraint of every kind, with the
field path and message the API server reports for it.

Three tests share this table, so the API server's rules and the operator's pydantic models
cannot drift apart: an e2e test applies each case to a real API server and compares what it
reports; a unit test runs each case through the pydantic models, which must reject it at the
same field (or the object holding it); and a unit test walks the generated CRDs and fails when
a rule or constraint has no case here, or a case names one that no longer exists.

Each case is a valid base object with one change, so it breaks exactly the constraint it is
for (`also` lists what the API server must report besides, where one value cannot help
breaking two). Messages are the API server's (Kubernetes 1.33) formats; a pattern is quoted
from the generated CRD.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from runbook_operator.api import crdgen
from runbook_operator.api.common import API_VERSION
from runbook_operator.api.registry import KINDS

#: What the API server adds when a schema error stopped it from running the CEL rules.
RULES_NOT_CHECKED = (
    "<nil>",
    'Invalid value: "null": some validation rules were not checked because the object was '
    "invalid; correct the existing errors to complete validation",
)
REMOVE = object()
#: Who signs the base Incident's acknowledgement and note; the e2e test puts its own username
#: in its place (the admission policy accepts no other).
SIGNER = "alice"


@dataclass(frozen=True)
class InvalidSpec:
    """An object that breaks one constraint, and what the API server says about it."""

    kind: str
    #: Where the constraint sits in the CRD schema: `[]` for list items, `.*` for map values,
    #: "" for the object's root.
    schema: str
    #: The schema keyword (`pattern`, `maxLength`, `required`, `x-kubernetes-list-type`...),
    #: or `rule` for a CEL rule.
    check: str
    body: dict[str, Any]
    field: str
    message: str
    also: tuple[tuple[str, str], ...] = ()
    #: For a transition rule (one that reads `oldSelf`): the stored object `body` updates.
    before: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        detail = f":{self.message[:48]}" if self.check == "rule" else ""
        return f"{self.kind}:{self.field}:{self.check}{detail}"

    def causes(self) -> set[tuple[str, str]]:
        """(field, message) of every error the API server reports for this object."""
        return {(self.field, self.message), *self.also}


# The API server's messages (k8s.io/apimachinery field errors and kube-openapi validation).


def required(detail: str = "") -> str:
    return f"Required value: {detail}" if detail else "Required value"


def forbidden(detail: str) -> str:
    return f"Forbidden: {detail}"


def rule_failed(value_type: str, detail: str) -> str:
    """A CEL rule without a reason: the value is shown by its type."""
    return f'Invalid value: "{value_type}": {detail}'


def too_long(limit: int) -> str:
    return f"Too long: may not be more than {limit} bytes"


def too_many(count: int, limit: int) -> str:
    return f"Too many: {count}: must have at most {limit} items"


def too_few(field: str, count: int, limit: int) -> str:
    return f"Invalid value: {count}: {field} in body should have at least {limit} items"


def too_short(field: str, value: str, limit: int) -> str:
    return f'Invalid value: "{value}": {field} in body should be at least {limit} chars long'


def below(field: str, value: float, limit: float) -> str:
    return f"Invalid value: {value}: {field} in body should be greater than or equal to {limit}"


def above(field: str, value: float, limit: float) -> str:
    return f"Invalid value: {value}: {field} in body should be less than or equal to {limit}"


def unsupported(value: str, allowed: list[str]) -> str:
    listed = ", ".join(f'"{a}"' for a in allowed)
    return f'Unsupported value: "{value}": supported values: {listed}'


def duplicate(key: str) -> str:
    return f'Duplicate value: map[string]interface {{}}{{"name":"{key}"}}'


def duplicate_value(value: str | int) -> str:
    """A value given twice in a set list (strings quoted, numbers not)."""
    return f"Duplicate value: {json.dumps(value)}"


def not_of_format(field: str, value: str, format_: str) -> str:
    return f'Invalid value: "{value}": {field} in body must be of type {format_}: "{value}"'


@cache
def _schemas() -> dict[str, dict[str, Any]]:
    return {model.info.kind: crdgen.crd(model)["spec"]["versions"][0]["schema"][
        "openAPIV3Schema"] for model in KINDS}


def schema_node(kind: str, schema: str) -> dict[str, Any]:
    """The node at `schema` in the generated CRD of `kind`."""
    node = _schemas()[kind]
    for step in re.findall(r"\[\]|[^.\[\]]+", schema):
        if step == "[]":
            node = node["items"]
        elif step == "*":
            node = node["additionalProperties"]
        else:
            node = node["properties"][step]
    return node


def mismatch(kind: str, schema: str, field: str, value: str) -> str:
    pattern = schema_node(kind, schema)["pattern"]
    return f"Invalid value: \"{value}\": {field} in body should match '{pattern}'"


# Building the objects.


def _steps(path: str) -> list[str | int]:
    return [int(s[1:-1]) if s.startswith("[") else s for s in re.findall(r"\[\d+\]|[^.\[\]]+",
                                                                         path)]


def changed(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of `base` with the values at dotted paths (`spec.a[0].b`) set, or removed where
    the value is REMOVE; missing objects on the way are created."""
    body = copy.deepcopy(base)
    for path, value in changes.items():
        *parents, last = _steps(path)
        node: Any = body
        for step in parents:
            node = node[step] if isinstance(step, int) else node.setdefault(step, {})
        if value is REMOVE:
            del node[last]
        else:
            node[last] = value
    return body


def resource(kind: str, spec: dict[str, Any], name: str = "invalid") -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}


def schema_of(field: str) -> str:
    return re.sub(r"\[\d+\]", "[]", field)


class Cases:
    """Cases of one kind, each a change to one of its valid base objects."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.cases: list[InvalidSpec] = []
        self.bases: dict[str, dict[str, Any]] = {}

    def add(self, base: dict[str, Any], check: str, changes: dict[str, Any], field: str,
            message: str, schema: str | None = None,
            also: tuple[tuple[str, str], ...] = (), update: bool = False) -> None:
        self.bases.setdefault(json.dumps(base, sort_keys=True), base)
        self.cases.append(InvalidSpec(
            self.kind, schema_of(field) if schema is None else schema, check,
            changed(base, changes), field, message, also, base if update else None))

    def missing(self, base: dict[str, Any], field: str) -> None:
        self.add(base, "required", {field: REMOVE}, field, required())

    def pattern(self, base: dict[str, Any], field: str, value: str,
                also: tuple[tuple[str, str], ...] = ()) -> None:
        self.add(base, "pattern", {field: value}, field,
                 mismatch(self.kind, schema_of(field), field, value), also=also)

    def longer(self, base: dict[str, Any], field: str, limit: int, unit: str = "a",
               prefix: str = "", suffix: str = "", schema: str | None = None) -> None:
        """A value over `limit`, made of `unit`s so that it still matches the pattern."""
        units = -(-(limit + 1 - len(prefix) - len(suffix)) // len(unit))
        value = prefix + unit * units + suffix
        self.add(base, "maxLength", {field: value}, field, too_long(limit), schema=schema)

    def shorter(self, base: dict[str, Any], field: str, limit: int) -> None:
        self.add(base, "minLength", {field: ""}, field, too_short(field, "", limit))

    def under(self, base: dict[str, Any], field: str, limit: float, value: float,
              also: tuple[tuple[str, str], ...] = ()) -> None:
        self.add(base, "minimum", {field: value}, field, below(field, value, limit), also=also)

    def over(self, base: dict[str, Any], field: str, limit: float, value: float,
             also: tuple[tuple[str, str], ...] = ()) -> None:
        self.add(base, "maximum", {field: value}, field, above(field, value, limit), also=also)

    def range(self, base: dict[str, Any], field: str, low: int, high: int) -> None:
        self.under(base, field, low, low - 1)
        self.over(base, field, high, high + 1)

    def choice(self, base: dict[str, Any], field: str, value: str) -> None:
        allowed = schema_node(self.kind, schema_of(field))["enum"]
        self.add(base, "enum", {field: value}, field, unsupported(value, allowed))

    def items(self, base: dict[str, Any], field: str, limit: int, item: Any) -> None:
        """`limit + 1` items; `item(i)` makes the i-th (names must differ in a list-map)."""
        values = [item(i) for i in range(limit + 1)]
        self.add(base, "maxItems", {field: values}, field, too_many(limit + 1, limit))

    def entries(self, base: dict[str, Any], field: str, limit: int) -> None:
        values = {f"k{i}": "v" for i in range(limit + 1)}
        self.add(base, "maxProperties", {field: values}, field, too_many(limit + 1, limit))

    def no_items(self, base: dict[str, Any], field: str) -> None:
        self.add(base, "minItems", {field: []}, field, too_few(field, 0, 1))

    def repeated(self, base: dict[str, Any], field: str, value: str | int) -> None:
        """One value twice in a set list."""
        self.add(base, "x-kubernetes-list-type", {field: [value, value]}, f"{field}[1]",
                 duplicate_value(value), schema=schema_of(field))

    def malformed(self, base: dict[str, Any], field: str, value: str) -> None:
        """A string that is not of the field's format (date-time)."""
        format_ = schema_node(self.kind, schema_of(field))["format"]
        self.add(base, "format", {field: value}, field, not_of_format(field, value, format_))

    def twice(self, base: dict[str, Any], field: str, item: dict[str, Any]) -> None:
        """Two items of one name in a list-map."""
        self.add(base, "x-kubernetes-list-type", {field: [item, item]}, f"{field}[1]",
                 duplicate(item["name"]), schema=schema_of(field))

    def rule(self, base: dict[str, Any], at: str, changes: dict[str, Any], field: str,
             message: str, also: tuple[tuple[str, str], ...] = ()) -> None:
        """A CEL rule on the node `at`, reported at `field`."""
        self.add(base, "rule", changes, field, message, schema=schema_of(at), also=also)

    def transition(self, base: dict[str, Any], at: str, changes: dict[str, Any], field: str,
                   message: str) -> None:
        """A transition rule on the node `at`: `base` is stored, then updated by `changes`."""
        self.add(base, "rule", changes, field, message, schema=schema_of(at), update=True)

    def policy_ref(self, base: dict[str, Any], at: str) -> None:
        """A PolicyRef at `at` (present in `base`)."""
        self.missing(base, f"{at}.name")
        self.pattern(base, f"{at}.name", "Team_Ladder")
        self.longer(base, f"{at}.name", 253)

    def incident_trigger(self, base: dict[str, Any], at: str) -> None:
        """An IncidentTrigger at `at` (present in `base`, with an escalationPolicyRef)."""
        self.missing(base, f"{at}.severity")
        self.choice(base, f"{at}.severity", "critical")
        self.policy_ref(base, f"{at}.escalationPolicyRef")

    def duration(self, base: dict[str, Any], field: str) -> None:
        self.pattern(base, field, "5 minutes")
        self.longer(base, field, 64, unit="1s")

    def go_duration(self, base: dict[str, Any], field: str,
                    also: tuple[tuple[str, str], ...] = ()) -> None:
        """A duration CEL can read (api.common.GoDuration); `also`: what the rules that read
        it report when it cannot be read."""
        self.pattern(base, field, "1d", also=also)
        self.longer(base, field, 32, unit="1s")

    def time_zone(self, base: dict[str, Any], field: str) -> None:
        """An api.schedule.TimeZone at `field`."""
        unknown = ("unknown time zone {} evaluating rule: must be an IANA time zone name "
                   "such as Europe/Berlin or UTC")
        self.pattern(base, field, "Europe Berlin", also=(
            (field, rule_failed("string", unknown.format("Europe Berlin"))),))
        self.longer(base, field, 64, unit="A")
        self.rule(base, field, {field: "Mars/Olympus_Mons"}, field,
                  rule_failed("string", unknown.format("Mars/Olympus_Mons")))

    def secret_ref(self, base: dict[str, Any], at: str) -> None:
        """A SecretKeyRef at `at` (present in `base`)."""
        self.missing(base, f"{at}.name")
        self.missing(base, f"{at}.key")
        self.pattern(base, f"{at}.name", "Bad_Name")
        self.longer(base, f"{at}.name", 253)
        self.pattern(base, f"{at}.key", "bad key")
        self.longer(base, f"{at}.key", 253, unit="k")


INCIDENT_TRIGGER = {"severity": "P2", "escalationPolicyRef": {"name": "team-ladder"},
                    "resolveWhenRecovered": True}


def _backup_policies() -> Cases:
    c = Cases("BackupPolicy")
    command = resource(c.kind, {
        "schedule": "0 2 * * *",
        "source": {"command": {"image": "busybox:1.36", "command": ["true"],
                               "env": [{"name": "MODE", "value": "full"},
                                       {"name": "TOKEN",
                                        "secretKeyRef": {"name": "tok", "key": "t"}}]}}})
    database = {"host": "orders-db", "database": "orders", "user": "backup",
                "passwordSecretRef": {"name": "db", "key": "password"}}
    stored = resource(c.kind, {
        "schedule": "0 2 * * *",
        "source": {"postgres": database},
        "destination": {"pvc": {"claimName": "backups"}},
        "encryption": {"keySecretRef": {"name": "backup-key", "key": "key"}},
        "retention": {"keepDaily": 7},
        "restoreTest": {"schedule": "0 6 * * 0"},
    })
    to_s3 = changed(stored, {"spec.destination": {"s3": {
        "bucket": "backups", "credentialsSecretRef": {"name": "s3"}}}})

    c.rule(command, "", {"metadata.name": "a" * 45}, "metadata.name", rule_failed(
        "object", "name must be at most 44 characters (CronJob names add '-restore')"))
    c.missing(command, "spec")
    c.missing(command, "spec.schedule")
    c.missing(command, "spec.source")
    c.rule(stored, "spec", {"spec.destination": REMOVE, "spec.retention": REMOVE,
                            "spec.restoreTest": REMOVE}, "spec.destination", required(
        "without a destination the backup is source.command run in its own image: "
        "set source.command.image, or set a destination"))
    c.rule(stored, "spec", {"spec.source": command["spec"]["source"],
                            "spec.restoreTest": REMOVE},
           "spec.source.command.image", forbidden(
               "with a destination, source.command runs in the runner image and its stdout "
               "is the backup: remove source.command.image"))
    c.rule(stored, "spec", {"spec.encryption": REMOVE}, "spec.encryption", required(
        "with a destination, set encryption (keySecretRef, or mode: none explicitly)"))
    c.rule(stored, "spec", {"spec.source": {"command": {"command": ["pg_dumpall"]}}},
           "spec.restoreTest", forbidden(
               "restoreTest needs a source it can restore: postgres, mysql or files"))
    c.rule(command, "spec", {"spec.retention": {"keepLast": 3}}, "spec.destination",
           required("retention and restoreTest need a destination"))

    c.pattern(command, "spec.schedule", "every day at two")
    c.longer(command, "spec.schedule", 256, unit=",0", prefix="0", suffix=" * * * *")
    c.time_zone(command, "spec.timeZone")

    c.rule(command, "spec.source", {"spec.source.files": {"claimName": "data"}}, "spec.source",
           rule_failed("object", "set exactly one source: postgres, mysql, files or command"))
    for engine in ("postgres", "mysql"):
        base = changed(stored, {"spec.source": {engine: database}})
        at = f"spec.source.{engine}"
        for name in ("host", "database", "user", "passwordSecretRef"):
            c.missing(base, f"{at}.{name}")
        c.pattern(base, f"{at}.host", "-orders-db")
        c.longer(base, f"{at}.host", 253)
        c.range(base, f"{at}.port", 1, 65535)
        c.pattern(base, f"{at}.database", "1orders")
        c.longer(base, f"{at}.database", 63, unit="d")
        c.shorter(base, f"{at}.user", 1)
        c.longer(base, f"{at}.user", 63, unit="u")
        c.secret_ref(base, f"{at}.passwordSecretRef")
        c.items(base, f"{at}.extraArgs", 32, lambda i: f"--exclude-table=t{i}")
    files = changed(stored, {"spec.source": {"files": {"claimName": "data", "path": "/srv"}}})
    c.missing(files, "spec.source.files.claimName")
    c.pattern(files, "spec.source.files.claimName", "Data_Volume")
    c.longer(files, "spec.source.files.claimName", 253)
    c.pattern(files, "spec.source.files.path", "srv/relative")
    c.longer(files, "spec.source.files.path", 1024, prefix="/")
    c.items(files, "spec.source.files.exclude", 64, lambda i: f"*.tmp{i}")
    at = "spec.source.command"
    c.missing(command, f"{at}.command")
    c.shorter(command, f"{at}.image", 1)
    c.longer(command, f"{at}.image", 512, unit="i")
    c.no_items(command, f"{at}.command")
    c.items(command, f"{at}.command", 64, lambda i: f"arg{i}")
    c.items(command, f"{at}.args", 256, lambda i: f"arg{i}")
    c.items(command, f"{at}.env", 64, lambda i: {"name": f"V{i}", "value": "x"})
    c.twice(command, f"{at}.env", {"name": "MODE", "value": "full"})
    c.missing(command, f"{at}.env[0].name")
    c.rule(command, f"{at}.env[0]", {f"{at}.env[0].secretKeyRef": {"name": "s", "key": "k"}},
           f"{at}.env[0]", rule_failed("object", "set exactly one of value and secretKeyRef"))
    c.pattern(command, f"{at}.env[0].name", "1MODE")
    c.longer(command, f"{at}.env[0].name", 128, unit="E")
    c.secret_ref(command, f"{at}.env[1].secretKeyRef")

    c.duration(command, "spec.startingDeadline")
    c.duration(command, "spec.timeout")
    c.range(command, "spec.backoffLimit", 0, 10)
    c.range(command, "spec.successfulJobsHistoryLimit", 0, 100)
    c.range(command, "spec.failedJobsHistoryLimit", 0, 100)
    c.pattern(command, "spec.serviceAccountName", "Backup_Runner")
    c.longer(command, "spec.serviceAccountName", 253)

    c.rule(stored, "spec.destination", {"spec.destination.s3": to_s3["spec"]["destination"][
        "s3"]}, "spec.destination", rule_failed("object", "set exactly one destination: pvc "
                                                "or s3"))
    c.missing(stored, "spec.destination.pvc.claimName")
    c.pattern(stored, "spec.destination.pvc.claimName", "Backup_Volume")
    c.longer(stored, "spec.destination.pvc.claimName", 253)
    c.pattern(stored, "spec.destination.pvc.path", "/absolute")
    c.longer(stored, "spec.destination.pvc.path", 512)
    at = "spec.destination.s3"
    c.missing(to_s3, f"{at}.bucket")
    c.missing(to_s3, f"{at}.credentialsSecretRef")
    c.pattern(to_s3, f"{at}.endpoint", "minio:9000")
    c.longer(to_s3, f"{at}.endpoint", 512, prefix="http://")
    c.longer(to_s3, f"{at}.region", 64, unit="r")
    c.pattern(to_s3, f"{at}.bucket", "Backup_Bucket")
    c.pattern(to_s3, f"{at}.prefix", "orders db")
    c.longer(to_s3, f"{at}.prefix", 512, unit="p")
    c.missing(to_s3, f"{at}.credentialsSecretRef.name")
    c.pattern(to_s3, f"{at}.credentialsSecretRef.name", "S3_Credentials")
    c.longer(to_s3, f"{at}.credentialsSecretRef.name", 253)
    for key in ("accessKeyIdKey", "secretAccessKeyKey"):
        c.pattern(to_s3, f"{at}.credentialsSecretRef.{key}", "bad key")
        c.longer(to_s3, f"{at}.credentialsSecretRef.{key}", 253, unit="k")

    c.choice(stored, "spec.compression", "lz4")
    c.rule(stored, "spec.encryption", {"spec.encryption.keySecretRef": REMOVE},
           "spec.encryption.keySecretRef",
           required("aes-256-gcm needs keySecretRef (or set mode: none explicitly)"))
    c.choice(stored, "spec.encryption.mode", "aes-128-cbc")
    c.secret_ref(stored, "spec.encryption.keySecretRef")
    for name, high in (("keepLast", 1000), ("keepDaily", 1000), ("keepWeekly", 1000),
                       ("keepMonthly", 1000), ("keepYearly", 100)):
        c.range(stored, f"spec.retention.{name}", 0, high)
    c.duration(stored, "spec.retention.maxAge")
    c.missing(stored, "spec.restoreTest.schedule")
    c.pattern(stored, "spec.restoreTest.schedule", "weekly")
    c.longer(stored, "spec.restoreTest.schedule", 256, unit=",0", prefix="0",
             suffix=" * * * *")
    c.longer(stored, "spec.restoreTest.checkQuery", 4096, unit="q")
    c.duration(stored, "spec.restoreTest.timeout")
    c.duration(stored, "spec.rpo")
    c.items(stored, "spec.notifications.channels", 16, lambda i: f"channel-{i}")
    c.incident_trigger(changed(command, {"spec.incident": INCIDENT_TRIGGER}), "spec.incident")
    return c


def _alert_rules() -> Cases:
    c = Cases("AlertRule")
    channel = {"name": "oncall"}
    threshold = resource(c.kind, {
        "query": "http_errors_ratio", "condition": {"operator": "gt", "threshold": 0.05},
        "labels": {"team": "shop"}, "annotations": {"summary": "5xx"},
        "channels": [channel],
        "escalateAfter": [{"after": "15m", "channels": [{"name": "lead"}], "severity": "high"}],
        "actions": {"scaleDeployment": {"name": "web", "by": 2, "min": 1, "max": 10},
                    "restartDeployment": {"name": "web"},
                    "webhook": {"urlSecretRef": {"name": "remediation", "key": "url"}}},
        "prometheus": {"url": "http://prometheus:9090",
                       "authSecretRef": {"name": "prometheus", "key": "token"}},
    })
    anomaly = resource(c.kind, {"anomaly": {"queries": [{"name": "latency", "query": "p95"},
                                                        {"name": "errors", "query": "errs"}]}})
    mode = "set either query and condition, or anomaly (not both)"

    c.missing(threshold, "spec")
    c.rule(threshold, "spec", {"spec.query": REMOVE}, "spec.query", required(mode))
    c.rule(threshold, "spec", {"spec.condition": REMOVE}, "spec.condition", required(mode))
    c.rule(anomaly, "spec", {"spec.query": "up"}, "spec.query", forbidden(mode))
    c.rule(anomaly, "spec", {"spec.condition": {"operator": "gt", "threshold": 1}},
           "spec.condition", forbidden(mode))
    c.shorter(threshold, "spec.query", 1)
    c.longer(threshold, "spec.query", 16384, unit="x")
    c.missing(threshold, "spec.condition.operator")
    c.missing(threshold, "spec.condition.threshold")
    c.choice(threshold, "spec.condition.operator", "above")
    c.duration(threshold, "spec.for")
    c.duration(threshold, "spec.keepFiringFor")
    c.pattern(threshold, "spec.interval", "1.5m")  # a Go duration CEL reads, but not ours
    c.longer(threshold, "spec.interval", 32, unit="1m")
    c.rule(threshold, "spec.interval", {"spec.interval": "4s"}, "spec.interval",
           rule_failed("string", "interval must be at least 5s"))
    c.choice(threshold, "spec.severity", "major")
    c.entries(threshold, "spec.labels", 32)
    c.rule(threshold, "spec.labels", {"spec.labels": {"bad-name": "x"}}, "spec.labels",
           rule_failed("object", "label names must match [a-zA-Z_][a-zA-Z0-9_]*"))
    c.rule(threshold, "spec.labels", {"spec.labels": {"severity": "page"}}, "spec.labels",
           rule_failed("object", "labels may not set alertname, namespace, kind, severity: "
                       "the operator sets them (use spec.severity for the severity)"))
    c.longer(threshold, "spec.labels.team", 1024, unit="v", schema="spec.labels.*")
    c.entries(threshold, "spec.annotations", 32)
    c.longer(threshold, "spec.annotations.summary", 4096, unit="v", schema="spec.annotations.*")
    c.choice(threshold, "spec.noDataState", "NoData")
    c.choice(threshold, "spec.errorState", "OK")

    for at, limit in (("spec.channels", 8), ("spec.escalateAfter[0].channels", 4)):
        c.items(threshold, at, limit, lambda i: {"name": f"channel-{i}"})
        c.twice(threshold, at, {"name": "oncall"})
        c.missing(threshold, f"{at}[0].name")
        c.pattern(threshold, f"{at}[0].name", "On_Call")
        c.longer(threshold, f"{at}[0].name", 253)
        c.duration(threshold, f"{at}[0].repeatInterval")
    c.items(threshold, "spec.escalateAfter", 4,
            lambda i: {"after": f"{i + 1}m", "severity": "critical"})
    c.missing(threshold, "spec.escalateAfter[0].after")
    c.rule(threshold, "spec.escalateAfter[0]", {"spec.escalateAfter": [{"after": "15m"}]},
           "spec.escalateAfter[0]",
           rule_failed("object", "an escalation level adds channels or sets a severity"))
    c.duration(threshold, "spec.escalateAfter[0].after")
    c.choice(threshold, "spec.escalateAfter[0].severity", "page")

    c.rule(threshold, "spec.actions", {"spec.actions": {"cooldown": "5m"}}, "spec.actions",
           rule_failed("object",
                       "set at least one of scaleDeployment, restartDeployment, webhook"))
    at = "spec.actions.scaleDeployment"
    for name in ("name", "by", "max"):
        c.missing(threshold, f"{at}.{name}")
    c.rule(threshold, at, {f"{at}.min": 11}, f"{at}.min",
           rule_failed("object", "min must not exceed max"))
    c.rule(threshold, at, {f"{at}.by": 0}, f"{at}.by", rule_failed("object", "by must not be 0"))
    c.pattern(threshold, f"{at}.name", "Web_Frontend")
    c.longer(threshold, f"{at}.name", 253)
    c.range(threshold, f"{at}.by", -100, 100)
    c.under(threshold, f"{at}.min", 0, -1)
    c.over(threshold, f"{at}.min", 10000, 10001, also=((
        f"{at}.min", rule_failed("object", "min must not exceed max")),))
    c.under(threshold, f"{at}.max", 0, -1, also=((
        f"{at}.min", rule_failed("object", "min must not exceed max")),))
    c.over(threshold, f"{at}.max", 10000, 10001)
    c.missing(threshold, "spec.actions.restartDeployment.name")
    c.pattern(threshold, "spec.actions.restartDeployment.name", "Web_Frontend")
    c.longer(threshold, "spec.actions.restartDeployment.name", 253)
    c.missing(threshold, "spec.actions.webhook.urlSecretRef")
    c.secret_ref(threshold, "spec.actions.webhook.urlSecretRef")
    c.duration(threshold, "spec.actions.cooldown")
    c.pattern(threshold, "spec.prometheus.url", "prometheus:9090")
    c.longer(threshold, "spec.prometheus.url", 2048, prefix="http://prometheus/")
    c.pattern(threshold, "spec.prometheus.externalURL", "prometheus.example.com")
    c.longer(threshold, "spec.prometheus.externalURL", 2048, prefix="https://prometheus/")
    c.secret_ref(threshold, "spec.prometheus.authSecretRef")

    at = "spec.anomaly"
    c.missing(anomaly, f"{at}.queries")
    c.no_items(anomaly, f"{at}.queries")
    c.items(anomaly, f"{at}.queries", 8, lambda i: {"name": f"q{i}", "query": "up"})
    c.twice(anomaly, f"{at}.queries", {"name": "latency", "query": "p95"})
    c.missing(anomaly, f"{at}.queries[0].name")
    c.missing(anomaly, f"{at}.queries[0].query")
    c.pattern(anomaly, f"{at}.queries[0].name", "p95-latency")
    c.longer(anomaly, f"{at}.queries[0].name", 63, unit="q")
    c.shorter(anomaly, f"{at}.queries[0].query", 1)
    c.longer(anomaly, f"{at}.queries[0].query", 16384, unit="x")
    for name in ("trainingWindow", "step", "retrainInterval", "for"):
        c.duration(anomaly, f"{at}.{name}")
    c.range(anomaly, f"{at}.minSamples", 16, 100000)
    c.over(anomaly, f"{at}.contamination", 0.5, 0.6)
    c.rule(anomaly, f"{at}.contamination", {f"{at}.contamination": 0.0}, f"{at}.contamination",
           rule_failed("number", "contamination must be greater than 0"))
    c.under(anomaly, f"{at}.scoreThreshold", 0, -0.5)
    c.over(anomaly, f"{at}.scoreThreshold", 1, 1.5)

    laddered = changed(threshold, {"spec.escalateAfter": REMOVE,
                                   "spec.escalationPolicyRef": {"name": "team-ladder"},
                                   "spec.incident": INCIDENT_TRIGGER})
    c.rule(laddered, "spec", {"spec.escalateAfter": threshold["spec"]["escalateAfter"]},
           "spec.escalationPolicyRef",
           forbidden("set escalateAfter or escalationPolicyRef, not both"))
    c.policy_ref(laddered, "spec.escalationPolicyRef")
    c.incident_trigger(laddered, "spec.incident")
    return c


def _notification_channels() -> Cases:
    c = Cases("NotificationChannel")
    slack = resource(c.kind, {"slack": {"webhookURLSecretRef": {"name": "slack", "key": "url"}},
                              "rateLimit": {"requests": 10}})
    pagerduty = resource(c.kind, {"pagerduty": {
        "routingKeySecretRef": {"name": "pd", "key": "routing-key"}}})
    webhook = resource(c.kind, {"webhook": {
        "urlSecretRef": {"name": "hook", "key": "url"},
        "headers": [{"name": "Authorization", "secretKeyRef": {"name": "hook", "key": "token"}}],
    }})
    email = resource(c.kind, {"email": {
        "smtpHost": "smtp.example.com", "from": "ops@example.com", "to": ["oncall@example.com"],
        "usernameSecretRef": {"name": "smtp", "key": "user"},
        "passwordSecretRef": {"name": "smtp", "key": "password"},
    }})

    c.missing(slack, "spec")
    c.rule(slack, "spec", {"spec.pagerduty": pagerduty["spec"]["pagerduty"]}, "spec",
           rule_failed("object", "set exactly one of slack, pagerduty, webhook, email"))
    c.missing(slack, "spec.slack.webhookURLSecretRef")
    c.secret_ref(slack, "spec.slack.webhookURLSecretRef")
    c.longer(slack, "spec.slack.channel", 80, unit="c", prefix="#")
    c.longer(slack, "spec.slack.username", 80, unit="u")
    c.missing(pagerduty, "spec.pagerduty.routingKeySecretRef")
    c.secret_ref(pagerduty, "spec.pagerduty.routingKeySecretRef")
    c.pattern(pagerduty, "spec.pagerduty.endpoint", "events.pagerduty.com/v2/enqueue")
    c.longer(pagerduty, "spec.pagerduty.endpoint", 2048, prefix="https://events.example/")
    for severity in ("critical", "high", "medium", "warning", "low", "info"):
        c.choice(pagerduty, f"spec.pagerduty.severityMapping.{severity}", "sev1")

    at = "spec.webhook"
    c.rule(webhook, at, {f"{at}.url": "https://example.com/hook"}, at,
           rule_failed("object", "set exactly one of url and urlSecretRef"))
    c.secret_ref(webhook, f"{at}.urlSecretRef")
    public = changed(webhook, {f"{at}.urlSecretRef": REMOVE, f"{at}.url": "https://x.example"})
    c.pattern(public, f"{at}.url", "example.com/hook")
    c.longer(public, f"{at}.url", 2048, prefix="https://example.com/")
    c.items(webhook, f"{at}.headers", 16,
            lambda i: {"name": f"X-H{i}", "secretKeyRef": {"name": "hook", "key": "token"}})
    c.twice(webhook, f"{at}.headers", webhook["spec"]["webhook"]["headers"][0])
    c.missing(webhook, f"{at}.headers[0].name")
    c.missing(webhook, f"{at}.headers[0].secretKeyRef")
    c.pattern(webhook, f"{at}.headers[0].name", "Bad Header")
    c.longer(webhook, f"{at}.headers[0].name", 128, unit="X")
    c.secret_ref(webhook, f"{at}.headers[0].secretKeyRef")

    at = "spec.email"
    pairs = "set both usernameSecretRef and passwordSecretRef, or neither"
    for name in ("smtpHost", "from", "to"):
        c.missing(email, f"{at}.{name}")
    c.rule(email, at, {f"{at}.passwordSecretRef": REMOVE}, f"{at}.passwordSecretRef",
           required(pairs))
    c.rule(email, at, {f"{at}.usernameSecretRef": REMOVE}, f"{at}.usernameSecretRef",
           required(pairs))
    c.pattern(email, f"{at}.smtpHost", "smtp example")
    c.longer(email, f"{at}.smtpHost", 253, unit="s")
    c.range(email, f"{at}.smtpPort", 1, 65535)
    c.pattern(email, f"{at}.from", "ops at example.com")
    c.longer(email, f"{at}.from", 254, unit="o", suffix="@example.com")
    c.no_items(email, f"{at}.to")
    c.items(email, f"{at}.to", 50, lambda i: f"person{i}@example.com")
    c.pattern(email, f"{at}.to[0]", "oncall")
    c.longer(email, f"{at}.to[0]", 254, unit="o", suffix="@example.com")
    c.secret_ref(email, f"{at}.usernameSecretRef")
    c.secret_ref(email, f"{at}.passwordSecretRef")

    c.range(slack, "spec.retry.maxAttempts", 1, 20)
    c.duration(slack, "spec.retry.initialBackoff")
    c.duration(slack, "spec.retry.maxBackoff")
    c.duration(slack, "spec.timeout")
    c.missing(slack, "spec.rateLimit.requests")
    c.range(slack, "spec.rateLimit.requests", 1, 10000)
    c.duration(slack, "spec.rateLimit.per")
    return c


def _escalation_policies() -> Cases:
    c = Cases("EscalationPolicy")
    unreadable = ("type conversion error from 'string' to 'google.protobuf.Duration' "
                  "evaluating rule: {}")
    increasing = "levels must have strictly increasing after"
    unknown_rotation = "a level's rotation must name one of spec.rotations"
    from_level = "repeat.fromLevel must name one of the levels"
    rotation = {"name": "primary", "turn": "168h", "start": "2026-01-05T09:00:00Z",
                "handoffTime": "09:00", "timeZone": "Europe/Berlin",
                "members": [{"name": "alice", "channel": "alice-pager"}, {"name": "bob"}]}
    policy = resource(c.kind, {
        "levels": [{"after": "0s", "rotation": "primary", "channels": ["team"]},
                   {"after": "30m", "channels": ["sre"]}],
        "repeat": {"count": 2, "every": "1h", "fromLevel": 2},
        "ackTimeout": "30m",
        "routes": [{"severities": ["P2", "P3"], "channels": ["team"], "escalate": False}],
        "rotations": [rotation],
    })

    c.missing(policy, "spec")
    c.missing(policy, "spec.levels")
    c.no_items(policy, "spec.levels")
    c.items(policy, "spec.levels", 8, lambda i: {"after": f"{i}m", "channels": ["team"]})
    c.rule(policy, "spec", {"spec.levels[0].rotation": "secondary"}, "spec.levels",
           rule_failed("object", unknown_rotation))
    c.rule(policy, "spec", {"spec.levels[1].after": "0s"}, "spec.levels",
           rule_failed("object", increasing))
    c.rule(policy, "spec", {"spec.repeat.every": "30m"}, "spec.repeat.every",
           rule_failed("object", "repeat.every must be longer than the last level's after"))
    c.rule(policy, "spec", {"spec.repeat.fromLevel": 3}, "spec.repeat.fromLevel",
           rule_failed("object", from_level))
    c.rule(policy, "spec", {"spec.routes": [
        {"severities": ["P2"], "channels": ["team"], "escalate": False},
        {"severities": ["P2", "P3"], "channels": ["team"]}]}, "spec.routes",
        rule_failed("object", "a severity may be routed by one route only"))

    at = "spec.levels[0]"
    c.rule(policy, at, {at: {"after": "0s"}}, f"{at}.channels",
           required("a level pages channels or a rotation"))
    c.missing(policy, f"{at}.after")
    c.go_duration(policy, f"{at}.after", also=(
        ("spec", rule_failed("object", unreadable.format(increasing))),))
    c.items(policy, f"{at}.channels", 8, lambda i: f"channel-{i}")
    c.repeated(policy, f"{at}.channels", "team")
    c.pattern(policy, f"{at}.channels[0]", "Team_Chat")
    c.longer(policy, f"{at}.channels[0]", 253)
    c.pattern(policy, f"{at}.rotation", "Primary", also=(
        ("spec.levels", rule_failed("object", unknown_rotation)),))
    c.longer(policy, f"{at}.rotation", 253)

    c.missing(policy, "spec.repeat.count")
    c.range(policy, "spec.repeat.count", 1, 9)
    c.missing(policy, "spec.repeat.every")
    c.go_duration(policy, "spec.repeat.every", also=(("spec", rule_failed(
        "object", unreadable.format("repeat.every must be longer than the last level's after"))),))
    c.under(policy, "spec.repeat.fromLevel", 1, 0)
    c.over(policy, "spec.repeat.fromLevel", 8, 9, also=(
        ("spec.repeat.fromLevel", rule_failed("object", from_level)),))
    c.go_duration(policy, "spec.ackTimeout")

    c.items(policy, "spec.routes", 4,
            lambda i: {"severities": [f"P{i % 4}"], "channels": ["team"]})
    at = "spec.routes[0]"
    c.rule(policy, at, {f"{at}.channels": []}, f"{at}.channels",
           required("a route that does not escalate needs channels (or nobody would be told)"))
    c.missing(policy, f"{at}.severities")
    c.no_items(policy, f"{at}.severities")
    c.add(policy, "maxItems", {f"{at}.severities": ["P0", "P1", "P2", "P3", "P0"]},
          f"{at}.severities", too_many(5, 4),
          also=((f"{at}.severities[4]", duplicate_value("P0")),))
    c.repeated(policy, f"{at}.severities", "P2")
    c.choice(policy, f"{at}.severities[0]", "P4")
    c.items(policy, f"{at}.channels", 8, lambda i: f"channel-{i}")
    c.repeated(policy, f"{at}.channels", "team")
    c.pattern(policy, f"{at}.channels[0]", "Team_Chat")
    c.longer(policy, f"{at}.channels[0]", 253)

    c.items(policy, "spec.rotations", 8, lambda i: {**rotation, "name": f"rotation-{i}"}
            if i else rotation)
    c.twice(policy, "spec.rotations", rotation)
    at = "spec.rotations[0]"
    c.rule(policy, at, {f"{at}.turn": "12h"}, f"{at}.handoffTime",
           forbidden("handoffTime needs a turn of whole days (24h, 168h, ...)"))
    for name in ("name", "members", "turn", "start"):
        c.missing(policy, f"{at}.{name}")
    c.pattern(policy, f"{at}.name", "Primary", also=(
        ("spec.levels", rule_failed("object", unknown_rotation)),))
    c.longer(policy, f"{at}.name", 253)
    c.no_items(policy, f"{at}.members")
    c.items(policy, f"{at}.members", 50, lambda i: {"name": f"person-{i}"})
    c.twice(policy, f"{at}.members", {"name": "alice"})
    c.missing(policy, f"{at}.members[0].name")
    c.shorter(policy, f"{at}.members[0].name", 1)
    c.longer(policy, f"{at}.members[0].name", 253)
    c.pattern(policy, f"{at}.members[0].channel", "Alice_Pager")
    c.longer(policy, f"{at}.members[0].channel", 253)
    c.go_duration(policy, f"{at}.turn", also=(
        (at, rule_failed("object", unreadable.format(
            "handoffTime needs a turn of whole days (24h, 168h, ...)"))),
        (f"{at}.turn", rule_failed("string", unreadable.format("turn must be at least 1m")))))
    c.rule(policy, f"{at}.turn", {f"{at}.turn": "30s", f"{at}.handoffTime": REMOVE},
           f"{at}.turn", rule_failed("string", "turn must be at least 1m"))
    c.malformed(policy, f"{at}.start", "next monday")
    c.pattern(policy, f"{at}.handoffTime", "9am")
    c.time_zone(policy, f"{at}.timeZone")
    return c


def _incidents() -> Cases:
    c = Cases("Incident")
    note = {"at": "2026-03-01T12:05:00Z", "by": SIGNER, "text": "Rolled back to v41."}
    incident = resource(c.kind, {
        "title": "Checkout returns 500", "description": "Since the 12:00 deploy.",
        "severity": "P1", "status": "Investigating", "commander": "alice",
        "escalationPolicyRef": {"name": "default"},
        "impact": {"services": ["checkout"], "usersAffected": 1200,
                   "summary": "No orders can be placed."},
        "notes": [note],
        "source": {"kind": "AlertRule", "name": "checkout-errors", "fingerprint": "3f2a"},
        "acknowledgement": {"by": SIGNER, "at": "2026-03-01T12:01:00Z"},
    })

    c.rule(incident, "", {"metadata.name": "a" * 243}, "metadata.name", rule_failed(
        "object", "name must be at most 242 characters (its ConfigMaps add '-postmortem')"))
    for name in ("spec", "spec.title", "spec.severity"):
        c.missing(incident, name)
    c.shorter(incident, "spec.title", 1)
    c.longer(incident, "spec.title", 256)
    c.longer(incident, "spec.description", 8192)
    c.choice(incident, "spec.severity", "P4")
    c.choice(incident, "spec.status", "Closed")
    c.longer(incident, "spec.commander", 253)
    c.missing(incident, "spec.escalationPolicyRef.name")
    c.pattern(incident, "spec.escalationPolicyRef.name", "Default_Policy")
    c.longer(incident, "spec.escalationPolicyRef.name", 253)
    c.items(incident, "spec.impact.services", 32, lambda i: f"service-{i}")
    c.repeated(incident, "spec.impact.services", "checkout")
    c.under(incident, "spec.impact.usersAffected", 0, -1)
    c.longer(incident, "spec.impact.summary", 1024)
    c.items(incident, "spec.notes", 100, lambda i: {**note, "text": f"note {i}"})
    for name in ("at", "by", "text"):
        c.missing(incident, f"spec.notes[0].{name}")
    c.malformed(incident, "spec.notes[0].at", "yesterday")
    c.shorter(incident, "spec.notes[0].by", 1)
    c.longer(incident, "spec.notes[0].by", 253)
    c.shorter(incident, "spec.notes[0].text", 1)
    c.longer(incident, "spec.notes[0].text", 4096)
    c.transition(incident, "spec.source", {"spec.source.fingerprint": "9c41"}, "spec.source",
                 rule_failed("object", "source is immutable"))
    at = "spec.source"
    c.missing(incident, f"{at}.kind")
    c.shorter(incident, f"{at}.kind", 1)
    c.pattern(incident, f"{at}.kind", "alertRule")
    c.longer(incident, f"{at}.kind", 63, unit="A")
    c.longer(incident, f"{at}.name", 253)
    c.longer(incident, f"{at}.fingerprint", 255)
    at = "spec.acknowledgement"
    c.missing(incident, f"{at}.by")
    c.missing(incident, f"{at}.at")
    c.shorter(incident, f"{at}.by", 1)
    c.longer(incident, f"{at}.by", 253)
    c.malformed(incident, f"{at}.at", "just now")
    return c


def _canary_rollouts() -> Cases:
    c = Cases("CanaryRollout")
    hook = {"name": "load-test", "type": "rollout",
            "urlSecretRef": {"name": "hooks", "key": "load-test"},
            "timeout": "30s", "retries": 1, "metadata": {"cmd": "hey -z 1m"}}
    shorthand = resource(c.kind, {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout"},
        "service": {"name": "checkout", "port": 80, "portName": "http", "targetPort": "http"},
        "autoscalerRef": {"name": "checkout"},
        "router": {"gatewayAPI": {"httpRoute": "checkout"}},
        "canary": {"initialWeight": 5, "stepWeight": 25, "maxWeight": 80},
        "analysis": {
            "interval": "1m", "failureLimit": 2, "minimumRequests": 20,
            "requestCountQuery": "sum(increase(requests[{{ interval }}]))",
            "metrics": [
                {"name": "success-rate", "builtin": "requestSuccessRate",
                 "thresholdRange": {"min": 99}, "onNoData": "fail"},
                {"name": "latency", "builtin": "requestDuration", "quantile": 0.95,
                 "thresholdRange": {"max": 0.5}, "interval": "2m"},
                {"name": "errors", "query": "sum(rate(errors[{{ interval }}]))",
                 "thresholdRange": {"min": 0, "max": 1}},
            ],
            "webhooks": [hook],
            "prometheus": {"url": "http://prometheus:9090",
                           "authSecretRef": {"name": "prometheus", "key": "token"}},
        },
        "progressDeadline": "10m",
        "notifications": {"channels": ["oncall"], "events": ["Promoted", "RolledBack"]},
        "incident": INCIDENT_TRIGGER,
        "blockOnIncidents": ["P0", "P1"],
        "backupBefore": {"backupPolicyRef": {"name": "checkout-db"}, "timeout": "30m"},
    })
    listed = changed(shorthand, {"spec.canary": {"stepWeights": [5, 30, 55, 80]}})
    stepped = changed(shorthand, {"spec.canary": {"steps": [
        {"setWeight": 5}, {"pause": {"duration": "1m"}}, {"analysis": {"passes": 2}},
        {"setWeight": 50}, {"pause": {}}]}})
    blue_green = changed(shorthand, {"spec.canary": REMOVE, "spec.strategy": "blueGreen",
                                     "spec.blueGreen": {"healthCheckPeriod": "2m",
                                                        "switch": "gradual", "stepWeight": 20}})
    routers = {
        "nginx": {"ingress": "checkout"},
        "replicaRatio": {"totalReplicas": 4},
        "istio": {"virtualService": "checkout", "route": "primary"},
    }
    routed = {name: changed(shorthand, {"spec.router": {name: router}})
              for name, router in routers.items()}
    one_router = "set exactly one of gatewayAPI, nginx, replicaRatio, istio"
    strategies = "set canary with strategy canary and blueGreen with strategy blueGreen"

    for name in ("spec", "spec.targetRef", "spec.targetRef.name", "spec.service",
                 "spec.service.port", "spec.router"):
        c.missing(shorthand, name)
    c.rule(shorthand, "spec", {"spec.canary": REMOVE}, "spec",
           rule_failed("object", strategies))
    c.rule(shorthand, "spec", {"spec.targetRef.name": "c" * 56, "spec.service.name": REMOVE},
           "spec.service", rule_failed("object", "set service.name when the target's name is "
                                       "longer than 55 characters"))
    c.choice(shorthand, "spec.targetRef.apiVersion", "apps/v1beta1")
    c.choice(shorthand, "spec.targetRef.kind", "StatefulSet")
    c.pattern(shorthand, "spec.targetRef.name", "Checkout")
    c.longer(shorthand, "spec.targetRef.name", 245)
    c.pattern(shorthand, "spec.service.name", "1checkout")
    c.longer(shorthand, "spec.service.name", 55)
    c.range(shorthand, "spec.service.port", 1, 65535)
    c.pattern(shorthand, "spec.service.portName", "HTTP")
    c.longer(shorthand, "spec.service.portName", 15)
    c.missing(shorthand, "spec.autoscalerRef.name")
    c.pattern(shorthand, "spec.autoscalerRef.name", "Checkout_HPA")
    c.longer(shorthand, "spec.autoscalerRef.name", 253)

    c.rule(shorthand, "spec.router", {"spec.router.nginx": routers["nginx"]}, "spec.router",
           rule_failed("object", one_router))
    c.missing(shorthand, "spec.router.gatewayAPI.httpRoute")
    c.pattern(shorthand, "spec.router.gatewayAPI.httpRoute", "Checkout_Route")
    c.longer(shorthand, "spec.router.gatewayAPI.httpRoute", 253)
    c.missing(routed["nginx"], "spec.router.nginx.ingress")
    c.pattern(routed["nginx"], "spec.router.nginx.ingress", "Checkout_Ingress")
    c.longer(routed["nginx"], "spec.router.nginx.ingress", 253)
    c.range(routed["replicaRatio"], "spec.router.replicaRatio.totalReplicas", 1, 1000)
    c.missing(routed["istio"], "spec.router.istio.virtualService")
    c.pattern(routed["istio"], "spec.router.istio.virtualService", "Checkout_VS")
    c.longer(routed["istio"], "spec.router.istio.virtualService", 253)
    c.longer(routed["istio"], "spec.router.istio.route", 253)

    c.choice(shorthand, "spec.strategy", "rolling")
    at = "spec.canary"
    c.rule(shorthand, at, {at: {"initialWeight": 5}}, at,
           rule_failed("object", "set stepWeight, stepWeights or steps"))
    c.rule(stepped, at, {f"{at}.maxWeight": 80}, f"{at}.steps", forbidden(
        "steps cannot be combined with initialWeight, stepWeight, stepWeights or maxWeight"))
    c.rule(listed, at, {f"{at}.stepWeight": 25}, f"{at}.stepWeights",
           forbidden("set stepWeight or stepWeights, not both"))
    for name in ("initialWeight", "stepWeight", "maxWeight"):
        c.range(shorthand, f"{at}.{name}", 1, 100)
    c.no_items(listed, f"{at}.stepWeights")
    c.items(listed, f"{at}.stepWeights", 32, lambda i: i + 1)
    c.repeated(listed, f"{at}.stepWeights", 30)
    c.rule(listed, f"{at}.stepWeights", {f"{at}.stepWeights": [30, 5]}, f"{at}.stepWeights",
           rule_failed("array", "stepWeights must increase"))
    c.under(listed, f"{at}.stepWeights[0]", 1, 0)
    c.over(listed, f"{at}.stepWeights[0]", 100, 101, also=(
        (f"{at}.stepWeights", rule_failed("array", "stepWeights must increase")),))
    c.no_items(stepped, f"{at}.steps")
    c.items(stepped, f"{at}.steps", 32, lambda i: {"setWeight": i})
    c.rule(stepped, f"{at}.steps[0]", {f"{at}.steps[0].pause": {}}, f"{at}.steps[0]",
           rule_failed("object", "a step sets exactly one of setWeight, pause, analysis"))
    c.range(stepped, f"{at}.steps[0].setWeight", 0, 100)
    c.duration(stepped, f"{at}.steps[1].pause.duration")
    c.range(stepped, f"{at}.steps[2].analysis.passes", 1, 100)
    c.duration(blue_green, "spec.blueGreen.healthCheckPeriod")
    c.choice(blue_green, "spec.blueGreen.switch", "slow")
    c.range(blue_green, "spec.blueGreen.stepWeight", 1, 100)

    at = "spec.analysis"
    c.pattern(shorthand, f"{at}.interval", "1.5m")  # a Go duration CEL reads, but not ours
    c.longer(shorthand, f"{at}.interval", 32, unit="1m")
    c.rule(shorthand, f"{at}.interval", {f"{at}.interval": "500ms"}, f"{at}.interval",
           rule_failed("string", "interval must be at least 1s"))
    c.range(shorthand, f"{at}.failureLimit", 1, 100)
    c.range(shorthand, f"{at}.minimumRequests", 0, 1_000_000_000)
    c.shorter(shorthand, f"{at}.requestCountQuery", 1)
    c.longer(shorthand, f"{at}.requestCountQuery", 16384, unit="x")
    metric = shorthand["spec"]["analysis"]["metrics"][0]
    c.items(shorthand, f"{at}.metrics", 16, lambda i: {**metric, "name": f"m{i}"})
    c.twice(shorthand, f"{at}.metrics", metric)
    c.rule(shorthand, f"{at}.metrics[0]", {f"{at}.metrics[0].query": "up"},
           f"{at}.metrics[0]", rule_failed("object", "set exactly one of builtin and query"))
    c.rule(shorthand, f"{at}.metrics[0]", {f"{at}.metrics[0].quantile": 0.5},
           f"{at}.metrics[0].quantile",
           forbidden("quantile is for the requestDuration builtin"))
    c.missing(shorthand, f"{at}.metrics[0].name")
    c.pattern(shorthand, f"{at}.metrics[0].name", "1st")
    c.longer(shorthand, f"{at}.metrics[0].name", 63, unit="m")
    c.choice(shorthand, f"{at}.metrics[0].builtin", "errorRate")
    c.under(shorthand, f"{at}.metrics[1].quantile", 0, -0.5)
    c.over(shorthand, f"{at}.metrics[1].quantile", 1, 1.5)
    c.shorter(shorthand, f"{at}.metrics[2].query", 1)
    c.longer(shorthand, f"{at}.metrics[2].query", 16384, unit="x")
    c.missing(shorthand, f"{at}.metrics[0].thresholdRange")
    c.rule(shorthand, f"{at}.metrics[0].thresholdRange", {f"{at}.metrics[0].thresholdRange": {}},
           f"{at}.metrics[0].thresholdRange", rule_failed("object", "set min, max or both"))
    c.rule(shorthand, f"{at}.metrics[0].thresholdRange",
           {f"{at}.metrics[0].thresholdRange.max": 50}, f"{at}.metrics[0].thresholdRange.min",
           rule_failed("object", "min must not exceed max"))
    c.pattern(shorthand, f"{at}.metrics[1].interval", "1.5m")
    c.longer(shorthand, f"{at}.metrics[1].interval", 32, unit="1m")
    c.rule(shorthand, f"{at}.metrics[0].interval", {f"{at}.metrics[0].interval": "0s"},
           f"{at}.metrics[0].interval", rule_failed("string", "interval must be at least 1s"))
    c.choice(shorthand, f"{at}.metrics[0].onNoData", "ignore")

    c.items(shorthand, f"{at}.webhooks", 16, lambda i: {**hook, "name": f"hook-{i}"})
    c.twice(shorthand, f"{at}.webhooks", hook)
    c.rule(shorthand, f"{at}.webhooks[0]", {f"{at}.webhooks[0].url": "http://hooks/x"},
           f"{at}.webhooks[0]", rule_failed("object", "set exactly one of url and urlSecretRef"))
    c.missing(shorthand, f"{at}.webhooks[0].name")
    c.pattern(shorthand, f"{at}.webhooks[0].name", "load test")
    c.longer(shorthand, f"{at}.webhooks[0].name", 63, unit="w")
    c.missing(shorthand, f"{at}.webhooks[0].type")
    c.choice(shorthand, f"{at}.webhooks[0].type", "pre-rollout")
    public = changed(shorthand, {f"{at}.webhooks[0].urlSecretRef": REMOVE,
                                 f"{at}.webhooks[0].url": "http://hooks.example/gate"})
    c.pattern(public, f"{at}.webhooks[0].url", "hooks.example/gate")
    c.longer(public, f"{at}.webhooks[0].url", 2048, prefix="http://hooks.example/")
    c.secret_ref(shorthand, f"{at}.webhooks[0].urlSecretRef")
    c.duration(shorthand, f"{at}.webhooks[0].timeout")
    c.range(shorthand, f"{at}.webhooks[0].retries", 0, 10)
    c.entries(shorthand, f"{at}.webhooks[0].metadata", 16)
    c.longer(shorthand, f"{at}.webhooks[0].metadata.cmd", 1024, unit="v",
             schema=f"{at}.webhooks[].metadata.*")
    c.pattern(shorthand, f"{at}.prometheus.url", "prometheus:9090")
    c.longer(shorthand, f"{at}.prometheus.url", 2048, prefix="http://prometheus/")
    c.secret_ref(shorthand, f"{at}.prometheus.authSecretRef")

    c.duration(shorthand, "spec.progressDeadline")
    at = "spec.notifications"
    c.missing(shorthand, f"{at}.channels")
    c.no_items(shorthand, f"{at}.channels")
    c.items(shorthand, f"{at}.channels", 8, lambda i: f"channel-{i}")
    c.repeated(shorthand, f"{at}.channels", "oncall")
    c.pattern(shorthand, f"{at}.channels[0]", "On_Call")
    c.longer(shorthand, f"{at}.channels[0]", 253)
    c.no_items(shorthand, f"{at}.events")
    c.repeated(shorthand, f"{at}.events", "Promoted")
    c.choice(shorthand, f"{at}.events[0]", "Deployed")
    c.incident_trigger(shorthand, "spec.incident")
    c.add(shorthand, "maxItems", {"spec.blockOnIncidents": ["P0", "P1", "P2", "P3", "P0"]},
          "spec.blockOnIncidents", too_many(5, 4),
          also=(("spec.blockOnIncidents[4]", duplicate_value("P0")),))
    c.repeated(shorthand, "spec.blockOnIncidents", "P1")
    c.choice(shorthand, "spec.blockOnIncidents[0]", "P4")
    at = "spec.backupBefore"
    c.missing(shorthand, f"{at}.backupPolicyRef")
    c.missing(shorthand, f"{at}.backupPolicyRef.name")
    c.pattern(shorthand, f"{at}.backupPolicyRef.name", "Checkout_DB")
    c.longer(shorthand, f"{at}.backupPolicyRef.name", 253)
    c.duration(shorthand, f"{at}.timeout")
    return c


_BUILT = [_backup_policies(), _alert_rules(), _notification_channels(), _escalation_policies(),
          _incidents(), _canary_rollouts()]
INVALID_SPECS: list[InvalidSpec] = [case for built in _BUILT for case in built.cases]
#: The valid objects the cases are changes of.
VALID_OBJECTS: list[dict[str, Any]] = [base for built in _BUILT for base in built.bases.values()]
