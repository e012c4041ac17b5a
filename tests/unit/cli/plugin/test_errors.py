"""Failed requests as one line each: what was attempted, where, and how to check RBAC."""

from __future__ import annotations

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError

from runbook_operator.cli.plugin.errors import api_error


def error(status: int, **kwargs) -> str:
    return str(api_error(ApiException(status=status, reason="Nope"), verb="create",
                         resource="jobs.batch", what="Job x", **kwargs))


def test_forbidden_says_how_to_check_rbac() -> None:
    assert error(403, namespace="shop") == (
        "forbidden: cannot create Job x in namespace 'shop'; check your RBAC: "
        "kubectl auth can-i create jobs.batch -n shop")
    assert error(403, namespace=None).endswith("kubectl auth can-i create jobs.batch -A")


def test_not_found_uses_the_callers_words_when_given() -> None:
    assert error(404, namespace="shop", missing="no such policy") == "no such policy"
    assert error(404, namespace="shop") == "cannot create Job x in namespace 'shop': 404 Nope"


def test_other_statuses_and_no_answer() -> None:
    assert error(500, namespace=None) == "cannot create Job x in all namespaces: 500 Nope"
    refused = MaxRetryError(None, "/apis", "connection refused")  # type: ignore[arg-type]
    message = str(api_error(refused, verb="get", resource="jobs.batch", what="Job x",
                            namespace="shop"))
    assert message.startswith("cannot reach the cluster:")
