"""The admin API under ``/api/v1``: operations (core and plug-in) mounted on the aiohttp app.

For every call, in order: authenticate (401), check the role (403) and, for a console cookie,
the CSRF header (403); check the parameters and the JSON body against the operation's
description (400 naming what is wrong); run the handler; record the operation's audit event
(actor ``token:<name>``) when it changed something; render the reply, or a problem document
(RFC 9457, ``application/problem+json``) for any refusal. Nothing the client sends leads to a
500: a handler's unexpected exception is logged with the request id and answered with a terse
problem document.

:class:`AdminApi` (``app[ADMIN_API]``) is also what the console uses: ``authenticate`` for its
cookie, ``invoke`` to run an operation by id with the same checks and audit.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from aiohttp import web

from gateway.admin.operations import json_response
from gateway.admin.params import check_body, check_parameters, parse_json_body
from gateway.admin.plugin import AdminCall, AdminOperation, AdminProblem, AdminReply, Role
from gateway.admin.tokens import AdminTokens
from gateway.clock import Clock
from gateway.errors import CAUnavailable, CertgateError, Conflict, NotFound, StoreUnavailable
from gateway.ports import Store
from gateway.server.admin.auth import Session, Unauthorized, authenticate, check_csrf
from gateway.server.admin.openapi import openapi_document

log = logging.getLogger("certgate.admin")

PREFIX = "/api/v1"
PROBLEM_TYPE = "urn:certgate:problem:"
_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "too-large",
    500: "internal",
    503: "unavailable",
}

#: The session of the call being handled (what ``whoami`` reports).
CURRENT_SESSION: contextvars.ContextVar[Session] = contextvars.ContextVar("admin_session")

WHOAMI_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "role", "expires_at", "csrf"],
    "properties": {
        "name": {"type": "string"},
        "role": {"type": "string", "enum": ["viewer", "approver", "admin"]},
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
        "csrf": {"type": ["string", "null"]},
    },
}


def problem(
    status: int, title: str, detail: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """An RFC 9457 problem document."""
    body = {
        "type": PROBLEM_TYPE + _SLUGS.get(status, str(status)),
        "title": title,
        "status": status,
        "detail": detail,
    }
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/problem+json",
        headers=dict(headers or {}),
    )


def problem_for_error(exc: CertgateError) -> AdminProblem:
    if isinstance(exc, NotFound):
        return AdminProblem(404, "Not found", exc.detail)
    if isinstance(exc, Conflict):
        return AdminProblem(409, "Conflict", exc.detail)
    if isinstance(exc, StoreUnavailable | CAUnavailable):
        return AdminProblem(503, "Service unavailable", exc.detail)
    return AdminProblem(400, "Bad request", exc.detail)


async def whoami(call: AdminCall) -> AdminReply:
    session = CURRENT_SESSION.get()
    expires = session.token.expires_at
    return AdminReply(
        body={
            "name": session.token.name,
            "role": session.token.role.name.lower(),
            "expires_at": None if expires is None else expires.isoformat(),
            "csrf": session.csrf,
        }
    )


WHOAMI = AdminOperation(
    "GET",
    "/whoami",
    Role.VIEWER,
    "whoami",
    "The calling token: name, role, expiry (and the console's CSRF value)",
    whoami,
    "session",
    responses={"200": json_response(WHOAMI_SCHEMA)},
)


class AdminApi:
    """The mounted operations (by operation id), the token store, and the checks every call
    goes through, for the router and the console."""

    def __init__(
        self,
        operations: Iterable[AdminOperation],
        tokens: AdminTokens,
        store: Store,
        version: str,
        *,
        other_ports: Iterable[int] = (),
        client_roles: Mapping[str, str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        #: Client certificate subjects (RFC 4514) -> role names (``[admin] client_roles``).
        self.client_roles = dict(client_roles or {})
        self.clock = clock
        #: Ports of the front-ends' own listeners (EST's): the API is the main listener's only.
        self.other_ports = frozenset(p for p in other_ports if p)
        self.operations: dict[str, AdminOperation] = {}
        for op in [WHOAMI, *operations]:
            if op.operation_id in self.operations:
                raise ValueError(f"admin operation {op.operation_id!r} is defined twice")
            self.operations[op.operation_id] = op
        self.tokens = tokens
        self.store = store
        self.document = openapi_document(self.operations.values(), version)
        self.document_json: bytes | None = None

    async def authenticate(self, request: web.Request) -> Session:
        """The caller's session or :class:`Unauthorized` (401)."""
        now = self.clock.now() if self.clock is not None else None
        return await authenticate(request, self.tokens, self.client_roles, now)

    async def invoke(
        self,
        op: AdminOperation | str,
        session: Session,
        path_params: Mapping[str, str],
        query: Mapping[str, str],
        body: Any,
    ) -> AdminReply:
        """Run one operation for ``session`` with the role, parameter and body checks and the
        audit event (raises :class:`AdminProblem` / :class:`CertgateError`)."""
        if isinstance(op, str):
            op = self.operations[op]
        if session.token.role < op.role:
            raise AdminProblem(
                403,
                "Forbidden",
                f"{op.operation_id} needs the {op.role.name.lower()} role; token "
                f"{session.token.name!r} has {session.token.role.name.lower()}",
            )
        check_parameters(op.parameters, query, path_params)
        if op.request_body is not None:
            schema = _body_schema(op)
            if body is None and op.request_body.get("required"):
                raise AdminProblem(400, "Bad request", "body: required (a JSON object)")
            if body is not None:
                check_body(schema, body)
        call = AdminCall(session.actor, session.token.role, dict(path_params), dict(query), body)
        token = CURRENT_SESSION.set(session)
        try:
            reply = await op.handler(call)
        finally:
            CURRENT_SESSION.reset(token)
        if op.audit and 200 <= reply.status < 300:
            detail = {"operation": op.operation_id, **path_params}
            await self.store.audit(op.audit, session.actor, detail=detail)
        return reply

    def handler(self, op: AdminOperation) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            if self.other_ports and _local_port(request) in self.other_ports:
                return problem(404, "Not found", "the admin API is on the main listener only")
            try:
                session = await self.authenticate(request)
                check_csrf(request, session)
                if session.token.role < op.role:  # before the body is even read
                    return await self._reply(request, op, session, None)
                body = None
                if op.request_body:
                    raw = await request.read()
                    body = parse_json_body(raw)
                    if body is None and raw.strip():  # a JSON null: a body, and not an object
                        check_body(_body_schema(op), None)
                return await self._reply(request, op, session, body)
            except Unauthorized as exc:
                return problem(401, exc.title, exc.detail, {"WWW-Authenticate": exc.challenge})
            except AdminProblem as exc:
                return problem(exc.status, exc.title, exc.detail)
            except CertgateError as exc:
                p = problem_for_error(exc)
                return problem(p.status, p.title, p.detail)

        return handle

    async def _reply(
        self, request: web.Request, op: AdminOperation, session: Session, body: Any
    ) -> web.Response:
        try:
            reply = await self.invoke(op, session, request.match_info, _single(request.query), body)
        except (AdminProblem, CertgateError, web.HTTPException):
            raise
        except Exception:
            log.exception(
                "admin operation %s failed (request id %s)",
                op.operation_id,
                request.get("request_id"),
            )
            return problem(
                500, "Internal error", f"internal error (request id {request.get('request_id')})"
            )
        headers = dict(reply.headers)
        if reply.content_type is not None:
            raw = reply.body if isinstance(reply.body, bytes) else str(reply.body).encode()
            return web.Response(
                status=reply.status, body=raw, content_type=reply.content_type, headers=headers
            )
        return web.json_response(reply.body, status=reply.status, headers=headers)


def _body_schema(op: AdminOperation) -> Mapping[str, Any]:
    """The JSON Schema of the operation's body (``{}``, anything, when it declares none)."""
    content = (op.request_body or {}).get("content", {})
    schema: Mapping[str, Any] = content.get("application/json", {}).get("schema", {})
    return schema


def _local_port(request: web.Request) -> int | None:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return int(sockname[1]) if isinstance(sockname, tuple) and len(sockname) >= 2 else None


def _single(query: Mapping[str, str]) -> dict[str, str]:
    """One value per parameter (the first, when a client repeats one)."""
    out: dict[str, str] = {}
    for key, value in query.items():
        out.setdefault(key, value)
    return out


async def _openapi(request: web.Request) -> web.Response:
    api = request.app[ADMIN_API]
    if api.document_json is None:  # serialised once: the operations never change
        api.document_json = json.dumps(api.document).encode()
    return web.Response(body=api.document_json, content_type="application/json")


async def _unknown(request: web.Request) -> web.Response:
    """404 for a path no operation has; 405 (with ``Allow``) for a method a path lacks."""
    path = request.path.removeprefix(PREFIX)
    allowed = sorted(
        {
            op.method
            for op in request.app[ADMIN_API].operations.values()
            if _template(op.path).fullmatch(path)
        }
    )
    if allowed and request.method not in allowed:
        headers = {"Allow": ", ".join(allowed)}
        detail = f"{request.method} is not allowed here (allowed: {headers['Allow']})"
        return problem(405, "Method not allowed", detail, headers)
    return problem(404, "Not found", f"no admin API resource {request.path[:200]}")


def _template(path: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(path)))


ADMIN_API: web.AppKey[AdminApi] = web.AppKey("admin_api", AdminApi)


def mount(app: web.Application, api: AdminApi) -> None:
    """Add the routes: static paths before parameterised ones (``/certificates/expiring``
    before ``/certificates/{serial}``), then a problem-document 404 for the rest of
    ``/api/v1``."""
    app[ADMIN_API] = api
    app.router.add_get(f"{PREFIX}/openapi.json", _openapi)
    ordered = sorted(api.operations.values(), key=lambda o: ("{" in o.path, o.path))
    for op in ordered:
        # Any segment but "/" (aiohttp's default pattern also refuses braces).
        route = re.sub(r"{([^}:]+)}", r"{\1:[^/]+}", op.path)
        if op.method == "GET":  # and HEAD (RFC 9110 §9.3.2): the same checks, no body
            app.router.add_get(PREFIX + route, api.handler(op))
        else:
            app.router.add_route(op.method, PREFIX + route, api.handler(op))
    app.router.add_route("*", PREFIX + "/{tail:.*}", _unknown)
