"""The CRDs in crds/ are generated from the pydantic models and must not drift from them."""

from pathlib import Path

import pytest
import yaml

from runbook_operator.api import crdgen
from runbook_operator.api.registry import KINDS

CRDS = Path(__file__).resolve().parents[3] / "crds"


@pytest.mark.parametrize("name, text", sorted(crdgen.render_all().items()))
def test_committed_crd_matches_generator(name: str, text: str) -> None:
    path = CRDS / name
    assert path.exists(), f"{path} missing: run `make crds`"
    assert path.read_text() == text, f"{path} is stale: run `make crds`"


def test_no_stray_crd_files() -> None:
    assert sorted(p.name for p in CRDS.glob("*.yaml")) == sorted(crdgen.render_all())


def _walk(node: dict, path: str):
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from _walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("model", KINDS, ids=lambda m: m.info.kind)
def test_schema_is_structural_and_documented(model) -> None:
    schema = crdgen.crd(model)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    text = yaml.safe_dump(schema)
    assert "$ref" not in text and "anyOf" not in text and "title" not in schema
    for path, node in _walk(schema, ""):
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} untyped"
        is_property = path and not path.endswith(("[]", "{}"))
        if is_property and path not in (".apiVersion", ".kind", ".metadata"):
            assert node.get("description"), f"{path} has no description"


@pytest.mark.parametrize("model", KINDS, ids=lambda m: m.info.kind)
def test_crd_conventions(model) -> None:
    crd = crdgen.crd(model)
    names = crd["spec"]["names"]
    version = crd["spec"]["versions"][0]
    assert names["categories"] == ["runbook"]
    assert names["shortNames"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert "Ready" in columns and columns[-1] == "Age"
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert status["conditions"]["x-kubernetes-list-type"] == "map"
    assert "observedGeneration" in status


def test_unsupported_union_is_refused() -> None:
    with pytest.raises(crdgen.SchemaError):
        crdgen.structural({"anyOf": [{"type": "string"}, {"type": "boolean"}]}, {}, "x")


def test_property_without_description_is_refused() -> None:
    node = {"type": "object", "properties": {"a": {"type": "string"}}}
    with pytest.raises(crdgen.SchemaError, match="description"):
        crdgen.structural(node, {}, "spec")


@pytest.mark.parametrize("model", [m for m in KINDS if m.info.selectable_fields],
                         ids=lambda m: m.info.kind)
def test_selectable_fields_name_scalars_required_where_their_parent_is_set(model) -> None:
    """The API server refuses a selectable field that is not a string, integer or boolean.
    An absent field selects as "": the severity being required in spec.incident is what makes
    `spec.incident.severity!=` mean "asks for incidents"."""
    version = crdgen.crd(model)["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    assert version["selectableFields"] == [{"jsonPath": f".{p}"}
                                           for p in model.info.selectable_fields]
    for path in model.info.selectable_fields:
        *parents, leaf = path.split(".")
        node = schema
        for name in parents:
            node = node["properties"][name]
        assert node["properties"][leaf]["type"] in {"string", "integer", "boolean"}
        assert leaf in node.get("required", []), f"{path} is optional"


def test_every_kind_with_an_incident_trigger_selects_by_its_severity() -> None:
    from runbook_operator.api.incident import INCIDENT_SEVERITY_FIELD

    triggering = {m.info.kind for m in KINDS
                  if "incident" in crdgen.crd(m)["spec"]["versions"][0]["schema"]
                  ["openAPIV3Schema"]["properties"]["spec"]["properties"]}
    assert triggering == {"AlertRule", "BackupPolicy", "CanaryRollout"}
    assert {m.info.kind for m in KINDS
            if INCIDENT_SEVERITY_FIELD in m.info.selectable_fields} == triggering
