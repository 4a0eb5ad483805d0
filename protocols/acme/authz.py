"""Authorizations and challenges (RFC 8555 §7.5, §7.5.1, §7.5.2, §8.2)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Any

from aiohttp import web

from protocols.acme import state
from protocols.acme.base import Acme, Signed, handler
from protocols.acme.messages import Problem, rfc3339
from protocols.acme.validation import ANSWER_BUDGET, RETRY_AFTER, validate_in_background


def challenge_json(acme: Acme, ch: state.Challenge) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": ch.type,
        "url": acme.url("chall", ch.id),
        "status": ch.status,
        "token": ch.token,
    }
    if ch.validated_at is not None:
        body["validated"] = rfc3339(ch.validated_at)
    if ch.error is not None:
        body["error"] = ch.error
    return body


def authz_json(acme: Acme, authz: state.Authz, status: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "identifier": {"type": authz.type, "value": authz.value},
        "status": status,
        "expires": rfc3339(authz.expires_at),
        "challenges": [
            challenge_json(acme, c)
            for c in authz.challenges
            if status != "valid" or c.status == "valid"  # §7.1.4: only the one that worked
        ],
    }
    if authz.wildcard:
        body["wildcard"] = True
    return body


async def _load_authz(
    acme: Acme, request: web.Request, signed: Signed, authz_id: str
) -> state.Authz:
    """A POST-as-GET reads in its nonce's transaction; a deactivation takes the nonce with
    its write."""
    me = signed.require_account()
    found: list[state.Authz]
    if signed.post_as_get:
        found = await acme.read(request, acme.repo.get_authzs, [authz_id], with_challenges=True)
    else:
        found = await acme.store.read(acme.repo.get_authzs, [authz_id], with_challenges=True)
    if not found:
        raise Problem.malformed("no such authorization", 404)
    if found[0].account_id != me.id:
        raise Problem.unauthorized("this authorization belongs to another account")
    return found[0]


def _retry(authz: state.Authz) -> dict[str, str]:
    busy = any(c.status == "processing" for c in authz.challenges)
    return {"Retry-After": str(RETRY_AFTER)} if busy else {}


@handler
async def authorization(acme: Acme, request: web.Request) -> web.Response:
    """POST-as-GET, or ``{"status": "deactivated"}`` (§7.5.2)."""
    signed = await acme.authenticate(request)
    authz = await _load_authz(acme, request, signed, request.match_info["id"])
    if not signed.post_as_get:
        if signed.payload().get("status") != "deactivated":
            raise Problem.malformed("the only status a client may set is 'deactivated'")
        if not await acme.write(
            request, acme.repo.set_authz_status, authz.id, "deactivated", ("pending", "valid")
        ):
            raise Problem.malformed(f"authorization is {authz.status}; cannot deactivate", 403)
        authz = (await acme.store.read(acme.repo.get_authzs, [authz.id], with_challenges=True))[0]
    status = authz.effective_status(acme.now())
    return await acme.reply(request, authz_json(acme, authz, status), headers=_retry(authz))


async def _answer_when_quick(
    acme: Acme, ch: state.Challenge, task: asyncio.Future[None]
) -> state.Challenge:
    """Wait up to :data:`ANSWER_BUDGET` for the validation (it keeps running if slower), then
    the challenge as stored: RFC 8555 §7.5.1 lets the POST answer ``valid``/``invalid`` when
    validation is done, and clients that sleep a fixed 5 s before polling finish at once."""
    await asyncio.wait({task}, timeout=ANSWER_BUDGET)
    if not task.done():
        return ch
    found = await acme.store.read(acme.repo.get_challenge, ch.id)
    return ch if found is None else found[0]


@handler
async def challenge(acme: Acme, request: web.Request) -> web.Response:
    """``{}`` starts validation (pending -> processing); anything else only reads (§7.5.1)."""
    signed = await acme.authenticate(request)
    me = signed.require_account()
    found = await acme.store.read(acme.repo.get_challenge, request.match_info["id"])
    if found is None:
        raise Problem.malformed("no such challenge", 404)
    if found[1].account_id != me.id:
        raise Problem.unauthorized("this challenge belongs to another account")
    ch, authz = found
    now = acme.now()
    if not signed.post_as_get:
        signed.payload()  # must be a JSON object ({}); unknown members are ignored
        if ch.status == "pending" and authz.effective_status(now) == "pending":
            if acme.testing.acme_always_valid:
                valid_until = now + timedelta(seconds=acme.settings.valid_authz_lifetime)
                if await acme.write(
                    request, acme.repo.accept_challenge, ch.id, authz.id, now, valid_until
                ):
                    ch = replace(ch, status="valid", validated_at=now)
            else:
                lease = now + timedelta(seconds=acme.settings.validation_timeout * 3)
                if await acme.write(request, acme.repo.start_challenge, ch.id, lease):
                    ch = replace(ch, status="processing")
                    task = acme.spawn(validate_in_background(acme, ch.id, me))
                    ch = await _answer_when_quick(acme, ch, task)
    headers = {"Retry-After": str(RETRY_AFTER)} if ch.status == "processing" else {}
    up = f'<{acme.url("authz", authz.id)}>;rel="up"'
    return await acme.reply(request, challenge_json(acme, ch), headers=headers, links=[up])
