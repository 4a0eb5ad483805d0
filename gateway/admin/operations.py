"""The admin API's core operations (issue #16): requests and the approval queue here, the
certificate inventory in :mod:`gateway.admin.inventory`, templates, audit, status and tokens in
:mod:`gateway.admin.overview`.

Framework-neutral: each operation is a :class:`gateway.admin.plugin.AdminOperation` whose
handler takes an :class:`AdminCall` and returns an :class:`AdminReply` (or raises
:class:`AdminProblem`), so the shell's aiohttp router (:mod:`gateway.server.admin`) serves them
under ``/api/v1`` and the console calls the very same handlers. Everything a manager does goes
through :class:`gateway.service.EnrollmentService` (approve, deny, revoke) with the caller as
actor (``token:<name>``), so the audit trail names the token.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.admin.params import (
    CURSOR_PARAMETER,
    LIMIT_PARAMETER,
    decode_cursor,
    encode_cursor,
    limit_of,
    optional_text,
)
from gateway.admin.plugin import AdminCall, AdminOperation, AdminProblem, AdminReply, Role
from gateway.admin.tokens import AdminTokens
from gateway.admin.views import (
    audit_view,
    csr_view,
    page_schema,
    ref,
    request_view,
    template_summary,
)
from gateway.clock import Clock
from gateway.errors import CertgateError, Conflict, NotFound
from gateway.model import Denied, Issued, Outcome, RequestRecord, RequestState
from gateway.service import EnrollmentService
from gateway.store import SQLStore

#: Request states as the ``state`` filter takes them (gateway.model.RequestState values).
REQUEST_STATES = [s.value for s in RequestState]


@dataclass(frozen=True)
class AdminCore:
    """What the core operations use: the service (and through it policy and connectors),
    the store's searches, the tokens, the clock, and what the shell knows about itself
    (enabled protocols, listeners) for the status view."""

    service: EnrollmentService
    store: SQLStore
    tokens: AdminTokens
    clock: Clock
    protocols: Sequence[str] = ()
    listeners: Sequence[Mapping[str, Any]] = field(default_factory=list)
    version: str = ""


def ok(body: Any, status: int = 200) -> AdminReply:
    return AdminReply(status=status, body=body)


def json_response(schema: Mapping[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def path_parameter(name: str, description: str, pattern: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 255}
    if pattern is not None:
        schema["pattern"] = pattern
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
    }


def deleted_schema(key: str) -> dict[str, Any]:
    """The answer of a DELETE: the resource's ``key`` and ``deleted: true``."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [key, "deleted"],
        "properties": {key: {"type": "string"}, "deleted": {"type": "boolean"}},
    }


def query_parameter(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "string", "maxLength": 255, **schema},
    }


def json_body(schema: Mapping[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": dict(schema)}}}


def problem_of(exc: CertgateError) -> AdminProblem:
    """A service error as the API's problem (404, 409; anything else the caller's request
    cannot go through: 400)."""
    if isinstance(exc, NotFound):
        return AdminProblem(404, "Not found", exc.detail)
    if isinstance(exc, Conflict):
        return AdminProblem(409, "Conflict", exc.detail)
    return AdminProblem(400, "Bad request", exc.detail)


def outcome_view(outcome: Outcome) -> dict[str, Any]:
    if isinstance(outcome, Issued):
        return {"status": "issued", "serial": format(outcome.certificate.serial_number, "x")}
    if isinstance(outcome, Denied):
        return {
            "status": "denied",
            "code": outcome.code,
            "rule": outcome.rule,
            "detail": outcome.detail,
        }
    return {"status": "pending", "reason": outcome.reason.value}


OUTCOME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": {"type": "string", "enum": ["issued", "pending", "denied"]},
        "serial": {"type": "string"},
        "reason": {"type": "string"},
        "code": {"type": "string"},
        "rule": {"type": ["string", "null"]},
        "detail": {"type": "string"},
    },
}
DECISION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["request", "outcome"],
    "properties": {"request": ref("Request"), "outcome": OUTCOME_SCHEMA},
}
REQUEST_DETAIL_SCHEMA: dict[str, Any] = {
    "allOf": [
        ref("Request"),
        {
            "type": "object",
            "required": ["csr", "template_rules", "audit"],
            "properties": {
                "csr": ref("Csr"),
                "template_rules": {"oneOf": [ref("TemplateSummary"), {"type": "null"}]},
                "audit": {"type": "array", "items": ref("AuditEvent")},
            },
        },
    ]
}
REASON_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {"reason": {"type": "string", "maxLength": 1000}},
    "additionalProperties": False,
}
DENY_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["reason"],
    "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 1000}},
    "additionalProperties": False,
}


class RequestOperations:
    """The approval queue: list, show, approve, deny."""

    def __init__(self, core: AdminCore) -> None:
        self.core = core

    async def search(self, call: AdminCall) -> AdminReply:
        q = call.query
        key = decode_cursor(q, (datetime, str))
        state = optional_text(q, "state")
        page, more = await self.core.store.search_requests(
            states=[state] if state else [],
            protocol=optional_text(q, "protocol"),
            template=optional_text(q, "template"),
            requester=optional_text(q, "requester"),
            after=None if key is None else (key[0], key[1]),
            limit=limit_of(q),
        )
        nxt = encode_cursor(page[-1].created_at, page[-1].id) if more and page else None
        return ok({"items": [request_view(r) for r in page], "next": nxt})

    async def _get(self, request_id: str) -> RequestRecord:
        record = await self.core.store.get_request(request_id)
        if record is None:
            raise AdminProblem(404, "Not found", f"no request {request_id}")
        return record

    async def show(self, call: AdminCall) -> AdminReply:
        record = await self._get(call.path_params["id"])
        template = self.core.service.policy.templates.get(record.template)
        trail = await self.core.store.audit_events(record.id, limit=1000)
        return ok(
            {
                **request_view(record),
                "csr": csr_view(record.csr_der),
                "template_rules": None if template is None else template_summary(template),
                "audit": [audit_view(e) for e in trail],
            }
        )

    async def approve(self, call: AdminCall) -> AdminReply:
        request_id = call.path_params["id"]
        reason = (call.body or {}).get("reason") or ""
        try:
            outcome = await self.core.service.approve(request_id, call.actor)
        except CertgateError as exc:
            raise problem_of(exc) from None
        if reason:
            await self.core.store.audit(
                "request.approval-note",
                call.actor,
                request_id=request_id,
                detail={"reason": reason},
            )
        return await self._decided(request_id, outcome)

    async def deny(self, call: AdminCall) -> AdminReply:
        request_id = call.path_params["id"]
        reason = str((call.body or {}).get("reason") or "")
        try:
            outcome = await self.core.service.deny(request_id, call.actor, reason)
        except CertgateError as exc:
            raise problem_of(exc) from None
        # The service records request.denied as the gateway's transition; this names who.
        await self.core.store.audit(
            "request.denial-requested", call.actor, request_id=request_id, detail={"reason": reason}
        )
        return await self._decided(request_id, outcome)

    async def _decided(self, request_id: str, outcome: Outcome) -> AdminReply:
        record = await self._get(request_id)
        return ok({"request": request_view(record), "outcome": outcome_view(outcome)})

    def operations(self) -> list[AdminOperation]:
        rid = path_parameter("id", "request id")
        return [
            AdminOperation(
                "GET",
                "/requests",
                Role.VIEWER,
                "listRequests",
                "Enrollment requests, newest first",
                self.search,
                "requests",
                parameters=(
                    query_parameter("state", "only this state", enum=REQUEST_STATES),
                    query_parameter("protocol", "only this protocol (est, scep, acme, ...)"),
                    query_parameter("template", "only this template"),
                    query_parameter("requester", "requester principal contains this"),
                    LIMIT_PARAMETER,
                    CURSOR_PARAMETER,
                ),
                responses={"200": json_response(page_schema("#/components/schemas/Request"))},
            ),
            AdminOperation(
                "GET",
                "/requests/{id}",
                Role.VIEWER,
                "getRequest",
                "One request: its CSR, its template's rules and its audit trail",
                self.show,
                "requests",
                parameters=(rid,),
                responses={"200": json_response(REQUEST_DETAIL_SCHEMA)},
            ),
            AdminOperation(
                "POST",
                "/requests/{id}/approve",
                Role.APPROVER,
                "approveRequest",
                "Approve a request awaiting a certificate manager (it is then issued)",
                self.approve,
                "requests",
                parameters=(rid,),
                request_body=json_body(REASON_BODY, required=False),
                responses={"200": json_response(DECISION_SCHEMA)},
            ),
            AdminOperation(
                "POST",
                "/requests/{id}/deny",
                Role.APPROVER,
                "denyRequest",
                "Deny a request awaiting a certificate manager, with a reason",
                self.deny,
                "requests",
                parameters=(rid,),
                request_body=json_body(DENY_BODY),
                responses={"200": json_response(DECISION_SCHEMA)},
            ),
        ]


def core_operations(core: AdminCore) -> list[AdminOperation]:
    """Every core operation, for the router and the console."""
    from gateway.admin.inventory import CertificateOperations
    from gateway.admin.overview import OverviewOperations

    return [
        *RequestOperations(core).operations(),
        *CertificateOperations(core).operations(),
        *OverviewOperations(core).operations(),
    ]
