"""Request-body validation against GitHub's OpenAPI description (3.0, `$ref` and `nullable`)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Keys of OpenAPI 3.0 schemas that are not JSON Schema and only carry documentation.
_DROPPED = frozenset(
    {"nullable", "example", "examples", "description", "discriminator", "externalDocs", "xml"}
)


@dataclass(frozen=True)
class Problem:
    """One failed constraint, shaped like an entry of GitHub's 422 `errors` list."""

    field: str
    code: str  # "missing_field" or "invalid", GitHub's codes
    message: str


class OpenApiSpec:
    """The operations of an OpenAPI file, by operationId, with their request-body validators."""

    def __init__(self, path: Path) -> None:
        # jsonschema is only needed when validation is asked for; `mlgate demo` runs without it.
        import jsonschema

        self._document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        self._validators: dict[str, Any] = {}
        self.docs: dict[str, str] = {}
        for _path, item in self._document.get("paths", {}).items():
            for operation in item.values():
                if not isinstance(operation, dict) or "operationId" not in operation:
                    continue
                op_id = operation["operationId"]
                url = operation.get("externalDocs", {}).get("url")
                if url:
                    self.docs[op_id] = url
                body = operation.get("requestBody", {}).get("content", {})
                schema = body.get("application/json", {}).get("schema")
                if schema is not None:
                    converted = self._convert(schema, ())
                    self._validators[op_id] = jsonschema.Draft4Validator(converted)

    @property
    def operation_ids(self) -> set[str]:
        """Every operationId in the file."""
        ids = set()
        for item in self._document.get("paths", {}).values():
            for operation in item.values():
                if isinstance(operation, dict) and "operationId" in operation:
                    ids.add(operation["operationId"])
        return ids

    def validate(self, operation_id: str, body: Any) -> list[Problem]:
        """Problems of `body` against the operation's request schema (none if it has none)."""
        validator = self._validators.get(operation_id)
        if validator is None:
            return []
        problems = []
        for error in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
            problems.append(_problem(error))
        return problems

    def validate_response(self, operation_id: str, status: int, body: Any) -> list[Problem]:
        """Problems of a response `body` against the operation's documented JSON response."""
        import jsonschema

        for item in self._document.get("paths", {}).values():
            for operation in item.values():
                if isinstance(operation, dict) and operation.get("operationId") == operation_id:
                    response = operation.get("responses", {}).get(str(status))
                    break
            else:
                continue
            break
        else:
            raise KeyError(f"no operation {operation_id}")
        if response is None:
            raise KeyError(f"{operation_id} documents no {status} response")
        if "$ref" in response:
            response = self._resolve(response["$ref"])
        content = response.get("content", {})
        media: dict[str, Any] = content.get("application/json") or next(iter(content.values()), {})
        schema = media.get("schema")
        if schema is None:
            return []
        validator = jsonschema.Draft4Validator(self._convert(schema, ()))
        return [_problem(e) for e in validator.iter_errors(body)]

    def _resolve(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise ValueError(f"only local $ref is supported, not {ref}")
        node: Any = self._document
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _convert(self, schema: Any, seen: tuple[str, ...]) -> Any:
        """OpenAPI 3.0 schema to a self-contained draft-4 JSON Schema."""
        if isinstance(schema, list):
            return [self._convert(s, seen) for s in schema]
        if not isinstance(schema, dict):
            return schema
        if "$ref" in schema:
            ref = schema["$ref"]
            if ref in seen:  # recursive schemas: stop validating deeper than one level
                return {}
            return self._convert(self._resolve(ref), (*seen, ref))
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key in _DROPPED or key.startswith("x-"):
                continue
            if key == "properties":
                out[key] = {name: self._convert(sub, seen) for name, sub in value.items()}
            elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
                out[key] = self._convert(value, seen)
            elif key in ("allOf", "anyOf", "oneOf"):
                out[key] = self._convert(value, seen)
            else:
                out[key] = value
        if schema.get("nullable") is True:
            if "type" in out:
                types = out["type"] if isinstance(out["type"], list) else [out["type"]]
                out["type"] = [*types, "null"]
                if "enum" in out:
                    out["enum"] = [*out["enum"], None]
            else:
                out = {"anyOf": [out, {"type": "null"}]}
        return out


def load_spec(path: Path) -> OpenApiSpec:
    """The spec at `path`, parsed once per process (it is read-only once built)."""
    resolved = path.resolve()
    return _load(str(resolved), resolved.stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int) -> OpenApiSpec:
    return OpenApiSpec(Path(path))


def _field(path: list[Any]) -> str:
    parts: list[str] = []
    for part in path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(f".{part}" if parts else str(part))
    return "".join(parts)


def _problem(error: Any) -> Problem:
    # anyOf/oneOf failures name no field; the closest sub-error does.
    if error.validator in ("anyOf", "oneOf") and error.context:
        import jsonschema.exceptions

        return _problem(jsonschema.exceptions.best_match(error.context))
    path = list(error.absolute_path)
    kind = error.validator
    value = error.validator_value
    if kind == "required":
        missing = [name for name in value if name not in error.instance]
        field = _field([*path, missing[0]]) if missing else _field(path)
        return Problem(field, "missing_field", f"{field} wasn't supplied.")
    field = _field(path) or "body"
    if kind == "maxLength":
        message = (
            f"{field} is too long (maximum is {value} characters); "
            f"{len(error.instance)} were supplied."
        )
    elif kind == "maxItems":
        message = (
            f"{field} has too many items (maximum is {value}); {len(error.instance)} were supplied."
        )
    elif kind == "type":
        message = f"{field} is not of type {value}."
    elif kind == "enum":
        allowed = ", ".join(json.dumps(v) for v in value)
        message = f"{field} is not a member of [{allowed}]."
    else:
        message = f"{field}: {str(error.message)[:200]}"
    return Problem(field, "invalid", message)
