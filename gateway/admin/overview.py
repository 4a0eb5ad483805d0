"""The admin API's templates, audit trail, status view and token management."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.admin.operations import (
    AdminCore,
    json_body,
    json_response,
    ok,
    path_parameter,
    problem_of,
    query_parameter,
)
from gateway.admin.params import (
    CURSOR_PARAMETER,
    LIMIT_PARAMETER,
    bad,
    decode_cursor,
    encode_cursor,
    limit_of,
    optional_datetime,
    optional_text,
)
from gateway.admin.plugin import AdminCall, AdminOperation, AdminProblem, AdminReply, Role
from gateway.admin.tokens import role_named
from gateway.admin.views import audit_view, page_schema, ref, template_summary, template_view
from gateway.durations import parse_duration
from gateway.errors import CertgateError
from gateway.model import PendingReason, RequestState

#: How long the status view waits for one connector's check.
CHECK_TIMEOUT = 5.0

STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["version", "protocols", "listeners", "connectors", "pending"],
    "properties": {
        "version": {"type": "string"},
        "protocols": {"type": "array", "items": {"type": "string"}},
        "listeners": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "tls"],
                "properties": {
                    "name": {"type": "string"},
                    "url": {"type": "string"},
                    "host": {"type": "string"},
                    "port": {"type": "integer"},
                    "tls": {"type": "boolean"},
                },
            },
        },
        "connectors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "ok", "detail"],
                "properties": {
                    "name": {"type": "string"},
                    "ok": {"type": "boolean"},
                    "detail": {"type": "string"},
                },
            },
        },
        "pending": {
            "type": "object",
            "required": ["approval", "ca"],
            "properties": {
                "approval": {"type": "integer", "minimum": 0},
                "ca": {"type": "integer", "minimum": 0},
            },
        },
    },
}
TOKEN_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["name", "role"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 64},
        "role": {"type": "string", "enum": ["viewer", "approver", "admin"]},
        "expires": {"type": "string", "maxLength": 32, "description": "duration, e.g. 30d"},
    },
    "additionalProperties": False,
}
NEW_TOKEN_SCHEMA: dict[str, Any] = {
    "allOf": [
        ref("Token"),
        {"type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}},
    ]
}


class OverviewOperations:
    def __init__(self, core: AdminCore) -> None:
        self.core = core

    # -- templates -------------------------------------------------------------------------

    async def templates(self, call: AdminCall) -> AdminReply:
        found = sorted(self.core.service.policy.templates.values(), key=lambda t: t.name)
        return ok({"items": [template_summary(t) for t in found], "next": None})

    async def template(self, call: AdminCall) -> AdminReply:
        name = call.path_params["name"]
        found = self.core.service.policy.templates.get(name)
        if found is None:
            raise AdminProblem(404, "Not found", f"no template {name[:80]!r}")
        return ok(template_view(found))

    # -- audit ---------------------------------------------------------------------------

    async def audit(self, call: AdminCall) -> AdminReply:
        q = call.query
        key = decode_cursor(q, (int,))
        event = optional_text(q, "event")
        page, more = await self.core.store.search_audit_page(
            events=[event] if event else [],
            actor=optional_text(q, "actor"),
            request_id=optional_text(q, "request_id"),
            serial=optional_text(q, "serial"),
            since=optional_datetime(q, "since"),
            until=optional_datetime(q, "until"),
            before_id=None if key is None else key[0],
            limit=limit_of(q),
        )
        nxt = encode_cursor(page[-1].id) if more and page else None
        return ok({"items": [audit_view(e) for e in page], "next": nxt})

    # -- status ----------------------------------------------------------------------------

    async def status(self, call: AdminCall) -> AdminReply:
        connectors = await asyncio.gather(
            *(self._check(name, c) for name, c in self.core.service.connectors.items())
        )
        store = self.core.store
        approval = await store.count_requests(RequestState.PENDING, PendingReason.APPROVAL)
        ca = await store.count_requests(RequestState.PENDING, PendingReason.CA)
        return ok(
            {
                "version": self.core.version,
                "protocols": list(self.core.protocols),
                "listeners": [dict(lst) for lst in self.core.listeners],
                "connectors": list(connectors),
                "pending": {"approval": approval, "ca": ca},
            }
        )

    async def _check(self, name: str, connector: Any) -> dict[str, Any]:
        try:
            await asyncio.wait_for(connector.check(), timeout=CHECK_TIMEOUT)
        except CertgateError as exc:
            return {"name": name, "ok": False, "detail": exc.detail}
        except TimeoutError:
            return {"name": name, "ok": False, "detail": f"no answer in {CHECK_TIMEOUT:g}s"}
        except Exception as exc:  # a health view reports a failing check, it does not fail
            return {"name": name, "ok": False, "detail": type(exc).__name__}
        return {"name": name, "ok": True, "detail": "ok"}

    # -- tokens --------------------------------------------------------------------------

    async def tokens(self, call: AdminCall) -> AdminReply:
        now = self.core.clock.now()
        found = await self.core.tokens.list_all()
        return ok({"items": [t.as_dict(now) for t in found], "next": None})

    async def create_token(self, call: AdminCall) -> AdminReply:
        body = call.body or {}
        expires = None
        if body.get("expires"):
            try:
                expires = parse_duration(str(body["expires"]))
            except ValueError as exc:
                raise bad("body.expires", str(exc)) from None
            except OverflowError:
                raise bad("body.expires", "too long") from None
        try:
            secret, record = await self.core.tokens.create(
                str(body["name"]), role_named(str(body["role"])), call.actor, expires
            )
        except CertgateError as exc:
            raise problem_of(exc) from None
        return ok({**record.as_dict(record.created_at), "token": secret}, status=201)

    async def revoke_token(self, call: AdminCall) -> AdminReply:
        try:
            record = await self.core.tokens.revoke(call.path_params["name"], call.actor)
        except CertgateError as exc:
            raise problem_of(exc) from None
        return ok(record.as_dict(self.core.clock.now()))

    def operations(self) -> list[AdminOperation]:
        return [
            AdminOperation(
                "GET",
                "/templates",
                Role.VIEWER,
                "listTemplates",
                "Certificate templates",
                self.templates,
                "templates",
                responses={
                    "200": json_response(page_schema("#/components/schemas/TemplateSummary"))
                },
            ),
            AdminOperation(
                "GET",
                "/templates/{name}",
                Role.VIEWER,
                "getTemplate",
                "One certificate template, every setting",
                self.template,
                "templates",
                parameters=(path_parameter("name", "template name"),),
                responses={"200": json_response(ref("Template"))},
            ),
            AdminOperation(
                "GET",
                "/audit",
                Role.VIEWER,
                "listAuditEvents",
                "The audit trail, newest first",
                self.audit,
                "audit",
                parameters=(
                    query_parameter("event", "this event or dotted prefix (request, scep)"),
                    query_parameter("actor", "exactly this actor (token:NAME, cli:LOGIN)"),
                    query_parameter("request_id", "about this request"),
                    query_parameter("serial", "about this certificate serial (hex)"),
                    query_parameter("since", "at or after this time", format="date-time"),
                    query_parameter("until", "before this time", format="date-time"),
                    LIMIT_PARAMETER,
                    CURSOR_PARAMETER,
                ),
                responses={"200": json_response(page_schema("#/components/schemas/AuditEvent"))},
            ),
            AdminOperation(
                "GET",
                "/status",
                Role.VIEWER,
                "getStatus",
                "Protocols, listeners, connector health and the pending queues",
                self.status,
                "status",
                responses={"200": json_response(STATUS_SCHEMA)},
            ),
            AdminOperation(
                "GET",
                "/tokens",
                Role.ADMIN,
                "listTokens",
                "API tokens (never their secrets)",
                self.tokens,
                "tokens",
                responses={"200": json_response(page_schema("#/components/schemas/Token"))},
            ),
            AdminOperation(
                "POST",
                "/tokens",
                Role.ADMIN,
                "createToken",
                "Make a token; the answer is the only time its secret is shown",
                self.create_token,
                "tokens",
                request_body=json_body(TOKEN_BODY),
                responses={"201": json_response(NEW_TOKEN_SCHEMA, "Created")},
            ),
            AdminOperation(
                "DELETE",
                "/tokens/{name}",
                Role.ADMIN,
                "revokeToken",
                "Revoke a token at once",
                self.revoke_token,
                "tokens",
                parameters=(path_parameter("name", "token name"),),
                responses={"200": json_response(ref("Token"))},
            ),
        ]
