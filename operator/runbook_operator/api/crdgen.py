"""Generate CustomResourceDefinitions from the pydantic models.

Kubernetes wants structural OpenAPI v3 schemas: every node typed, no `$ref`, no `anyOf` of
types. Pydantic emits JSON Schema with `$defs`, nullable `anyOf`s and titles, so this module
inlines references, folds `Optional` away (optional means "not required" in Kubernetes), turns
`str | int` into `x-kubernetes-int-or-string`, and refuses to emit a property without a
description because descriptions feed `kubectl explain`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from runbook_operator.api.common import CATEGORY, GROUP, VERSION, Resource
from runbook_operator.api.registry import KINDS

_KEPT_KEYWORDS = {
    "type",
    "description",
    "default",
    "enum",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "items",
    "properties",
    "required",
    "additionalProperties",
    "nullable",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
}


class SchemaError(ValueError):
    """The models cannot be expressed as a structural schema (a bug in the API package)."""


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inline a `$ref`, keeping keywords set next to it (descriptions, defaults)."""
    if "$ref" not in node:
        return node
    target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
    merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return _resolve(merged, defs)


def _fold_any_of(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    options = [_resolve(o, defs) for o in node["anyOf"] if o.get("type") != "null"]
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    if rest.get("default", ...) is None:
        del rest["default"]
    if len(options) == 1:
        return {**options[0], **rest}
    if sorted(o.get("type") for o in options) == ["integer", "string"]:
        return {**rest, "x-kubernetes-int-or-string": True}
    raise SchemaError(f"cannot express anyOf {options} structurally")


def structural(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    """Convert one pydantic JSON-schema node into a structural OpenAPI v3 node."""
    node = _resolve(node, defs)
    if "anyOf" in node:
        node = _fold_any_of(node, defs)
    if "allOf" in node and len(node["allOf"]) == 1:
        rest = {k: v for k, v in node.items() if k != "allOf"}
        node = {**_resolve(node["allOf"][0], defs), **rest}
    if "const" in node:
        node = {**{k: v for k, v in node.items() if k != "const"}, "enum": [node["const"]]}
    unknown = set(node) - _KEPT_KEYWORDS - {"title", "$defs"}
    if unknown:
        raise SchemaError(f"{path}: unsupported schema keywords {sorted(unknown)}")
    out = {k: v for k, v in node.items() if k in _KEPT_KEYWORDS}
    if "type" not in out and not out.get("x-kubernetes-int-or-string"):
        raise SchemaError(f"{path}: no type")
    if "properties" in out:
        out["properties"] = {
            name: structural(child, defs, f"{path}.{name}")
            for name, child in out["properties"].items()
        }
        for name, child in out["properties"].items():
            if not child.get("description"):
                raise SchemaError(f"{path}.{name}: every field needs a description")
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = structural(
            out["additionalProperties"], defs, f"{path}[*]"
        )
    elif out.get("additionalProperties") is False:
        del out["additionalProperties"]
    if "items" in out:
        out["items"] = structural(out["items"], defs, f"{path}[]")
    if out.get("default") == {} or out.get("default") == []:
        del out["default"]
    return out


def _schema(model: type[Resource]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    spec = structural(raw["properties"]["spec"], defs, "spec")
    status = structural(raw["properties"]["status"], defs, "status")
    root: dict[str, Any] = {
        "type": "object",
        "description": model.__doc__.strip() if model.__doc__ else model.info.kind,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "API version of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    if model.info.name_limit is not None:
        root["x-kubernetes-validations"] = [model.info.name_limit.rule()]
        # A fieldPath must name a field of the schema; of metadata, a CRD may only describe
        # name and generateName.
        root["properties"]["metadata"]["properties"] = {
            "name": {"type": "string", "description": "Name of this object."}
        }
    return root


def crd(model: type[Resource]) -> dict[str, Any]:
    """The full CustomResourceDefinition for one kind."""
    info = model.info
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": model.crd_name(),
            "labels": {"app.kubernetes.io/part-of": "runbook-operator"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": model.singular(),
                "shortNames": info.short_names,
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {
                            "name": c.name,
                            "type": c.type,
                            "jsonPath": c.json_path,
                            "description": c.description,
                            **({"priority": c.priority} if c.priority else {}),
                        }
                        for c in info.printer_columns
                    ],
                    **({"selectableFields": [{"jsonPath": f".{path}"}
                                             for path in info.selectable_fields]}
                       if info.selectable_fields else {}),
                    "schema": {"openAPIV3Schema": _schema(model)},
                }
            ],
        },
    }


def render_all() -> dict[str, str]:
    """File name → YAML text for every kind, plus the kustomization listing them, as
    `make crds` writes them."""
    header = "# Generated by `make crds` from operator/runbook_operator/api. Do not edit.\n"
    files = {
        f"{GROUP}_{model.info.plural}.yaml": header
        + yaml.safe_dump(crd(model), sort_keys=False, width=100)
        for model in KINDS
    }
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": sorted(files),
    }
    files["kustomization.yaml"] = header + yaml.safe_dump(kustomization, sort_keys=False)
    return files


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


def main() -> None:
    root = Path(__file__).resolve().parents[3]
    for path in write_all(root / "crds"):
        print(f"wrote {path.relative_to(root)}")


if __name__ == "__main__":
    main()
