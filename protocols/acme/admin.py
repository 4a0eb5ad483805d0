"""ACME's resources in the admin API (/api/v1, admin role; issue #16): external account
binding keys (RFC 8555 §7.3.4): list, create (the HMAC key is answered once), delete.

The same keys as ``certgate acme eab ...`` (:func:`protocols.acme.eab.create_key`): the HMAC
key is stored sealed under the EAB encryption key and never listed.

The encryption key is ``[acme] eab_encryption_key`` when set, else ``<data dir>/acme-eab.key``,
which the ACME front-end makes at start-up, in the data directory the gateway serves
(:attr:`gateway.admin.plugin.AdminContext.data_dir`, ``serve --data`` included; a context
without one falls back to the directory the configuration file names). It is read and never
made here: a key made in the wrong place would seal HMAC keys the front-end cannot open.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.admin.operations import deleted_schema, json_response, path_parameter
from gateway.admin.params import (
    CURSOR_PARAMETER,
    LIMIT_PARAMETER,
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
    AdminProblem,
    AdminReply,
    Role,
)
from gateway.clock import Clock
from gateway.config import DEFAULTS, load_config
from gateway.errors import ConfigError
from gateway.ports import Transactions
from protocols.acme.eab import create_key
from protocols.acme.repository import AcmeRepository, open_repository
from protocols.acme.settings import eab_encryption_key

KID = r"^[A-Za-z0-9_-]{1,64}$"
#: The requester principal a key's accounts enroll as: printable, no control characters.
PRINCIPAL = r"^[^\u0000-\u001f\u007f]{1,1024}$"
TEMPLATE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
#: A pre-authorized name pattern (fnmatch): DNS characters, wildcards, IP literals.
DOMAIN = r"^[A-Za-z0-9*?.:\[\]_-]{1,253}$"


def _key_schema(**extra: Any) -> dict[str, Any]:
    """A key as answered: listed, or (``extra``: its ``hmac_key``) just made."""
    properties: dict[str, Any] = {
        "kid": {"type": "string"},
        "principal": {"type": "string"},
        "templates": {"type": "array", "items": {"type": "string"}},
        "domains": {"type": "array", "items": {"type": "string"}},
        "created_at": {"type": "string", "format": "date-time"},
        **extra,
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(properties),
        "properties": properties,
    }


_NEW_KEY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["principal"],
    "properties": {
        "principal": {"type": "string", "pattern": PRINCIPAL},
        "templates": {
            "type": "array",
            "maxItems": 100,
            "items": {"type": "string", "pattern": TEMPLATE},
            "description": "templates its accounts may use (empty: all)",
        },
        "domains": {
            "type": "array",
            "maxItems": 100,
            "items": {"type": "string", "pattern": DOMAIN},
            "description": "pre-authorized name patterns (fnmatch)",
        },
    },
}


def _view(key: dict[str, Any]) -> dict[str, Any]:
    """A stored key as listed: everything but the sealed secret."""
    created: datetime = key["created_at"]
    return {
        "kid": key["kid"],
        "principal": key["principal"],
        "templates": list(key["templates"]),
        "domains": list(key["domains"]),
        "created_at": created.isoformat(),
    }


class EncryptionKey:
    """The EAB encryption key, found on first use (see the module docstring)."""

    def __init__(self, settings: Any, config_file: str, data_dir: Path | None = None) -> None:
        self.ref = settings.get("eab_encryption_key")
        self.config_file = config_file
        self.data_dir = data_dir
        self._key: bytes | None = None

    def get(self) -> bytes:
        if self._key is None:
            data_dir = self.data_dir
            if data_dir is None:
                path = None if self.config_file == DEFAULTS else Path(self.config_file)
                data_dir = load_config(path).data_dir
            self._key = eab_encryption_key(self.ref, self.config_file, data_dir, create=False)
        return self._key


class AcmeAdmin:
    """The handlers, on ACME's repository (chosen as the front-end chooses it)."""

    def __init__(
        self,
        transactions: Transactions,
        repo: AcmeRepository,
        clock: Clock,
        key: EncryptionKey,
    ) -> None:
        self.transactions = transactions
        self.repo = repo
        self.clock = clock
        self.key = key

    async def list_keys(self, call: AdminCall) -> AdminReply:
        limit = limit_of(call.query)
        key = decode_cursor(call.query, [datetime, str])
        # Operators keep a handful of EAB keys: the repository lists them all, oldest first,
        # and the page is cut here by the keyset (created_at, kid).
        keys = sorted(
            await self.transactions.read(self.repo.list_eab_keys),
            key=lambda k: (k["created_at"], k["kid"]),
        )
        if key is not None:
            keys = [k for k in keys if (k["created_at"], k["kid"]) > (key[0], key[1])]
        chosen = keys[:limit]
        last = (chosen[-1]["created_at"], chosen[-1]["kid"]) if chosen else ()
        return AdminReply(body=keyset_page([_view(k) for k in chosen], len(keys) > limit, last))

    async def create_key(self, call: AdminCall) -> AdminReply:
        body = body_fields(_NEW_KEY, call.body)
        principal = matching(body["principal"], "body.principal", PRINCIPAL)
        templates = [matching(t, "body.templates", TEMPLATE) for t in body.get("templates", [])]
        domains = [matching(d, "body.domains", DOMAIN) for d in body.get("domains", [])]
        try:
            encryption_key = self.key.get()
        except ConfigError as exc:
            raise AdminProblem(409, "EAB keys unavailable", str(exc)) from None
        key = await create_key(
            self.transactions,
            self.repo,
            encryption_key,
            principal,
            templates,
            domains,
            self.clock.now(),
        )
        return AdminReply(
            status=201,
            body={
                "kid": key.kid,
                "hmac_key": key.hmac_key,
                "principal": key.principal,
                "templates": key.templates,
                "domains": key.domains,
                "created_at": key.created_at.isoformat(),
            },
        )

    async def delete_key(self, call: AdminCall) -> AdminReply:
        kid = matching(call.path_params.get("kid"), "kid", KID)
        if not await self.transactions.write(self.repo.delete_eab_key, kid):
            raise AdminProblem(404, "Not found", f"no EAB key {kid!r}")
        return AdminReply(body={"kid": kid, "deleted": True})


def register(context: AdminContext) -> list[AdminOperation]:
    """The ACME operations (entry point ``certgate.admin`` ``acme``)."""
    tx = context.transactions
    repo = open_repository(tx.dialect_name, raw_sqlite=tx.raw_sqlite)
    admin = AcmeAdmin(
        tx,
        repo,
        context.clock,
        EncryptionKey(context.settings, context.config_file, context.data_dir),
    )
    created = _key_schema(
        hmac_key={"type": "string", "description": "base64url; shown only in this answer"}
    )
    kid = path_parameter("kid", "EAB key id", KID)
    deleted = deleted_schema("kid")
    return [
        AdminOperation(
            method="GET",
            path="/acme/eab-keys",
            role=Role.ADMIN,
            operation_id="listAcmeEabKeys",
            summary="external account binding keys (never their HMAC keys)",
            handler=admin.list_keys,
            tag="acme",
            parameters=(LIMIT_PARAMETER, CURSOR_PARAMETER),
            responses={
                "200": json_response(keyset_page_schema(_key_schema()), "a page of keys"),
            },
        ),
        AdminOperation(
            method="POST",
            path="/acme/eab-keys",
            role=Role.ADMIN,
            operation_id="createAcmeEabKey",
            summary="create an external account binding key (its HMAC key is shown only here)",
            handler=admin.create_key,
            tag="acme",
            request_body={"required": True, "content": {"application/json": {"schema": _NEW_KEY}}},
            responses={
                "201": json_response(created, "the key, with its HMAC key shown once"),
            },
            audit="acme.eab.created",
        ),
        AdminOperation(
            method="DELETE",
            path="/acme/eab-keys/{kid}",
            role=Role.ADMIN,
            operation_id="deleteAcmeEabKey",
            summary="delete an external account binding key",
            handler=admin.delete_key,
            tag="acme",
            parameters=(kid,),
            responses={
                "200": json_response(deleted, "the key was deleted"),
            },
            audit="acme.eab.deleted",
        ),
    ]
