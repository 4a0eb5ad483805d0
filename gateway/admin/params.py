"""Checking what an admin API caller sent against the operation's OpenAPI description.

Framework-neutral (the shell runs it before every handler, for core and plug-in operations
alike; the console may run it on its forms): query and path parameters by their schema
(integer ranges, enums, ISO 8601 dates and times, lengths), JSON bodies by a small subset of
JSON Schema (object, string, integer, boolean, array; required, enum, lengths, ranges,
additionalProperties). Every refusal is an :class:`AdminProblem` 400 naming the parameter or
the body member, so a client never sees a 500 for its input. Also the keyset cursors of the
list operations (opaque URL-safe text) and the parsers handlers use for parameters that
passed the check.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from gateway.admin.plugin import AdminProblem

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

#: The ``limit`` and ``cursor`` parameters of every list operation.
LIMIT_PARAMETER: Mapping[str, Any] = {
    "name": "limit",
    "in": "query",
    "required": False,
    "description": f"page size (default {DEFAULT_LIMIT})",
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
}
CURSOR_PARAMETER: Mapping[str, Any] = {
    "name": "cursor",
    "in": "query",
    "required": False,
    "description": "the `next` value of the previous page",
    "schema": {"type": "string", "maxLength": 512},
}


def bad(name: str, detail: str) -> AdminProblem:
    """A 400 problem about parameter or member ``name``."""
    return AdminProblem(400, "Bad request", f"{name}: {detail}")


# --- parameters ---------------------------------------------------------------------------


def parse_datetime(name: str, text: str) -> datetime:
    """ISO 8601 date or date-time; UTC unless it names its offset."""
    try:
        at = datetime.fromisoformat(text)
        return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)
    except ValueError:
        raise bad(
            name, f"{text[:64]!r} is not an ISO 8601 date or time (e.g. 2026-01-31T08:00:00Z)"
        ) from None
    except OverflowError:  # 9999-12-31T23:00-14:00 is in year 10000 in UTC
        raise bad(name, f"{text[:64]!r} is out of range") from None


def check_parameter(spec: Mapping[str, Any], value: str) -> None:
    """``value`` (as sent) against one OpenAPI parameter's ``schema``."""
    name = str(spec["name"])
    schema = spec.get("schema", {})
    if len(value) > 4096:
        raise bad(name, "too long")
    check_text(name, value)
    kind = schema.get("type", "string")
    if kind == "integer":
        try:
            number = int(value, 10)
        except ValueError:
            raise bad(name, f"{value[:32]!r} is not an integer") from None
        _check_range(name, number, schema)
    elif kind == "boolean":
        if value not in ("true", "false"):
            raise bad(name, "must be true or false")
    elif kind == "string":
        _check_string(name, value, schema)


def _check_range(name: str, number: int, schema: Mapping[str, Any]) -> None:
    low, high = schema.get("minimum"), schema.get("maximum")
    if (low is not None and number < low) or (high is not None and number > high):
        raise bad(name, f"must be between {low} and {high}, not {number}")


def check_text(name: str, value: str) -> None:
    """Text the database can store: UTF-8 encodable, without NUL (PostgreSQL refuses it)."""
    if "\x00" in value:
        raise bad(name, "contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise bad(name, "is not valid Unicode text") from None


def _check_string(name: str, value: str, schema: Mapping[str, Any]) -> None:
    check_text(name, value)
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        raise bad(name, f"{value[:64]!r} is not one of {', '.join(map(str, enum))}")
    if len(value) < schema.get("minLength", 0):
        raise bad(name, f"at least {schema['minLength']} characters")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise bad(name, f"at most {schema['maxLength']} characters")
    if schema.get("format") in ("date-time", "date"):
        parse_datetime(name, value)


def check_parameters(
    parameters: Sequence[Mapping[str, Any]],
    query: Mapping[str, str],
    path: Mapping[str, str],
) -> None:
    """Every declared query and path parameter: present when required, valid when given.
    Parameters nobody declared are ignored (as HTTP caches and proxies add some)."""
    for name, segment in path.items():  # declared or not, a path segment reaches the database
        check_text(name, segment)
    for spec in parameters:
        where = query if spec.get("in") == "query" else path if spec.get("in") == "path" else None
        if where is None:
            continue
        value = where.get(str(spec["name"]))
        if value is None:
            if spec.get("required"):
                raise bad(str(spec["name"]), "required")
            continue
        check_parameter(spec, value)


# --- JSON bodies ---------------------------------------------------------------------------

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def check_body(schema: Mapping[str, Any], value: Any, where: str = "body") -> None:
    """``value`` against a JSON Schema of the supported subset; a 400 naming the member."""
    kinds = schema.get("type")
    if kinds is not None:
        allowed = kinds if isinstance(kinds, list) else [kinds]
        ok = any(
            isinstance(value, _JSON_TYPES[k])
            and not (k in ("integer", "number") and isinstance(value, bool))
            for k in allowed
        )
        if not ok:
            raise bad(where, f"must be {' or '.join(allowed)}")
    if "enum" in schema and value not in schema["enum"]:
        raise bad(where, f"must be one of {', '.join(map(str, schema['enum']))}")
    if isinstance(value, str):
        _check_string(where, value, {k: v for k, v in schema.items() if k != "enum"})
    elif isinstance(value, int) and not isinstance(value, bool):
        _check_range(where, value, schema)
    elif isinstance(value, dict):
        for name in schema.get("required", ()):
            if name not in value:
                raise bad(f"{where}.{name}", "required")
        properties = schema.get("properties", {})
        for name, member in value.items():
            if name in properties:
                check_body(properties[name], member, f"{where}.{name}")
            elif schema.get("additionalProperties") is False:
                raise bad(f"{where}.{str(name)[:64]}", "unknown member")
    elif isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise bad(where, f"at most {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                check_body(schema["items"], item, f"{where}[{i}]")


def parse_json_body(raw: bytes) -> Any:
    """The request body as JSON (``None`` when empty); a 400 for anything else."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise bad("body", "not UTF-8 text") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        detail = getattr(exc, "msg", "too deeply nested")
        raise bad("body", f"not valid JSON ({detail})") from None


# --- handlers' parsers (after the check) ----------------------------------------------------


def limit_of(query: Mapping[str, str]) -> int:
    text = query.get("limit")
    if text is None:
        return DEFAULT_LIMIT
    check_parameter(LIMIT_PARAMETER, text)
    return int(text)


def optional_datetime(query: Mapping[str, str], name: str) -> datetime | None:
    text = query.get(name)
    return None if text is None else parse_datetime(name, text)


def optional_text(query: Mapping[str, str], name: str) -> str | None:
    text = query.get(name)
    return text if text else None


def encode_cursor(*key: Any) -> str:
    """An opaque cursor for a keyset position (datetimes as ISO 8601)."""
    plain = [k.isoformat() if isinstance(k, datetime) else k for k in key]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def decode_cursor(query: Mapping[str, str], shape: Sequence[type]) -> list[Any] | None:
    """The keyset position in ``cursor`` (``None`` when absent) of the given item types
    (``datetime``, ``str``, ``int``); a 400 naming ``cursor`` for anything else."""
    text = query.get("cursor")
    if not text:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        key = json.loads(raw)
        if not isinstance(key, list) or len(key) != len(shape):
            raise ValueError
        out: list[Any] = []
        for item, kind in zip(key, shape, strict=True):
            if kind is datetime:
                out.append(parse_datetime("cursor", str(item)))
            elif kind is int and isinstance(item, int) and not isinstance(item, bool):
                out.append(item)
            elif kind is str and isinstance(item, str):
                out.append(item)
            else:
                raise ValueError
        return out
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise bad("cursor", "not a cursor this API returned") from None


def matching(value: Any, name: str, pattern: str) -> str:
    """``value`` if it is a string matching ``pattern`` (a schema ``pattern``, which
    :func:`check_body` leaves to the handler), else a 400 naming ``name``."""
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        raise bad(name, f"must match {pattern}")
    check_text(name, value)
    return value


def body_fields(schema: Mapping[str, Any], body: Any) -> Mapping[str, Any]:
    """The JSON object body, checked against the request body ``schema`` as the shell checks
    it (a handler called otherwise is no less strict)."""
    if body is None:
        raise bad("body", "required (a JSON object)")
    check_body(schema, body)
    return cast("Mapping[str, Any]", body)


def keyset_page(items: list[Any], more: bool, last: Any) -> dict[str, Any]:
    """A list answer: the page and the cursor after its last item (``None``: the last page).
    Lists page by keyset, never by offset."""
    return {"items": items, "next": encode_cursor(*last) if more and items else None}


def keyset_page_schema(item: Mapping[str, Any]) -> dict[str, Any]:
    """The schema of a :func:`keyset_page` answer whose items follow ``item``."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["items", "next"],
        "properties": {
            "items": {"type": "array", "items": item},
            "next": {"type": ["string", "null"]},
        },
    }
