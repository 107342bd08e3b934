"""JSON Schema validators for the component schemas of the OpenAI and Anthropic API specs in
../shared/specs (OpenAPI 3.1, whose schemas are JSON Schema 2020-12)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Callable

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


try:
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the pinned SDK
    import httpx


class ValidatingTransport(httpx.HTTPTransport):
    """Reads every answer to a path ending in `path_suffix` whole, passes it to
    `check(status, content_type, body)`, which returns what is wrong with it, and gives the SDK
    an identical response. Problems are collected rather than raised (an exception here would
    reach the test as a connection error); a test fixture asserts there are none."""

    def __init__(self, path_suffix: str, check: Callable[[int, str, bytes], list[str]]) -> None:
        super().__init__()
        self.path_suffix = path_suffix
        self.check = check
        self.problems: list[str] = []
        self.checked = 0

    def handle_request(self, request):
        response = super().handle_request(request)
        if not request.url.path.endswith(self.path_suffix):
            return response
        body = response.read()
        response.close()
        self.problems.extend(
            self.check(response.status_code, response.headers.get("content-type", ""), body)
        )
        self.checked += 1
        headers = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")
        ]
        return httpx.Response(response.status_code, headers=headers, content=body)


def sse_data(body: str) -> list[tuple[str | None, str]]:
    """`(event name, data)` of each event of an SSE body (CRLF or LF framing)."""
    events = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[len("event:") :].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:") :].lstrip())
        if data:
            events.append((name, "\n".join(data)))
    return events
