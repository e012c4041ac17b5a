"""Turn API and validation errors into the one-line messages shown in conditions and Events."""

from __future__ import annotations

from pydantic import ValidationError

from runbook_operator.integrations.kubeapi import ApiError, APIUnreachable
from runbook_operator.integrations.kubernetes import StatusConflict

#: Failures of one API call that the next event or resync retries: an error answer, a write
#: that kept conflicting, or no answer at all (the API server down or restarting).
TRANSIENT_API_ERRORS = (ApiError, StatusConflict, APIUnreachable)


def validation_message(error: ValidationError, prefix: str) -> str:
    """`spec.source.command.image: Field required; ...` with field paths as on the wire."""
    parts = []
    for item in error.errors():
        path = ".".join([prefix, *(str(p) for p in item["loc"])])
        parts.append(f"{path}: {item['msg']}")
    return "; ".join(parts)


def transient_error_message(error: Exception) -> str:
    """One line for any of TRANSIENT_API_ERRORS."""
    if isinstance(error, ApiError):
        return error.message
    if isinstance(error, APIUnreachable):
        return f"the API server is unreachable ({error})"
    return str(error)
