"""EST's resources in the admin API (/api/v1, admin role; issue #16): HTTP Basic users (list,
add, delete) and one-time enrollment codes (create; the code is shown once).

The same state as ``certgate est user ...`` and ``certgate est code create``
(:class:`protocols.est.state.EstState`): passwords are stored as scrypt hashes, codes as
SHA-256, and no answer ever lists either. Every input is checked here against the schema this
module publishes, and refused with a 400 naming the field.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gateway.admin.operations import deleted_schema, json_response, path_parameter
from gateway.admin.params import (
    CURSOR_PARAMETER,
    LIMIT_PARAMETER,
    bad,
    body_fields,
    check_text,
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
    AdminProblem,
    AdminReply,
    Role,
)
from gateway.durations import parse_duration
from gateway.errors import Conflict
from protocols.est.settings import label_names
from protocols.est.state import EstState, User

#: User names the API takes: a safe path segment, never ``:`` (RFC 7617 §2: the user-id of
#: Basic authentication cannot contain a colon).
USERNAME = r"^[A-Za-z0-9][A-Za-z0-9._@+=~-]{0,254}$"
GROUP = r"^[A-Za-z0-9][A-Za-z0-9._@+=~-]{0,63}$"
#: A principal name: printable, no control characters.
PRINTABLE = r"^[^\u0000-\u001f\u007f]{1,255}$"
TTL = r"^[1-9][0-9]{0,3}[smhd]$"
_MAX_PASSWORD = 1024

_USER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["username", "groups"],
    "properties": {
        "username": {"type": "string"},
        "groups": {"type": "array", "items": {"type": "string"}},
    },
}

_NEW_USER: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["username", "password"],
    "properties": {
        "username": {"type": "string", "pattern": USERNAME},
        "password": {
            "type": "string",
            "minLength": 1,
            "maxLength": _MAX_PASSWORD,
            "pattern": "^[^\\u0000]+$",
        },
        "groups": {
            "type": "array",
            "maxItems": 64,
            "items": {"type": "string", "pattern": GROUP},
        },
        "replace": {"type": "boolean", "default": False},
    },
}


def _new_code(labels: frozenset[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["identity"],
        "properties": {
            "identity": {"type": "string", "pattern": PRINTABLE},
            "label": {"type": "string", "enum": sorted(labels), "default": ""},
            "ttl": {"type": "string", "pattern": TTL, "default": "24h"},
        },
    }


def _view(user: User) -> dict[str, Any]:
    return {"username": user.username, "groups": list(user.groups)}


class EstAdmin:
    """The handlers, on one :class:`EstState` and the configured labels."""

    def __init__(self, state: EstState, labels: frozenset[str]) -> None:
        self.state = state
        self.new_code = _new_code(labels)

    async def list_users(self, call: AdminCall) -> AdminReply:
        limit = limit_of(call.query)
        key = decode_cursor(call.query, [str])
        # One more than the page: whether a next page exists, without counting the table.
        users = await self.state.list_users(key[0] if key else None, limit + 1)
        chosen = users[:limit]
        last = (chosen[-1].username,) if chosen else ()
        return AdminReply(body=keyset_page([_view(u) for u in chosen], len(users) > limit, last))

    async def add_user(self, call: AdminCall) -> AdminReply:
        body = body_fields(_NEW_USER, call.body)
        username = matching(body["username"], "body.username", USERNAME)
        password: str = body["password"]
        check_text("body.password", password)
        groups = [matching(g, "body.groups", GROUP) for g in body.get("groups", [])]
        try:
            await self.state.add_user(username, password, groups, body.get("replace", False))
        except Conflict:
            raise AdminProblem(409, "Conflict", f"EST user {username!r} exists") from None
        return AdminReply(status=201, body={"username": username, "groups": groups})

    async def delete_user(self, call: AdminCall) -> AdminReply:
        username = matching(call.path_params.get("username"), "username", USERNAME)
        if not await self.state.delete_user(username):
            raise AdminProblem(404, "Not found", f"no EST user {username!r}")
        return AdminReply(body={"username": username, "deleted": True})

    async def create_code(self, call: AdminCall) -> AdminReply:
        body = body_fields(self.new_code, call.body)
        identity = matching(body["identity"], "body.identity", PRINTABLE)
        label: str = body.get("label", "")
        ttl = _ttl(body.get("ttl", "24h"))
        code, record = await self.state.create_code(label, identity, ttl)
        return AdminReply(
            status=201,
            body={
                "code": code,
                "label": label,
                "identity": identity,
                "expires_at": record.expires_at.isoformat(),
            },
        )


def _ttl(value: Any) -> timedelta:
    text = matching(value, "body.ttl", TTL)
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise bad("body.ttl", str(exc)) from None


def register(context: AdminContext) -> list[AdminOperation]:
    """The EST operations (entry point ``certgate.admin`` ``est``)."""
    labels = label_names(context.settings)
    admin = EstAdmin(EstState(context.transactions, context.clock.now), labels)
    code = {
        "type": "object",
        "additionalProperties": False,
        "required": ["code", "label", "identity", "expires_at"],
        "properties": {
            "code": {"type": "string"},
            "label": {"type": "string"},
            "identity": {"type": "string"},
            "expires_at": {"type": "string", "format": "date-time"},
        },
    }
    username = path_parameter("username", "EST user name", USERNAME)
    deleted = deleted_schema("username")
    return [
        AdminOperation(
            method="GET",
            path="/est/users",
            role=Role.ADMIN,
            operation_id="listEstUsers",
            summary="EST HTTP Basic users and their groups (never a password)",
            handler=admin.list_users,
            tag="est",
            parameters=(LIMIT_PARAMETER, CURSOR_PARAMETER),
            responses={
                "200": json_response(keyset_page_schema(_USER), "a page of users"),
            },
        ),
        AdminOperation(
            method="POST",
            path="/est/users",
            role=Role.ADMIN,
            operation_id="addEstUser",
            summary="add (or, with replace, overwrite) an EST HTTP Basic user",
            handler=admin.add_user,
            tag="est",
            request_body={
                "required": True,
                "content": {"application/json": {"schema": _NEW_USER}},
            },
            responses={
                "201": json_response(_USER, "the user as stored (without the password)"),
            },
            audit="est.user.added",
        ),
        AdminOperation(
            method="DELETE",
            path="/est/users/{username}",
            role=Role.ADMIN,
            operation_id="deleteEstUser",
            summary="delete an EST HTTP Basic user",
            handler=admin.delete_user,
            tag="est",
            parameters=(username,),
            responses={
                "200": json_response(deleted, "the user was deleted"),
            },
            audit="est.user.deleted",
        ),
        AdminOperation(
            method="POST",
            path="/est/codes",
            role=Role.ADMIN,
            operation_id="createEstCode",
            summary="create a one-time enrollment code (shown only in this answer)",
            handler=admin.create_code,
            tag="est",
            request_body={
                "required": True,
                "content": {"application/json": {"schema": admin.new_code}},
            },
            responses={
                "201": json_response(code, "the code, shown once; only its SHA-256 is kept"),
            },
            audit="est.code.created",
        ),
    ]
