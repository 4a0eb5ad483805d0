"""/cacerts (RFC 7030 §4.1) and /csrattrs (§4.5, RFC 8951 §4, RFC 9908): unauthenticated
distribution of the CA chain and the template's CSR attributes (§4.1.2, §4.5 say SHOULD NOT
require client authentication)."""

from __future__ import annotations

from aiohttp import web

from protocols.est.context import EstContext
from protocols.est.csrattrs import template_csrattrs
from protocols.est.messages import (
    CSRATTRS,
    PKCS7_MIME,
    certs_only_body,
    encode_base64,
    encode_csrattrs,
)
from protocols.est.render import EstReply
from protocols.est.settings import LabelSettings
from protocols.est.tls import TransportFacts


async def cacerts(
    request: web.Request, est: EstContext, label: LabelSettings, transport: TransportFacts
) -> EstReply:
    """200 ``application/pkcs7-mime`` certs-only with the issuing chain of the label's template."""
    template = est.policy.template(label.template)
    chain = await est.service.ca_chain(template.connector)
    headers = {"Content-Transfer-Encoding": "base64"} if est.settings.send_cte_header else {}
    return EstReply(200, certs_only_body(chain), PKCS7_MIME, headers)


async def csrattrs(
    request: web.Request, est: EstContext, label: LabelSettings, transport: TransportFacts
) -> EstReply:
    """200 ``application/csrattrs`` rendered from the label's template; 204 when the label
    turns them off or the template asks for nothing (§4.5.2)."""
    if not label.csrattrs:
        return EstReply(204, b"", "text/plain")
    items = template_csrattrs(est.policy.template(label.template), pop_link=label.require_pop_link)
    if not items:
        return EstReply(204, b"", "text/plain")
    headers = {"Content-Transfer-Encoding": "base64"} if est.settings.send_cte_header else {}
    return EstReply(200, encode_base64(encode_csrattrs(items)), CSRATTRS, headers)
