"""Hypothesis strategies for whole objects of every registered kind, built from the OpenAPI
schema of its generated CRD (crds/*.yaml): mostly valid objects, and objects that break one
schema constraint on purpose.

A valid-looking object starts from one of the table's valid objects (invalid_specs.py) or
from the schema alone, and gets a few fields replaced by values the schema allows (types,
enums, patterns, formats, ranges, lengths, required fields); CEL rules are not modelled, so
some of these break one, which is what the API server must then report. A mutated object
breaks one constraint the schema declares (wrong type, out of range, unknown enum value,
missing required field, too long, not matching the pattern or format, too many or too few
items), so the API server must reject it.

References to other objects (Secrets, NotificationChannels, EscalationPolicies) name one of
REFERENCED's objects, which a test creates, or one that does not exist.

A kind added to api/registry.py (with its CRD generated) gets strategies with no change here;
a reference of a new sort (a Deployment's name, say) is generated from its pattern until
`reference_of` and REFERENCED name it.

hypothesis-jsonschema would build the valid values from the schema, but its 0.23.1 fails on
today's hypothesis (`'many' object has no attribute 'more'`), so the walk below does it.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from runbook_operator.api.common import API_VERSION, GROUP
from runbook_operator.api.registry import KINDS
from tests.support.invalid_specs import VALID_OBJECTS

CRD_DIR = Path(__file__).resolve().parents[2] / "crds"
KIND_NAMES = [model.info.kind for model in KINDS]
#: Most values are ASCII; some are not, as a user's can be.
_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=24)
_ASCII = st.characters(codec="ascii", min_codepoint=32, max_codepoint=126)


@dataclass(frozen=True)
class Referenced:
    """An object of the test's namespace that specs may name, and a name nothing has."""

    present: str
    missing: str


#: What a reference names, by the property that holds it.
REFERENCED = {
    "secret": Referenced("present-secret", "missing-secret"),
    "secret key": Referenced("value", "absent-key"),
    "channel": Referenced("present-channel", "missing-channel"),
    "escalation policy": Referenced("present-policy", "missing-policy"),
}


def reference_of(path: tuple[str, ...]) -> str | None:
    """What the value at `path` (schema steps, `[]` for items) refers to, if anything."""
    names = [step for step in path if step != "[]"]
    if not names:
        return None
    last, parent = names[-1], (names[-2] if len(names) > 1 else "")
    if parent.endswith("SecretRef") or parent == "secretKeyRef":
        return {"name": "secret", "key": "secret key"}.get(last)
    if parent == "escalationPolicyRef" and last == "name":
        return "escalation policy"
    if (last == "channels" and path[-1] == "[]" or last == "channel" and parent != "slack"
            or parent == "channels" and last == "name"):
        return "channel"
    return None


@cache
def object_schema(kind: str) -> dict[str, Any]:
    """The openAPIV3Schema of `kind`'s CRD in crds/."""
    model = next(model for model in KINDS if model.info.kind == kind)
    crd = yaml.safe_load((CRD_DIR / f"{GROUP}_{model.info.plural}.yaml").read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def node_at(kind: str, path: tuple[str, ...]) -> dict[str, Any]:
    node = object_schema(kind)
    for step in path:
        node = node["items"] if step == "[]" else node["properties"][step]
    return node


def schema_paths(kind: str) -> list[tuple[str, ...]]:
    """Every node under `spec` (and `spec` itself), items as `[]`."""
    found: list[tuple[str, ...]] = []

    def walk(node: dict[str, Any], path: tuple[str, ...]) -> None:
        found.append(path)
        for name, child in (node.get("properties") or {}).items():
            walk(child, (*path, name))
        if "items" in node:
            walk(node["items"], (*path, "[]"))

    walk(object_schema(kind)["properties"]["spec"], ("spec",))
    return found


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _strings(node: dict[str, Any]) -> st.SearchStrategy[str]:
    low, high = node.get("minLength", 0), node.get("maxLength", 10_000)
    if node.get("format") == "date-time":
        return st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1),
                            timezones=st.just(UTC)).map(_rfc3339)
    if "pattern" in node:
        matching = st.from_regex(node["pattern"], fullmatch=True, alphabet=_ASCII)
        return matching.filter(lambda s: low <= len(s) <= high)
    return st.one_of(st.text(_ASCII, min_size=low, max_size=min(high, max(low, 24))),
                     _TEXT.filter(lambda s: low <= len(s) <= high))


def values(node: dict[str, Any], path: tuple[str, ...] = ()) -> st.SearchStrategy[Any]:
    """Values the structural schema `node` (at `path`) allows; CEL rules are not checked."""
    reference = reference_of(path) if node.get("type") == "string" else None
    if reference is not None:
        return st.sampled_from([REFERENCED[reference].present, REFERENCED[reference].missing])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if node.get("x-kubernetes-int-or-string"):
        return st.one_of(st.integers(0, 64), st.sampled_from(["100m", "128Mi", "1", "2Gi"]),
                         st.text(_ASCII, max_size=8))
    kind = node.get("type")
    if kind == "string":
        return _strings(node)
    if kind in ("integer", "number"):
        low, high = node.get("minimum", -(2**31)), node.get("maximum", 2**31)
        interesting = st.sampled_from(sorted({low, high, min(max(0, low), high)}))
        if kind == "integer":
            return st.one_of(interesting, st.integers(int(low), int(high)))
        return st.one_of(interesting, st.floats(low, high, allow_nan=False))
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        return _lists(node, path)
    return _objects(node, path)


def _lists(node: dict[str, Any], path: tuple[str, ...]) -> st.SearchStrategy[list[Any]]:
    low, high = node.get("minItems", 0), node.get("maxItems", 1_000)
    items = values(node["items"], (*path, "[]"))
    size = {"min_size": low, "max_size": min(high, max(low, 3))}
    keys = node.get("x-kubernetes-list-map-keys")
    if keys:
        return st.lists(items, unique_by=lambda item: tuple(str(item.get(k)) for k in keys),
                        **size)
    unique = node.get("x-kubernetes-list-type") == "set"
    return st.lists(items, unique=unique, **size)


def _objects(node: dict[str, Any], path: tuple[str, ...]) -> st.SearchStrategy[Any]:
    properties = node.get("properties")
    if properties:
        required = set(node.get("required", []))
        return st.fixed_dictionaries(
            {name: values(child, (*path, name)) for name, child in properties.items()
             if name in required},
            optional={name: values(child, (*path, name)) for name, child in properties.items()
                      if name not in required})
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        keys = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
        return st.dictionaries(keys, values(extra, (*path, "*")),
                               max_size=min(node.get("maxProperties", 3), 3))
    return st.just({})


# Building objects.


@dataclass(frozen=True)
class Example:
    """A generated object, and the constraint it breaks on purpose (None: meant to be valid,
    bar CEL rules). `name_length`: the length its name must have (None: the test's own)."""

    body: dict[str, Any]
    broken: str | None = None
    name_length: int | None = None

    @property
    def kind(self) -> str:
        return self.body["kind"]


def _set(body: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set `value` at `path` (items as `[]`: the first), creating what is missing on the way."""
    node: Any = body
    for step, following in zip(path, (*path[1:], None)):
        if following is None:
            break
        fresh: Any = [] if following == "[]" else {}
        if step == "[]":
            if not node:
                node.append(fresh)
            node = node[0]
        else:
            if not isinstance(node.get(step), type(fresh)):
                node[step] = fresh
            node = node[step]
    if path[-1] == "[]":
        node[:1] = [value]
    else:
        node[path[-1]] = value


def _present(body: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The value at `path` (first items), or None where the body has none."""
    node: Any = body
    for step in path:
        if step == "[]":
            node = node[0] if isinstance(node, list) and node else None
        else:
            node = node.get(step) if isinstance(node, dict) else None
        if node is None:
            return None
    return node


def _references(kind: str, body: dict[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """Every (path, what) of a reference the body holds (first items of lists)."""
    return [(path, reference) for path in schema_paths(kind)
            if (reference := reference_of(path)) is not None
            and isinstance(_present(body, path), str)]


@st.composite
def _rereferenced(draw: st.DrawFn, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """`body` with each reference it holds naming a present or a missing object."""
    body = copy.deepcopy(body)
    for path, reference in _references(kind, body):
        referenced = REFERENCED[reference]
        _set(body, path, draw(st.sampled_from([referenced.present, referenced.missing])))
    return body


def _resource(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": "generated"},
            "spec": spec}


def _bases(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    """The table's valid objects of `kind` (three times in four), and objects built from its
    schema alone (which rarely pass every CEL rule)."""
    from_schema = values(object_schema(kind)["properties"]["spec"], ("spec",)).map(
        lambda spec: _resource(kind, spec))
    table = [body for body in VALID_OBJECTS if body["kind"] == kind]
    if not table:
        return from_schema
    return st.sampled_from([st.sampled_from(table)] * 3 + [from_schema]).flatmap(lambda s: s)


@st.composite
def valid_looking(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    """A base object with up to three fields set to values the schema allows: mostly fields
    it has (a field it lacks often brings a second choice where one is allowed)."""
    body = draw(_bases(kind).flatmap(lambda base: _rereferenced(kind, base)))
    paths = schema_paths(kind)[1:]
    held = [path for path in paths if _present(body, path) is not None] or paths
    chosen = st.sampled_from([held, held, held, paths]).flatmap(st.sampled_from)
    for path in draw(st.lists(chosen, max_size=3)):
        _set(body, path, draw(values(node_at(kind, path), path)))
    return body


#: The constraints a mutation can break, by schema keyword.
_MUTABLE = ("type", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern",
            "format", "minItems", "maxItems", "maxProperties", "required")
_NOT_MATCHING = ("Not Valid!", "-", "UPPER_case", " ", "0")
#: Of the wrong type for the API server and for pydantic alike: the models are lax (pydantic's
#: default), so they would take "yes" for a boolean or "5" for an integer, which is harmless
#: because the operator reads only objects the API server stored, typed.
_WRONG_TYPES = {"string": 12345, "integer": "not-a-number", "number": "not-a-number",
                "boolean": "maybe", "array": "not-a-list", "object": "not-an-object"}


def constraints(kind: str) -> list[tuple[tuple[str, ...], str]]:
    """Every (schema path, keyword) under spec that a mutation can break."""
    found = []
    for path in schema_paths(kind):
        node = node_at(kind, path)
        for keyword in _MUTABLE:
            if keyword == "type" and node.get("type") in _WRONG_TYPES:
                found.append((path, keyword))
            elif keyword == "format" and node.get("format") == "date-time":
                found.append((path, keyword))
            elif keyword == "pattern" and "pattern" in node and _mismatch(node["pattern"]):
                found.append((path, keyword))
            elif keyword == "minLength" and node.get("minLength", 0) > 0:
                found.append((path, keyword))
            elif keyword == "minItems" and node.get("minItems", 0) > 0:
                found.append((path, keyword))
            elif keyword == "required" and node.get("required"):
                found.append((path, keyword))
            elif keyword in node and keyword in ("enum", "minimum", "maximum", "maxLength",
                                                 "maxItems", "maxProperties"):
                found.append((path, keyword))
    return found


def _mismatch(pattern: str) -> str | None:
    return next((s for s in _NOT_MATCHING if not re.search(pattern, s)), None)


@st.composite
def _breaking(draw: st.DrawFn, kind: str, path: tuple[str, ...], keyword: str) -> Any:
    """A value for `path` that breaks its `keyword`."""
    node = node_at(kind, path)
    if keyword == "type":
        return _WRONG_TYPES[node["type"]]
    if keyword == "enum":
        return draw(st.sampled_from(["NotInTheEnum", "critical!", ""]).filter(
            lambda value: value not in node["enum"]))
    if keyword == "minimum":
        return node["minimum"] - 1
    if keyword == "maximum":
        return node["maximum"] + 1
    if keyword == "minLength":
        return ""
    if keyword == "maxLength":
        return "a" * (node["maxLength"] + 1)
    if keyword == "pattern":
        return _mismatch(node["pattern"])
    if keyword == "format":
        return draw(st.sampled_from(["not-a-time", "2026-13-01T00:00:00Z", "yesterday"]))
    if keyword == "minItems":
        return []
    if keyword == "maxItems":
        item = draw(values(node["items"], (*path, "[]")))
        return [copy.deepcopy(item) for _ in range(node["maxItems"] + 1)]
    if keyword == "maxProperties":
        value = draw(values(node["additionalProperties"], (*path, "*")))
        return {f"k{i}": value for i in range(node["maxProperties"] + 1)}
    raise ValueError(keyword)


@st.composite
def mutated(draw: st.DrawFn, kind: str) -> Example:
    """A valid-looking object with one schema constraint broken."""
    body = draw(valid_looking(kind))
    path, keyword = draw(st.sampled_from(constraints(kind)))
    if keyword == "required":
        node = _present(body, path)
        if not isinstance(node, dict):
            node = {}
            _set(body, path, node)
        node.pop(draw(st.sampled_from(node_at(kind, path)["required"])), None)
    else:
        _set(body, path, draw(_breaking(kind, path, keyword)))
    return Example(body, f"{'.'.join(path)}:{keyword}")


#: Name lengths besides the test's own names: the longest allowed, and one over.
NAME_LENGTHS = (63, 242, 243, 253, 254)


def examples(kind: str) -> st.SearchStrategy[Example]:
    """Three valid-looking objects for each mutated one; some with long names."""
    valid = st.builds(Example, valid_looking(kind), st.none(),
                      st.one_of(st.none(), st.none(), st.none(), st.sampled_from(NAME_LENGTHS)))
    return st.sampled_from([valid, valid, valid, mutated(kind)]).flatmap(lambda s: s)
