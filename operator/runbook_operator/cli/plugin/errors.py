"""Exit codes, and failures turned into one line on stderr instead of a traceback."""

from __future__ import annotations

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

EXIT_OK = 0
EXIT_UNREADY = 1
EXIT_FAILED = 1
EXIT_ERROR = 2
#: What one API request may raise: an error answer, or no answer at all.
REQUEST_ERRORS = (ApiException, HTTPError, OSError)


class PluginError(Exception):
    """A failure to report as one line on stderr (exit code 2)."""


class RunFailed(PluginError):
    """What was waited for failed or did not finish in time (exit code 1, not 2)."""


def unreachable(exc: Exception) -> PluginError:
    return PluginError(f"cannot reach the cluster: {exc}")


def api_error(
    exc: Exception, *, verb: str, resource: str, what: str, namespace: str | None,
    missing: str | None = None,
) -> PluginError:
    """One line for a failed request to `verb` `what` (of API `resource`, e.g. `jobs.batch`)
    in `namespace` (None: all namespaces): `missing` for a 404 when given, the `kubectl auth
    can-i` command that checks RBAC for a 403, else the status."""
    if not isinstance(exc, ApiException):
        return unreachable(exc)
    if exc.status == 404 and missing:
        return PluginError(missing)
    where = "all namespaces" if namespace is None else f"namespace {namespace!r}"
    if exc.status == 403:
        scope = "-A" if namespace is None else f"-n {namespace}"
        return PluginError(f"forbidden: cannot {verb} {what} in {where}; check your RBAC: "
                           f"kubectl auth can-i {verb} {resource} {scope}")
    return PluginError(f"cannot {verb} {what} in {where}: {exc.status} {exc.reason}")
