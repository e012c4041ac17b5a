"""Every kind the operator serves, in one list (CRD generation and the kubectl plugin use it)."""

from runbook_operator.api.alertrule import AlertRule
from runbook_operator.api.backuppolicy import BackupPolicy
from runbook_operator.api.canaryrollout import CanaryRollout
from runbook_operator.api.common import Resource
from runbook_operator.api.escalationpolicy import EscalationPolicy
from runbook_operator.api.incident import Incident
from runbook_operator.api.notificationchannel import NotificationChannel

KINDS: list[type[Resource]] = [
    BackupPolicy, NotificationChannel, AlertRule, EscalationPolicy, Incident, CanaryRollout,
]
