"""Certificate download (RFC 8555 §7.4.2): a PEM chain, end-entity first, with the
alternative chain (one that also carries the root) linked as ``rel="alternate"``."""

from __future__ import annotations

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.pkix import pem_chain
from protocols.acme import state_orders
from protocols.acme.base import Acme, handler
from protocols.acme.messages import Problem

PEM_CHAIN = "application/pem-certificate-chain"


def chains(leaf: x509.Certificate, issuers: tuple[x509.Certificate, ...]) -> list[bytes]:
    """Chain 0: leaf + issuers without a self-signed root; chain 1: leaf + every issuer."""
    trimmed = issuers
    if len(issuers) > 1 and issuers[-1].subject == issuers[-1].issuer:
        trimmed = issuers[:-1]
    out = [pem_chain((leaf, *trimmed))]
    if trimmed != issuers:
        out.append(pem_chain((leaf, *issuers)))
    return out


@handler
async def certificate(acme: Acme, request: web.Request) -> web.Response:
    signed = await acme.authenticate(request)
    me = signed.require_account()
    if not signed.post_as_get:
        raise Problem.malformed("a certificate is fetched with POST-as-GET (empty payload)")
    serial = request.match_info["serial"]
    owner = await acme.store.read(state_orders.order_for_certificate, serial)
    if owner is None:
        raise Problem.malformed("no such certificate", 404)
    if owner.account_id != me.id:
        raise Problem.unauthorized("this certificate belongs to another account")
    record = await acme.service.store.get_certificate(serial)
    if record is None:
        raise Problem.malformed("no such certificate", 404)
    template = acme.policy.templates.get(record.template)
    issuers = await acme.service.ca_chain(template.connector if template else None)
    if "application/pkix-cert" in request.headers.get("Accept", ""):
        # A single-certificate format: the issuer is linked as rel="up" (RFC 8555 §7.4.2).
        up = f'<{acme.context.external_url}/ca/issuing.crt>;rel="up"'
        der = record.certificate.public_bytes(serialization.Encoding.DER)
        return await acme.reply(request, der, links=[up], content_type="application/pkix-cert")
    variants = chains(record.certificate, issuers)
    try:
        index = int(request.match_info.get("alt", "0"))
        body = variants[index]
    except (ValueError, IndexError):
        raise Problem.malformed("no such alternate chain", 404) from None
    base = acme.url("cert", serial)
    links = [
        f'<{base if i == 0 else f"{base}/{i}"}>;rel="alternate"'
        for i in range(len(variants))
        if i != index
    ]
    return await acme.reply(request, body, links=links, content_type=PEM_CHAIN)
