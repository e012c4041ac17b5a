"""Objects the tests build again and again: a sample notification, and bodies of every kind."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from runbook_operator.api.common import API_VERSION
from runbook_operator.core.delivery import Link, Notification, Source
from runbook_operator.devcluster.services import PostgresServer
from runbook_operator.runner.crypto import parse_key

NOW = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
STARTED = datetime(2026, 3, 1, 11, 55, 0, tzinfo=UTC)


def notification(**changes: Any) -> Notification:
    """A BackupPolicy failure, the common case; `changes` override fields."""
    base: dict[str, Any] = {
        "source": Source(kind="BackupPolicy", name="db-nightly", namespace="prod"),
        "event": "failed",
        "severity": "high",
        "title": "Backup db-nightly failed",
        "summary": "pg_dump: connection refused",
        "details": {"job": "db-nightly-backup-29012345", "reason": "BackoffLimitExceeded"},
        "links": [Link(href="https://grafana.example.com/d/backups", text="Dashboard")],
        "timestamp": NOW,
        "started_at": STARTED,
        "dedup_key": "prod/db-nightly/backup-failed",
    }
    return Notification(**{**base, **changes})


def policy_body(name: str, **spec: Any) -> dict[str, Any]:
    body = {
        "apiVersion": API_VERSION,
        "kind": "BackupPolicy",
        "metadata": {"name": name},
        "spec": {
            "schedule": "0 2 * * *",
            "source": {"command": {"image": "busybox:1.36", "command": ["true"]}},
        },
    }
    body["spec"].update(spec)
    return body


def postgres_pvc_policy(name: str, postgres: PostgresServer, database: str,
                        **spec: Any) -> dict[str, Any]:
    """A BackupPolicy of a real PostgreSQL database (its password in Secret ``db``) into the
    claim ``backups``; `spec` adds to or overrides the rest."""
    return {
        "apiVersion": API_VERSION, "kind": "BackupPolicy", "metadata": {"name": name},
        "spec": {
            "schedule": "0 2 * * *", "backoffLimit": 0, "timeout": "3m",
            "source": {"postgres": {"host": postgres.host, "port": postgres.port,
                                    "database": database, "user": postgres.user,
                                    "passwordSecretRef": {"name": "db", "key": "password"}}},
            "destination": {"pvc": {"claimName": "backups"}},
            **spec,
        },
    }


RUNNER_SECRETS = {
    "db": {"password": "pg-secret-value"},
    "backup-key": {"key": "A" * 43 + "="},
    "s3": {"AWS_ACCESS_KEY_ID": "access-key-id-value", "AWS_SECRET_ACCESS_KEY": "s3-secret-value"},
}
#: The id of the key in RUNNER_SECRETS, as the runner reports it for what it encrypted.
RUNNER_KEY_ID = parse_key(RUNNER_SECRETS["backup-key"]["key"]).id


def runner_policy(name: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "BackupPolicy",
        "metadata": {"name": name},
        "spec": {
            "schedule": "0 2 * * *",
            "source": {"postgres": {"host": "orders-db", "database": "orders", "user": "backup",
                                    "passwordSecretRef": {"name": "db", "key": "password"}}},
            "destination": {"s3": {"endpoint": "http://minio.example:9000", "bucket": "backups",
                                   "credentialsSecretRef": {"name": "s3"}}},
            "encryption": {"keySecretRef": {"name": "backup-key", "key": "key"}},
            "restoreTest": {"schedule": "0 6 * * 0"},
            "backoffLimit": 0,
        },
    }


def alert_rule(name: str, prometheus_url: str, **spec: Any) -> dict[str, Any]:
    body = {
        "apiVersion": API_VERSION, "kind": "AlertRule", "metadata": {"name": name},
        "spec": {"query": "http_errors_ratio", "condition": {"operator": "gt", "threshold": 0.05},
                 "for": "4s", "interval": "5s", "severity": "critical",
                 "prometheus": {"url": prometheus_url},
                 "annotations": {"summary": "{{ $labels.service }} 5xx ratio is {{ $value }}"},
                 "channels": [{"name": "oncall"}]},
    }
    body["spec"].update(spec)
    return body


def errors_of(series: dict[str, str]) -> str:
    """The query of one service's 5xx ratio, as the exporter publishes it."""
    return f'http_errors_ratio{{service="{series["service"]}"}}'


def escalation_policy(name: str, levels: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "EscalationPolicy", "metadata": {"name": name},
            "spec": {"levels": levels, **spec}}


def incident(name: str, policy: str | None = None, severity: str = "P1",
             **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": API_VERSION, "kind": "Incident", "metadata": {"name": name},
        "spec": {"title": f"{name} is down", "severity": severity, **spec}}
    if policy is not None:
        body["spec"]["escalationPolicyRef"] = {"name": policy}
    return body
