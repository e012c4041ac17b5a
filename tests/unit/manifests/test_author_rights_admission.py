"""manifests/author-rights-admission.yaml checks every Secret a spec names: a reference added
to a model (and so to its CRD) without a line in the policy would let an author have the
operator read a Secret they may not read. The e2e test proves the policy works; this one that
it knows every reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from runbook_operator.api import crdgen
from runbook_operator.api.backuppolicy import CRONJOB_SUFFIX, RESTORE_TEST_SUFFIX
from runbook_operator.api.registry import KINDS

POLICY = Path(__file__).resolve().parents[3] / "manifests" / "author-rights-admission.yaml"


def secret_references(schema: dict[str, Any], path: str) -> list[str]:
    """Paths (`a.b[].c`) of every object in `schema` whose `name` names a Secret."""
    if schema.get("type") == "array":
        return secret_references(schema["items"], f"{path}[]")
    properties = schema.get("properties") or {}
    found = [path] if "secret" in properties.get("name", {}).get("description", "").lower() else []
    for key, child in properties.items():
        found += secret_references(child, f"{path}.{key}")
    return found


def references_by_kind() -> dict[str, list[str]]:
    found = {}
    for model in KINDS:
        spec = crdgen.crd(model)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        found[model.info.plural] = secret_references(spec["properties"]["spec"], "spec")
    return found


def cel_reading(path: str) -> list[str]:
    """What the policy's `secrets` variable must say to read the Secret name at `path`."""
    if "[]" not in path:
        return ["object." + path.replace(".", ".?") + ".?name"]
    to_list, item = path.split("[].", 1)
    return ["object." + to_list.replace(".", ".?") + ".orValue([])", f".{item}.name"]


def policy() -> dict[str, Any]:
    return next(doc for doc in yaml.safe_load_all(POLICY.read_text())
                if doc["kind"] == "ValidatingAdmissionPolicy")


def test_the_walk_finds_the_references_of_a_known_kind() -> None:
    assert references_by_kind()["notificationchannels"] == [
        "spec.slack.webhookURLSecretRef", "spec.pagerduty.routingKeySecretRef",
        "spec.webhook.urlSecretRef", "spec.webhook.headers[].secretKeyRef",
        "spec.email.usernameSecretRef", "spec.email.passwordSecretRef"]


def test_every_secret_reference_of_every_kind_is_checked() -> None:
    spec = policy()["spec"]
    [secrets] = [v["expression"] for v in spec["variables"] if v["name"] == "secrets"]
    [rule] = spec["matchConstraints"]["resourceRules"]
    unchecked = {}
    for plural, paths in references_by_kind().items():
        missing = [p for p in paths if not all(text in secrets for text in cel_reading(p))]
        if paths and plural not in rule["resources"]:
            missing.append("(the kind is not matched)")
        if missing:
            unchecked[plural] = missing
    assert unchecked == {}


def test_the_cronjobs_checked_are_the_ones_a_backup_policy_applies() -> None:
    [cronjobs] = [v["expression"] for v in policy()["spec"]["variables"]
                  if v["name"] == "cronJobs"]
    assert cronjobs == (f"[object.metadata.name + '{CRONJOB_SUFFIX}', "
                        f"object.metadata.name + '{RESTORE_TEST_SUFFIX}']")
