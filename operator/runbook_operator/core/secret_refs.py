"""Whether the Secrets a spec references exist: checked before anything that uses them is
rendered, so a missing Secret stalls the resource with a clear message instead of a pod that
never starts."""

from __future__ import annotations

from runbook_operator.api.common import SecretKeyRef


def missing_secrets(
    refs: list[SecretKeyRef], secrets: dict[str, set[str] | None]
) -> list[str]:
    """Describe each reference whose Secret or key does not exist.

    `secrets` maps a Secret name to its key names as read from the API (None when absent);
    only key names are ever looked at, never values.
    """
    problems = []
    for ref in refs:
        data = secrets.get(ref.name)
        if data is None:
            problems.append(f"Secret {ref.name!r} not found")
        elif ref.key not in data:
            problems.append(f"Secret {ref.name!r} has no key {ref.key!r}")
    return sorted(set(problems))
