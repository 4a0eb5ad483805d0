"""The directory and newNonce (RFC 8555 §7.1.1, §7.2; RFC 9773 §3; profiles §3)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from protocols.acme.base import Acme, handler
from protocols.acme.messages import Problem


def directory_json(acme: Acme, template: str | None) -> dict[str, Any]:
    profiles = [template] if template else list(acme.settings.profiles)
    meta: dict[str, Any] = {}
    if acme.settings.terms_of_service:
        meta["termsOfService"] = acme.settings.terms_of_service
    if acme.settings.website:
        meta["website"] = acme.settings.website
    if acme.settings.caa_identities:
        meta["caaIdentities"] = list(acme.settings.caa_identities)
    meta["externalAccountRequired"] = acme.settings.external_account_required
    meta["profiles"] = {name: acme.policy.template(name).display_name or name for name in profiles}
    return {
        "keyChange": acme.url("key-change"),
        "meta": meta,
        "newAccount": acme.url("new-account"),
        "newNonce": acme.url("new-nonce"),
        "newOrder": acme.url(template, "new-order") if template else acme.url("new-order"),
        "renewalInfo": acme.url("renewal-info"),
        "revokeCert": acme.url("revoke-cert"),
    }


@handler
async def directory(acme: Acme, request: web.Request) -> web.Response:
    template = request.match_info.get("template")
    if template is not None and template not in acme.settings.profiles:
        raise Problem.malformed(f"no ACME directory for template {template!r}", 404)
    if template is not None:
        request["acme_directory"] = acme.url(template, "directory")
    return await acme.reply(request, directory_json(acme, template))


@handler
async def new_nonce(acme: Acme, request: web.Request) -> web.Response:
    """HEAD -> 200, GET -> 204; both with Replay-Nonce and Cache-Control: no-store (§7.2)."""
    request["acme_nonce"] = await acme.new_nonce()
    response = await acme.reply(request, b"", status=200 if request.method == "HEAD" else 204)
    response.headers["Cache-Control"] = "no-store"
    return response


@handler
async def terms(acme: Acme, request: web.Request) -> web.Response:
    """The ``instance`` page of a userActionRequired problem (RFC 8555 §7.3.3): where a person
    reads how to agree to the current terms of service."""
    url = acme.settings.terms_of_service
    if not url:
        raise Problem.malformed("this server has no terms of service", 404)
    text = (
        f"The terms of service of this ACME server are at:\n\n    {url}\n\n"
        "Read them. To agree, have your ACME client send newAccount, or an update of your\n"
        'existing account, with "termsOfServiceAgreed": true (RFC 8555 section 7.3).\n'
    )
    return await acme.reply(
        request, text.encode(), content_type="text/plain", links=[f'<{url}>;rel="terms-of-service"']
    )
