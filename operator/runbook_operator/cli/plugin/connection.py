"""The flags every command shares (namespace scope, kubeconfig, context) and the API clients
and namespace they select."""

from __future__ import annotations

import argparse
import os
from typing import Any, NamedTuple, Protocol

from kubernetes import client, config

from runbook_operator.api.common import GROUP, VERSION
from runbook_operator.cli.plugin.errors import PluginError

PAGE_SIZE = 500
REQUEST_TIMEOUT_SECONDS = 30


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig", help="path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)"
    )
    parser.add_argument("--context", help="kubeconfig context to use (default: the current one)")


def add_scope_flags(parser: argparse.ArgumentParser, listed: str) -> None:
    """`-n NAMESPACE` or `-A`, for commands that list `listed` (e.g. "resources")."""
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", help="namespace to list (default: the current context's namespace)"
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help=f"list {listed} in every namespace"
    )


def kubeconfig_path(args: argparse.Namespace) -> str | None:
    """`--kubeconfig`, else $KUBECONFIG read now (the client reads it once, at import)."""
    return args.kubeconfig or os.environ.get("KUBECONFIG") or None


def context_namespace(config_file: str | None, context: str | None) -> str:
    """The namespace of the chosen kubeconfig context, `default` when it names none (as kubectl)."""
    contexts, current = config.list_kube_config_contexts(config_file=config_file)
    chosen = current if context is None else next(c for c in contexts if c["name"] == context)
    return chosen.get("context", {}).get("namespace") or "default"


class CustomObjects(Protocol):
    """The `CustomObjectsApi` list calls (a fake stands in for it in tests)."""

    def list_cluster_custom_object(
        self, group: str, version: str, plural: str, **kwargs: Any
    ) -> dict[str, Any]: ...

    def list_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, **kwargs: Any
    ) -> dict[str, Any]: ...


class Apis(NamedTuple):
    """The API groups the commands use, sharing one configured client."""

    client: client.ApiClient
    custom: client.CustomObjectsApi
    batch: client.BatchV1Api
    core: client.CoreV1Api

    def plain(self, obj: Any) -> dict[str, Any]:
        """A typed client object as the API's JSON (camelCase keys), as the core expects."""
        result: dict[str, Any] = self.client.sanitize_for_serialization(obj)
        return result


def connect(args: argparse.Namespace) -> tuple[Apis, str | None]:
    """Clients for the kubeconfig and context chosen, and the namespace to work in: `-n`,
    None for `-A`, else the context's."""
    config_file = kubeconfig_path(args)
    try:
        config.load_kube_config(config_file=config_file, context=args.context)
        namespace = (None if getattr(args, "all_namespaces", False)
                     else args.namespace or context_namespace(config_file, args.context))
    except config.ConfigException as exc:
        raise PluginError(f"invalid kubeconfig: {exc}") from exc
    api = client.ApiClient()
    apis = Apis(api, client.CustomObjectsApi(api), client.BatchV1Api(api), client.CoreV1Api(api))
    return apis, namespace


def list_kind(
    api: CustomObjects, kind: str, plural: str, namespace: str | None
) -> list[dict[str, Any]]:
    """All objects of one kind, page by page so that large clusters do not need one huge reply."""
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        paging: dict[str, Any] = {"limit": PAGE_SIZE, "_request_timeout": REQUEST_TIMEOUT_SECONDS}
        if token:
            paging["_continue"] = token
        if namespace is None:
            reply = api.list_cluster_custom_object(GROUP, VERSION, plural, **paging)
        else:
            reply = api.list_namespaced_custom_object(GROUP, VERSION, namespace, plural, **paging)
        for item in reply.get("items") or []:
            item.setdefault("kind", kind)  # list items may omit it; the table needs it
            items.append(item)
        token = (reply.get("metadata") or {}).get("continue")
        if not token:
            return items
