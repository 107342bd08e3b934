"""JSON Schema validators for the component schemas of the OpenAI and Anthropic API specs in
../shared/specs (OpenAPI 3.1, whose schemas are JSON Schema 2020-12)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import referencing
import referencing.jsonschema
import yaml

SPECS = Path(__file__).resolve().parents[2] / ".." / "shared" / "specs"
OPENAI_SPEC = SPECS / "openai-openapi.yaml"
ANTHROPIC_SPEC = SPECS / "anthropic-openapi.json"


def _nullable_to_2020(node: Any) -> Any:
    """Rewrites OpenAPI 3.0's `nullable: true`, which parts of the OpenAI spec still use, into
    JSON Schema 2020-12 (`null` allowed), so validators read the spec as its authors meant."""
    if isinstance(node, list):
        return [_nullable_to_2020(x) for x in node]
    if not isinstance(node, dict):
        return node
    node = {k: _nullable_to_2020(v) for k, v in node.items()}
    if node.pop("nullable", False) is True:
        if isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
            if "enum" in node and None not in node["enum"]:
                node["enum"] = [*node["enum"], None]
        elif isinstance(node.get("type"), list):
            if "null" not in node["type"]:
                node["type"] = [*node["type"], "null"]
        else:
            return {"anyOf": [node, {"type": "null"}]}
    return node


@functools.lru_cache(maxsize=None)
def _registry(path: Path) -> tuple[referencing.Registry, str]:
    text = path.read_text(encoding="utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec: Any = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=loader)
    spec = _nullable_to_2020(spec)
    uri = f"urn:spec:{path.name}"
    resource = referencing.Resource.from_contents(
        spec, default_specification=referencing.jsonschema.DRAFT202012
    )
    return referencing.Registry().with_resource(uri, resource), uri


def _validator(path: Path, schema_name: str) -> jsonschema.Draft202012Validator:
    if not path.is_file():
        import pytest

        pytest.skip(f"{path} not found (../shared/specs sits beside the repository)")
    registry, uri = _registry(path)
    schema = {"$ref": f"{uri}#/components/schemas/{schema_name}"}
    return jsonschema.Draft202012Validator(schema, registry=registry)


def openai_validator(schema_name: str) -> jsonschema.Draft202012Validator:
    """A validator for `#/components/schemas/<schema_name>` of OpenAI's spec."""
    return _validator(OPENAI_SPEC, schema_name)


def anthropic_validator(schema_name: str) -> jsonschema.Draft202012Validator:
    """A validator for `#/components/schemas/<schema_name>` of the Anthropic spec."""
    return _validator(ANTHROPIC_SPEC, schema_name)
