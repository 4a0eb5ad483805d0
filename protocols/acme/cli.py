"""``certgate acme eab create|list|delete``: external account binding keys (RFC 8555 §7.3.4)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from gateway.config import DEFAULTS
from protocols.acme import state
from protocols.acme.eab import new_hmac_key, new_kid, seal
from protocols.acme.messages import b64e
from protocols.acme.settings import parse_settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    acme = sub.add_parser("acme", parents=[common], help="ACME server administration")
    acme_sub = acme.add_subparsers(dest="acme_command", required=True)
    eab = acme_sub.add_parser("eab", parents=[common], help="external account binding keys")
    eab_sub = eab.add_subparsers(dest="eab_command", required=True)
    create = eab_sub.add_parser("create", parents=[common], help="create a key; prints it once")
    create.add_argument("--principal", required=True, help="requester principal for templates")
    create.add_argument("--templates", nargs="*", default=[], help="profiles it may use (all)")
    create.add_argument(
        "--domains", nargs="*", default=[], help="pre-authorized name patterns (fnmatch)"
    )
    create.set_defaults(func=cmd_eab_create)
    eab_sub.add_parser("list", parents=[common]).set_defaults(func=cmd_eab_list)
    delete = eab_sub.add_parser("delete", parents=[common])
    delete.add_argument("kid")
    delete.set_defaults(func=cmd_eab_delete)
    account = acme_sub.add_parser("account", parents=[common], help="ACME accounts")
    account_sub = account.add_subparsers(dest="account_command", required=True)
    account_sub.add_parser("list", parents=[common]).set_defaults(func=cmd_account_list)
    revoke = account_sub.add_parser("revoke", parents=[common], help="revoke an account")
    revoke.add_argument("id")
    revoke.set_defaults(func=cmd_account_revoke)


def _settings(components: Any) -> Any:
    config = components.config
    return parse_settings(
        config.protocols.get("acme", {}),
        config.file if config.file else DEFAULTS,
        default_template=config.default_template,
        templates=components.policy.templates,
        data_dir=config.data_dir,
    )


async def cmd_eab_create(components: Any, args: argparse.Namespace) -> int:
    settings = _settings(components)
    for name in args.templates:
        if name not in components.policy.templates:
            print(f"certgate: unknown template {name!r}")
            return 2
    kid, secret = new_kid(), new_hmac_key()
    sealed = seal(settings.eab_encryption_key, kid, secret)
    await components.store.write(
        state.put_eab_key,
        kid,
        args.principal,
        list(args.templates),
        list(args.domains),
        sealed,
        datetime.now(UTC),
    )
    data = {
        "kid": kid,
        "hmac_key": b64e(secret),
        "principal": args.principal,
        "templates": list(args.templates),
        "domains": list(args.domains),
    }
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(f"kid:      {kid}\nhmac key: {data['hmac_key']}\n(the HMAC key is shown only once)")
    return 0


async def cmd_eab_list(components: Any, args: argparse.Namespace) -> int:
    keys = await components.store.read(state.list_eab_keys)
    if args.json:
        print(json.dumps(keys, indent=2, sort_keys=True, default=str))
    else:
        for k in keys:
            print(
                f"{k['kid']}  {k['principal']}  templates={k['templates']} domains={k['domains']}"
            )
    return 0


async def cmd_eab_delete(components: Any, args: argparse.Namespace) -> int:
    found = await components.store.write(state.delete_eab_key, args.kid)
    print("deleted" if found else f"certgate: no EAB key {args.kid!r}")
    return 0 if found else 1


async def cmd_account_list(components: Any, args: argparse.Namespace) -> int:
    accounts = await components.store.read(state.list_accounts)
    if args.json:
        print(json.dumps(accounts, indent=2, sort_keys=True, default=str))
    else:
        for a in accounts:
            print(f"{a['id']}  {a['status']}  {','.join(a['contact'])}  eab={a['eab_kid'] or '-'}")
    return 0


async def cmd_account_revoke(components: Any, args: argparse.Namespace) -> int:
    done = await components.store.write(state.revoke_account, args.id)
    if done:
        await components.store.audit("acme.account.revoked", "cli", detail={"account": args.id})
    print("revoked" if done else f"certgate: no valid account {args.id!r}")
    return 0 if done else 1
