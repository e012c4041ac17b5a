"""Turn API and validation errors into the one-line messages shown in conditions and Events."""

from __future__ import annotations

import json

from kubernetes.dynamic.exceptions import DynamicApiError
from pydantic import ValidationError


def validation_message(error: ValidationError, prefix: str) -> str:
    """`spec.source.command.image: Field required; ...` with field paths as on the wire."""
    parts = []
    for item in error.errors():
        path = ".".join([prefix, *(str(p) for p in item["loc"])])
        parts.append(f"{path}: {item['msg']}")
    return "; ".join(parts)


def api_error_message(error: DynamicApiError) -> str:
    """The API server's own message (it names the field), not the HTTP dump."""
    try:
        return json.loads(error.body)["message"]
    except (TypeError, ValueError, KeyError):
        return f"{error.status} {error.reason}"
