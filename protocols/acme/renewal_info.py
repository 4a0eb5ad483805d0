"""renewalInfo (RFC 9773 §4): the suggested renewal window of a certificate.

The window opens at the template's renewal rule (remaining validity <= min(20 % of the
lifetime, renewal period), :func:`gateway.policy.renewal_window`) and ends well before
notAfter (:func:`suggested_window`). A revoked certificate, or one whose template was
superseded or had its major version raised, gets a window that already ended, so clients renew
at once (RFC 9773 §4.2: "if the selected time is in the past, attempt renewal immediately").
"""

from __future__ import annotations

from datetime import datetime, timedelta

from aiohttp import web

from gateway.model import CertificateStatus
from protocols.acme.base import Acme, handler
from protocols.acme.messages import Problem, certificate_cert_id, parse_cert_id, rfc3339

URGENT = ("template superseded", "template major version bumped")
_DAY = timedelta(days=1)


def suggested_window(start: datetime, not_after: datetime) -> tuple[datetime, datetime]:
    """``(start, end)`` of the RFC 9773 §4.2 suggested window of a certificate whose renewal
    rule opens at ``start``.

    With the overlap ``O = not_after - start`` (the template rule: min(20 % of the lifetime,
    renewal period)), the window is ``W = max(2/3·O, min(1 day, 3/4·O))`` long and
    ``end = start + W``. Why: a window ending at notAfter lets a client that picks a random
    time in it (§4.2 step 2) and runs from a daily cron renew at the last moment, or miss the
    window and find the certificate expired. Ending early keeps at least a quarter (normally a
    third) of the overlap for retries after a failed renewal; and a client that runs once a
    day still gets a window of at least one day whenever ``O >= 32 h`` (a 7-day certificate,
    ``O = 33.6 h``, gets exactly one day, ending 9.6 h before expiry). ``end > start`` always
    (RFC 9773 §4.2: servers MUST NOT serve anything else).
    """
    overlap = max(not_after - start, timedelta(0))
    length = max(overlap * 2 / 3, min(_DAY, overlap * 3 / 4), timedelta(seconds=1))
    return start, start + length


@handler
async def renewal_info(acme: Acme, request: web.Request) -> web.Response:
    if request.method != "GET":
        raise Problem.malformed("renewalInfo is fetched with GET", 405)
    text = request.match_info["cert_id"]
    _, serial = parse_cert_id(text)
    record = await acme.records.get_certificate(format(serial, "x"))
    if record is None or certificate_cert_id(record.certificate) != text:
        raise Problem.malformed("the certificate is unknown to this server", 404)
    due = acme.service.renewal_of(record)
    now = acme.now()
    start, end = suggested_window(due.window_start, due.window_end)
    if record.status is CertificateStatus.REVOKED or due.reason in URGENT:
        start, end = now - timedelta(minutes=2), now - timedelta(minutes=1)
    retry = acme.settings.ari_retry_after
    body = {"suggestedWindow": {"start": rfc3339(start), "end": rfc3339(end)}}
    headers = {"Retry-After": str(retry), "Cache-Control": f"public, max-age={retry}"}
    return await acme.reply(request, body, headers=headers)
