"""renewalInfo (RFC 9773 §4): the suggested renewal window of a certificate.

The window is the template's renewal rule (remaining validity <= min(20 % of the lifetime,
renewal period), :func:`gateway.policy.renewal_window`). A revoked certificate, or one whose
template was superseded or had its major version raised, gets a window that already ended, so
clients renew at once (RFC 9773 §4.2: "if the end is in the past, renew immediately").
"""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from gateway.model import CertificateStatus
from protocols.acme.base import Acme, handler
from protocols.acme.messages import Problem, certificate_cert_id, parse_cert_id, rfc3339

URGENT = ("template superseded", "template major version bumped")


@handler
async def renewal_info(acme: Acme, request: web.Request) -> web.Response:
    if request.method != "GET":
        raise Problem.malformed("renewalInfo is fetched with GET", 405)
    text = request.match_info["cert_id"]
    _, serial = parse_cert_id(text)
    record = await acme.service.store.get_certificate(format(serial, "x"))
    if record is None or certificate_cert_id(record.certificate) != text:
        raise Problem.malformed("the certificate is unknown to this server", 404)
    due = acme.service.renewal_of(record)
    now = acme.now()
    start, end = due.window_start, due.window_end
    if record.status is CertificateStatus.REVOKED or due.reason in URGENT:
        start, end = now - timedelta(minutes=2), now - timedelta(minutes=1)
    retry = acme.settings.ari_retry_after
    body = {"suggestedWindow": {"start": rfc3339(start), "end": rfc3339(end)}}
    headers = {"Retry-After": str(retry), "Cache-Control": f"public, max-age={retry}"}
    return await acme.reply(request, body, headers=headers)
