"""A small JSON Schema checker for the keywords the OpenAPI document uses (the test suite
has no jsonschema package): type, enum, properties, required, additionalProperties, items,
maxItems, minimum, maximum, minLength, maxLength, pattern, anyOf and local $ref."""

from __future__ import annotations

import re
from typing import Any

TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, TYPES[kind])


def errors(value: Any, schema: dict[str, Any], root: dict[str, Any], at: str = "$") -> list[str]:
    """Where ``value`` breaks ``schema`` (empty when it conforms)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return errors(value, root["components"]["schemas"][name], root, at)
    if "anyOf" in schema:
        tried = [errors(value, s, root, at) for s in schema["anyOf"]]
        if all(tried):
            return [f"{at}: matches none of anyOf ({'; '.join(t[0] for t in tried)})"]
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(value, k) for k in kinds):
            return [f"{at}: {type(value).__name__} is not {'/'.join(kinds)}"]
    out = []
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{at}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        out += [f"{at}: {k} missing" for k in schema.get("required", []) if k not in value]
        extra = schema.get("additionalProperties", True)
        for k, v in value.items():
            if k in props:
                out += errors(v, props[k], root, f"{at}.{k}")
            elif extra is False:
                out.append(f"{at}: {k} not allowed")
            elif isinstance(extra, dict):
                out += errors(v, extra, root, f"{at}.{k}")
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append(f"{at}: more than {schema['maxItems']} items")
        for i, v in enumerate(value):
            out += errors(v, schema.get("items", {}), root, f"{at}[{i}]")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append(f"{at}: {value!r} does not match {schema['pattern']}")
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", 1 << 60):
            out.append(f"{at}: length {len(value)} out of bounds")
    if _is(value, "number"):
        if value < schema.get("minimum", float("-inf")) or value > schema.get("maximum", float("inf")):
            out.append(f"{at}: {value} out of bounds")
    return out
