"""Incident: lifecycle, durable escalation along EscalationPolicies, notifications, timeline
and postmortem (`registration`, `timers`, `reconcile`); the decisions are in core/incident."""

from runbook_operator.controllers.incident.registration import register

__all__ = ["register"]
