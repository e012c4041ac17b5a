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
            also: tuple[tuple[str, str], ...] = ()) -> None:
        self.bases.setdefault(json.dumps(base, sort_keys=True), base)
        self.cases.append(InvalidSpec(
            self.kind, schema_of(field) if schema is None else schema, check,
            changed(base, changes), field, message, also))

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

    def twice(self, base: dict[str, Any], field: str, item: dict[str, Any]) -> None:
        """Two items of one name in a list-map."""
        self.add(base, "x-kubernetes-list-type", {field: [item, item]}, f"{field}[1]",
                 duplicate(item["name"]), schema=schema_of(field))

    def rule(self, base: dict[str, Any], at: str, changes: dict[str, Any], field: str,
             message: str, also: tuple[tuple[str, str], ...] = ()) -> None:
        """A CEL rule on the node `at`, reported at `field`."""
        self.add(base, "rule", changes, field, message, schema=schema_of(at), also=also)

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
    c.pattern(command, "spec.timeZone", "Europe Berlin", also=((
        "spec.timeZone", rule_failed("string", "unknown time zone Europe Berlin evaluating "
                                     "rule: must be an IANA time zone name such as "
                                     "Europe/Berlin or UTC")),))
    c.longer(command, "spec.timeZone", 64, unit="A")
    c.rule(command, "spec.timeZone", {"spec.timeZone": "Mars/Olympus_Mons"}, "spec.timeZone",
           rule_failed("string", "unknown time zone Mars/Olympus_Mons evaluating rule: must be "
                       "an IANA time zone name such as Europe/Berlin or UTC"))

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


_BUILT = [_backup_policies(), _alert_rules(), _notification_channels()]
INVALID_SPECS: list[InvalidSpec] = [case for built in _BUILT for case in built.cases]
#: The valid objects the cases are changes of.
VALID_OBJECTS: list[dict[str, Any]] = [base for built in _BUILT for base in built.bases.values()]
