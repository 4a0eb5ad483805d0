"""What ``certgate acme ...`` does (the command tree is :mod:`protocols.acme.cli`)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from gateway.cli.common import actor, emit, table, ts
from gateway.config import DEFAULTS
from gateway.errors import NotFound, UnknownTemplate
from protocols.acme.eab import create_key
from protocols.acme.repository import AcmeRepository, open_repository
from protocols.acme.settings import parse_settings


def _settings(components: Any) -> Any:
    config = components.config
    return parse_settings(
        config.protocols.get("acme", {}),
        config.file if config.file else DEFAULTS,
        default_template=config.default_template,
        templates=components.policy.templates,
        data_dir=config.data_dir,
    )


def _repo(components: Any) -> AcmeRepository:
    """The ACME repository for the command's store, chosen by its dialect and its
    repository choice (``raw_sqlite``), as the front-end chooses it."""
    store = components.store
    return open_repository(store.dialect_name, raw_sqlite=store.raw_sqlite)


async def cmd_eab_create(components: Any, args: argparse.Namespace) -> int:
    settings = _settings(components)
    for name in args.templates:
        if name not in components.policy.templates:
            raise UnknownTemplate(name)
    key = await create_key(
        components.store,
        _repo(components),
        settings.eab_encryption_key,
        args.principal,
        list(args.templates),
        list(args.domains),
        datetime.now(UTC),
    )
    data = {
        "kid": key.kid,
        "hmac_key": key.hmac_key,
        "principal": key.principal,
        "templates": key.templates,
        "domains": key.domains,
    }
    human = f"kid:      {key.kid}\nhmac key: {key.hmac_key}\n(the HMAC key is shown only once)"
    emit(args, data, human)
    return 0


async def cmd_eab_list(components: Any, args: argparse.Namespace) -> int:
    keys = await components.store.read(_repo(components).list_eab_keys)
    rows = [
        (
            k["kid"],
            k["principal"],
            ",".join(k["templates"]) or "(all)",
            ",".join(k["domains"]),
            ts(k.get("created_at")),
        )
        for k in keys
    ]
    emit(args, keys, table(rows, ["KID", "PRINCIPAL", "TEMPLATES", "DOMAINS", "CREATED"]))
    return 0


async def cmd_eab_delete(components: Any, args: argparse.Namespace) -> int:
    if not await components.store.write(_repo(components).delete_eab_key, args.kid):
        raise NotFound(f"no EAB key {args.kid!r}")
    emit(args, {"kid": args.kid, "deleted": True}, f"deleted EAB key {args.kid}")
    return 0


async def cmd_account_list(components: Any, args: argparse.Namespace) -> int:
    accounts = await components.store.read(_repo(components).list_accounts)
    rows = [
        (a["id"], a["status"], ",".join(a["contact"]), a["eab_kid"] or "", ts(a["created_at"]))
        for a in accounts
    ]
    emit(args, accounts, table(rows, ["ID", "STATUS", "CONTACT", "EAB-KID", "CREATED"]))
    return 0


async def cmd_account_revoke(components: Any, args: argparse.Namespace) -> int:
    if not await components.store.write(_repo(components).revoke_account, args.id):
        raise NotFound(f"no valid ACME account {args.id!r}")
    await components.store.audit("acme.account.revoked", actor(), detail={"account": args.id})
    emit(args, {"id": args.id, "status": "revoked"}, f"revoked ACME account {args.id}")
    return 0
