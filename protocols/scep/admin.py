"""SCEP's resources in the admin API (/api/v1, admin role; issue #16): one-time challenge
passwords (NDES's mscep_admin page, RFC 8894 §2.4, §7.3).

POST makes one for an endpoint whose ``challenge = "otp"`` and answers it once (only its
SHA-256 is stored, as ``certgate scep otp create`` does: :func:`protocols.scep.otp.issue`);
GET lists what is stored about each, never the password.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from gateway.admin.operations import json_response
from gateway.admin.params import (
    CURSOR_PARAMETER,
    LIMIT_PARAMETER,
    bad,
    body_fields,
    decode_cursor,
    keyset_page,
    keyset_page_schema,
    limit_of,
    matching,
)
from gateway.admin.plugin import (
    AdminCall,
    AdminContext,
    AdminOperation,
    AdminReply,
    Role,
)
from gateway.clock import Clock
from gateway.durations import parse_duration
from gateway.ports import Transactions
from protocols.scep import otp
from protocols.scep.config import challenge_modes

#: Endpoint names as ``[scep.endpoints.<name>]`` allows them.
ENDPOINT = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
#: The principal a password is made for: printable, no control characters.
IDENTITY = r"^[^\u0000-\u001f\u007f]{1,1024}$"
TTL = r"^[1-9][0-9]{0,3}[smhd]$"

_TIME = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
_CHALLENGE = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "id",
        "endpoint",
        "identity",
        "created_by",
        "created_at",
        "expires_at",
        "used_at",
        "used_by",
    ],
    "properties": {
        "id": {"type": "string", "description": "first 16 hex digits of its SHA-256"},
        "endpoint": {"type": "string"},
        "identity": {"type": ["string", "null"]},
        "created_by": {"type": "string"},
        "created_at": _TIME,
        "expires_at": _TIME,
        "used_at": _TIME_OR_NULL,
        "used_by": {"type": ["string", "null"]},
    },
}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _view(c: otp.Challenge) -> dict[str, Any]:
    return {
        "id": c.id,
        "endpoint": c.endpoint,
        "identity": c.identity,
        "created_by": c.created_by,
        "created_at": c.created_at.isoformat(),
        "expires_at": c.expires_at.isoformat(),
        "used_at": _iso(c.used_at),
        "used_by": c.used_by,
    }


def _new_challenge(endpoints: list[str]) -> dict[str, Any]:
    """The request body: the schema names the endpoints that take a one-time password; with
    none, any name (and every call is refused naming the field)."""
    endpoint: dict[str, Any] = {"type": "string", "pattern": ENDPOINT}
    if endpoints:
        endpoint["enum"] = endpoints
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["endpoint"],
        "properties": {
            "endpoint": endpoint,
            "identity": {"type": ["string", "null"], "pattern": IDENTITY},
            "ttl": {"type": "string", "pattern": TTL, "default": "1h"},
        },
    }


class ScepAdmin:
    """The handlers, on SCEP's table and the endpoints that take one-time passwords."""

    def __init__(self, transactions: Transactions, clock: Clock, endpoints: list[str]) -> None:
        self.transactions = transactions
        self.clock = clock
        self.endpoints = endpoints
        self.new = _new_challenge(endpoints)

    async def list_challenges(self, call: AdminCall) -> AdminReply:
        limit = limit_of(call.query)
        key = decode_cursor(call.query, [datetime, str])
        after = None
        if key is not None:
            after = (key[0], matching(key[1], "cursor", r"^[0-9a-f]{16}$"))
        endpoint = call.query.get("endpoint")
        if endpoint is not None:
            matching(endpoint, "endpoint", ENDPOINT)
        # One more than the page: whether a next page exists, without counting the table.
        found = await otp.listed(self.transactions, endpoint, after, limit + 1)
        chosen = found[:limit]
        last = (chosen[-1].created_at, chosen[-1].id) if chosen else ()
        return AdminReply(body=keyset_page([_view(c) for c in chosen], len(found) > limit, last))

    async def create_challenge(self, call: AdminCall) -> AdminReply:
        body = body_fields(self.new, call.body)
        endpoint = matching(body["endpoint"], "body.endpoint", ENDPOINT)
        if endpoint not in self.endpoints:
            raise bad("body.endpoint", f"not an endpoint with challenge otp: {self.endpoints}")
        identity = body.get("identity")
        if identity is not None:
            identity = matching(identity, "body.identity", IDENTITY)
        text = matching(body.get("ttl", "1h"), "body.ttl", TTL)
        try:
            ttl: timedelta = parse_duration(text)
        except ValueError as exc:
            raise bad("body.ttl", str(exc)) from None
        created = await otp.issue(
            self.transactions, endpoint, identity, ttl, call.actor, self.clock.now()
        )
        return AdminReply(
            status=201,
            body={
                "challenge": created.password,
                "endpoint": created.endpoint,
                "identity": created.identity,
                "expires_at": created.expires_at.isoformat(),
            },
        )


def register(context: AdminContext) -> list[AdminOperation]:
    """The SCEP operations (entry point ``certgate.admin`` ``scep``)."""
    endpoints = sorted(
        name for name, mode in challenge_modes(context.settings).items() if mode == "otp"
    )
    admin = ScepAdmin(context.transactions, context.clock, endpoints)
    created = {
        "type": "object",
        "additionalProperties": False,
        "required": ["challenge", "endpoint", "identity", "expires_at"],
        "properties": {
            "challenge": {"type": "string"},
            "endpoint": {"type": "string"},
            "identity": {"type": ["string", "null"]},
            "expires_at": _TIME,
        },
    }
    endpoint_filter = {
        "name": "endpoint",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "pattern": ENDPOINT},
    }
    return [
        AdminOperation(
            method="GET",
            path="/scep/challenges",
            role=Role.ADMIN,
            operation_id="listScepChallenges",
            summary="one-time challenge passwords, newest first (metadata only, never one)",
            handler=admin.list_challenges,
            tag="scep",
            parameters=(endpoint_filter, LIMIT_PARAMETER, CURSOR_PARAMETER),
            responses={
                "200": json_response(keyset_page_schema(_CHALLENGE), "a page of challenges"),
            },
        ),
        AdminOperation(
            method="POST",
            path="/scep/challenges",
            role=Role.ADMIN,
            operation_id="createScepChallenge",
            summary="create a one-time challenge password (shown only in this answer)",
            handler=admin.create_challenge,
            tag="scep",
            request_body={"required": True, "content": {"application/json": {"schema": admin.new}}},
            responses={
                "201": json_response(created, "the password, shown once; only its SHA-256 is kept"),
            },
            audit=otp.EVENT_CREATED,
        ),
    ]
