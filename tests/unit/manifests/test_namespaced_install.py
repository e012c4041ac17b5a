"""manifests-namespaced/: the operator's Role there grants, in its one namespace, exactly what
the ClusterRole of manifests/rbac.yaml grants for namespaced resources, so a rule added to one
and not the other (a new kind's, say) fails here rather than in a namespace-scoped cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
#: What only the cluster-wide install needs: CRD discovery.
CLUSTER_ONLY = [
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
     "verbs": ["get", "list", "watch"]},
]


def document(path: Path, kind: str) -> dict[str, Any]:
    return next(d for d in yaml.safe_load_all(path.read_text()) if d["kind"] == kind)


def test_the_role_grants_what_the_cluster_role_grants_for_namespaced_resources() -> None:
    cluster = document(REPO / "manifests" / "rbac.yaml", "ClusterRole")["rules"]
    namespaced = document(REPO / "manifests-namespaced" / "role.yaml", "Role")["rules"]
    assert [r for r in cluster if r not in CLUSTER_ONLY] == namespaced
    assert all(r in cluster for r in CLUSTER_ONLY)


def test_the_overlay_removes_every_cluster_wide_right_of_the_operator() -> None:
    kustomization = yaml.safe_load(
        (REPO / "manifests-namespaced" / "kustomization.yaml").read_text())
    deleted = {(p["kind"], p["metadata"]["name"]) for p in map(
        yaml.safe_load, (patch["patch"] for patch in kustomization["patches"]))
        if isinstance(p, dict) and p.get("$patch") == "delete"}
    assert deleted == {("ClusterRole", "runbook-operator"),
                       ("ClusterRoleBinding", "runbook-operator")}
