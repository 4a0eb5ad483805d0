"""The OpenAPI 3.1 document of the admin API, generated from its operations.

Every operation's own parameters, request body and success responses are copied as they are;
the shell adds what it does for all of them: the security requirement (bearer token or the
console cookie), and the problem documents (RFC 9457) it may answer instead: 400 for bad
parameters or bodies, 401, 403, 404 where a path names something, 409 for changing calls,
503 when the database is unreachable. So a schema-checking client finds every answer the
gateway can give described.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from gateway.admin.plugin import AdminOperation
from gateway.admin.views import SCHEMAS

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
    },
}
_PROBLEMS = {
    "400": (
        "Bad request: a parameter or the body is not valid (the problem's detail names it; "
        "text/plain when the HTTP server refuses an over-long request line or header)"
    ),
    "401": "No valid token (missing, unknown, expired or revoked)",
    "403": "The token's role does not allow this (or a console call lacks its CSRF header)",
    "404": "Not found",
    "409": "Conflicts with the recorded state (e.g. the request is not awaiting approval)",
    "503": "The database or the CA is unavailable; retry later",
}
_PATH_PARAM = re.compile(r"{([^}]+)}")


def problem_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def _operation(op: AdminOperation) -> dict[str, Any]:
    parameters = [dict(p) for p in op.parameters]
    declared = {p["name"] for p in parameters if p.get("in") == "path"}
    for name in _PATH_PARAM.findall(op.path):
        if name not in declared:
            parameters.append(
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            )
    statuses = ["400", "401", "403", "503"]
    if _PATH_PARAM.search(op.path):
        statuses.append("404")
    if op.method != "GET":
        statuses.append("409")
    responses: dict[str, Any] = {k: problem_response(_PROBLEMS[k]) for k in sorted(statuses)}
    # Refused by the HTTP server before any handler runs: a request line or header over its
    # limit (400), a body over [server] max_body_bytes (413); both answered in text/plain.
    responses["400"]["content"]["text/plain"] = {"schema": {"type": "string"}}
    if op.request_body is not None:
        responses["413"] = {
            "description": "The body is larger than [server] max_body_bytes",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    responses.update({str(k): v for k, v in op.responses.items()})
    doc: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "description": f"Role: {op.role.name.lower()} or above.",
        "security": [{"bearer": []}, {"console": []}],
        "responses": responses,
    }
    if parameters:
        doc["parameters"] = parameters
    if op.request_body is not None:
        doc["requestBody"] = dict(op.request_body)
    return doc


def openapi_document(operations: Iterable[AdminOperation], version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "certgate admin API",
            "version": version,
            "description": (
                "Approval queue, certificate inventory, audit trail and protocol "
                "credentials of a certgate gateway. Tokens: `certgate admin token create`."
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {**SCHEMAS, "Problem": PROBLEM_SCHEMA},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "console": {"type": "apiKey", "in": "cookie", "name": "certgate_console"},
            },
        },
    }
