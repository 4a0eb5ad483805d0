"""`certgate acme eab ...` run as an operator would (the CLI's ``main``, in-process)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.acme_helpers import acme_config
from tests.helpers import certgate, init_gateway


def test_eab_create_prints_the_key_once_and_stores_it_encrypted(tmp_path: Path) -> None:
    cfg = acme_config(tmp_path)
    init_gateway(cfg)
    made = certgate(
        "acme",
        "eab",
        "create",
        "--principal",
        "team-a",
        "--templates",
        "acme-tls",
        "--domains",
        "*.corp.internal",
        "--json",
        "-c",
        str(cfg),
    )
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["kid"].startswith("kid-") and len(key["hmac_key"]) == 43
    listed = certgate("acme", "eab", "list", "--json", "-c", str(cfg))
    rows = json.loads(listed.stdout)
    assert [r["kid"] for r in rows] == [key["kid"]] and key["hmac_key"] not in listed.stdout
    assert rows[0]["templates"] == ["acme-tls"] and rows[0]["domains"] == ["*.corp.internal"]
    db = sqlite3.connect(tmp_path / "data" / "certgate.db")
    (secret,) = db.execute("select secret from acme_eab_keys").fetchone()
    from protocols.acme.messages import b64d

    assert b64d(key["hmac_key"]) not in bytes(secret)
    bad = certgate(
        "acme", "eab", "create", "--principal", "x", "--templates", "nope", "-c", str(cfg)
    )
    assert bad.returncode != 0
    assert certgate("acme", "eab", "delete", key["kid"], "-c", str(cfg)).returncode == 0
    assert json.loads(certgate("acme", "eab", "list", "--json", "-c", str(cfg)).stdout) == []


async def test_an_account_revoked_by_the_operator_gets_401(tmp_path: Path) -> None:
    import asyncio

    from tests.acme_helpers import Client, RealHTTP
    from tests.gateway_process import gateway_in_process
    from tests.helpers import free_port

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cfg = acme_config(tmp_path, port=port, external_url=base)
    init_gateway(cfg)
    http = RealHTTP(port)
    try:
        async with gateway_in_process(cfg, port=port, env={"CERTGATE_TESTING": "1"}):
            c = Client(http, base=base)  # type: ignore[arg-type]
            await c.get_directory()
            assert (await c.register()).status == 201
            account_id = (c.kid or "").rsplit("/", 1)[1]
            done = await asyncio.to_thread(
                certgate, "acme", "account", "revoke", account_id, "-c", str(cfg)
            )
            assert done.returncode == 0, done.stderr
            r = await c.post(c.kid or "")
            assert r.status == 401 and r.problem == "unauthorized"
            listed = await asyncio.to_thread(
                certgate, "acme", "account", "list", "--json", "-c", str(cfg)
            )
            assert json.loads(listed.stdout)[0]["status"] == "revoked"
    finally:
        await http.close()
