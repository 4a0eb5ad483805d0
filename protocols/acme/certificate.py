"""Certificate download (RFC 8555 §7.4.2): a PEM chain, end-entity first, with the
alternative chain (one that also carries the root) linked as ``rel="alternate"``.

Other formats by ``Accept`` (§7.4.2 "MAY request other formats"): ``application/pkcs7-mime``
is the chain as a certs-only CMS SignedData (DER, RFC 5751 / RFC 5652 §5.2) and
``application/pkix-cert`` the end-entity certificate alone (DER, RFC 2585) with its issuer
linked as ``rel="up"``. A missing ``Accept``, ``*/*`` or ``application/*`` gets PEM; 406
only when nothing the client accepts is offered.
"""

from __future__ import annotations

import math

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.pkix import pem_chain
from gateway.pkix.certsonly import certs_only_der
from protocols.acme.base import Acme, handler
from protocols.acme.messages import Problem

PEM_CHAIN = "application/pem-certificate-chain"
PKCS7 = "application/pkcs7-mime"
PKIX_CERT = "application/pkix-cert"
#: Offered types, in the server's order of preference (ties in the client's q-values).
OFFERED = (PEM_CHAIN, PKCS7, PKIX_CERT)


def negotiate(accept: str | None) -> str | None:
    """The media type to send for an ``Accept`` header (RFC 9110 §12.5.1), ``None`` when
    nothing offered is acceptable. Each offered type takes the q of the most specific range
    that matches it; the highest q wins, then a type the client named exactly over one it
    only matched by a wildcard, then the server's order."""
    if accept is None or not accept.strip():
        return PEM_CHAIN
    ranges: list[tuple[str, float]] = []
    for item in accept.split(","):
        media, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0  # an unreadable weight accepts nothing
                q = 0.0 if math.isnan(q) else min(max(q, 0.0), 1.0)
        if media:
            ranges.append((media.lower(), q))
    best: tuple[float, int, int] | None = None
    chosen = None
    for rank, offered in enumerate(OFFERED):
        matches = [
            (_specificity(media, offered), q)
            for media, q in ranges
            if _specificity(media, offered) >= 0
        ]
        if not matches:
            continue
        specificity, q = max(matches)
        if q <= 0:
            continue
        key = (q, specificity, -rank)
        if best is None or key > best:
            best, chosen = key, offered
    return chosen


def _specificity(media_range: str, offered: str) -> int:
    """2: the exact type, 1: ``type/*``, 0: ``*/*``, -1: no match."""
    if media_range == offered:
        return 2
    if media_range == offered.split("/")[0] + "/*":
        return 1
    return 0 if media_range == "*/*" else -1


def chain_lists(
    leaf: x509.Certificate, issuers: tuple[x509.Certificate, ...]
) -> list[tuple[x509.Certificate, ...]]:
    """Chain 0: leaf + issuers without a self-signed root; chain 1: leaf + every issuer."""
    trimmed = issuers
    if len(issuers) > 1 and issuers[-1].subject == issuers[-1].issuer:
        trimmed = issuers[:-1]
    out = [(leaf, *trimmed)]
    if trimmed != issuers:
        out.append((leaf, *issuers))
    return out


@handler
async def certificate(acme: Acme, request: web.Request) -> web.Response:
    signed = await acme.authenticate(request)
    me = signed.require_account()
    if not signed.post_as_get:
        raise Problem.malformed("a certificate is fetched with POST-as-GET (empty payload)")
    serial = request.match_info["serial"]
    owner = await acme.read(request, acme.repo.order_for_certificate, serial)
    if owner is None:
        raise Problem.malformed("no such certificate", 404)
    if owner.account_id != me.id:
        raise Problem.unauthorized("this certificate belongs to another account")
    media = negotiate(request.headers.get("Accept"))
    if media is None:
        offered = ", ".join(OFFERED)
        raise Problem.malformed(f"no acceptable certificate format; offered: {offered}", 406)
    record = await acme.records.get_certificate(serial)
    if record is None:
        raise Problem.malformed("no such certificate", 404)
    vary = {"Vary": "Accept"}
    if media == PKIX_CERT:
        # A single-certificate format: the issuer is linked as rel="up" (RFC 8555 §7.4.2).
        up = f'<{acme.external_url}/ca/issuing.crt>;rel="up"'
        der = record.certificate.public_bytes(serialization.Encoding.DER)
        return await acme.reply(request, der, links=[up], content_type=PKIX_CERT, headers=vary)
    template = acme.policy.templates.get(record.template)
    issuers = await acme.service.ca_chain(template.connector if template else None)
    variants = chain_lists(record.certificate, issuers)
    try:
        index = int(request.match_info.get("alt", "0"))
        chain = variants[index]
    except (ValueError, IndexError):
        raise Problem.malformed("no such alternate chain", 404) from None
    base = acme.url("cert", serial)
    links = [
        f'<{base if i == 0 else f"{base}/{i}"}>;rel="alternate"'
        for i in range(len(variants))
        if i != index
    ]
    if media == PKCS7:
        return await acme.reply(
            request, certs_only_der(chain), links=links, content_type=PKCS7, headers=vary
        )
    return await acme.reply(
        request, pem_chain(chain), links=links, content_type=PEM_CHAIN, headers=vary
    )
