"""The admin API's certificate inventory: search, show, PEM, revoke, and the expiry chart."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization

from gateway.admin.operations import (
    AdminCore,
    json_body,
    json_response,
    ok,
    path_parameter,
    problem_of,
    query_parameter,
)
from gateway.admin.params import (
    CURSOR_PARAMETER,
    LIMIT_PARAMETER,
    decode_cursor,
    encode_cursor,
    limit_of,
    optional_datetime,
    optional_text,
)
from gateway.admin.plugin import AdminCall, AdminOperation, AdminProblem, AdminReply, Role
from gateway.admin.views import certificate_view, page_schema, ref
from gateway.errors import CertgateError
from gateway.model import CertificateRecord, CertificateStatus, RevocationReason

#: RFC 5280 §5.3.1 CRLReason names as the API takes them.
REVOCATION_REASONS = {
    "unspecified": RevocationReason.UNSPECIFIED,
    "keyCompromise": RevocationReason.KEY_COMPROMISE,
    "cACompromise": RevocationReason.CA_COMPROMISE,
    "affiliationChanged": RevocationReason.AFFILIATION_CHANGED,
    "superseded": RevocationReason.SUPERSEDED,
    "cessationOfOperation": RevocationReason.CESSATION_OF_OPERATION,
    "certificateHold": RevocationReason.CERTIFICATE_HOLD,
    "privilegeWithdrawn": RevocationReason.PRIVILEGE_WITHDRAWN,
    "aACompromise": RevocationReason.AA_COMPROMISE,
}
CERTIFICATE_STATUSES = ["valid", "expired", "revoked"]
MAX_WEEKS = 104
_HEX = re.compile(r"[0-9a-f]+")

REVOKE_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {"reason": {"type": "string", "enum": list(REVOCATION_REASONS)}},
    "additionalProperties": False,
}
EXPIRING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["items"],
    "properties": {
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["week_start", "count", "due"],
                "properties": {
                    "week_start": {"type": "string", "format": "date"},
                    "count": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "valid certificates expiring that week",
                    },
                    "due": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "valid certificates whose renewal window (the "
                        "template's renewal period, or at once for a superseded template or "
                        "a major-version bump) opens that week; already open: this week",
                    },
                },
            },
        }
    },
}


def normal_serial(text: str) -> str | None:
    """Hex serial as the inventory keys it (lower case, no colons or leading zeros), or
    ``None`` when it is not hex."""
    s = text.strip().lower().replace(":", "")
    if s.startswith("0x"):
        s = s[2:]
    if not s or len(s) > 64 or not _HEX.fullmatch(s):
        return None
    return s.lstrip("0") or "0"


def week_start(at: datetime) -> datetime:
    """Monday 00:00 UTC of the week ``at`` falls in."""
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


class CertificateOperations:
    def __init__(self, core: AdminCore) -> None:
        self.core = core

    async def search(self, call: AdminCall) -> AdminReply:
        q = call.query
        key = decode_cursor(q, (datetime, str))
        serial_text = optional_text(q, "serial")
        serial = None if serial_text is None else normal_serial(serial_text)
        if serial_text is not None and serial is None:
            return ok({"items": [], "next": None})  # no certificate has a non-hex serial
        now = self.core.clock.now()
        page, more = await self.core.store.search_certificates(
            now,
            q=optional_text(q, "q"),
            subject=optional_text(q, "subject"),
            san=optional_text(q, "san"),
            serial=serial,
            template=optional_text(q, "template"),
            status=optional_text(q, "status"),
            expires_before=optional_datetime(q, "expires_before"),
            expires_after=optional_datetime(q, "expires_after"),
            after=None if key is None else (key[0], key[1]),
            limit=limit_of(q),
        )
        nxt = encode_cursor(page[-1].not_before, page[-1].serial) if more and page else None
        return ok({"items": [certificate_view(c, now) for c in page], "next": nxt})

    async def _get(self, text: str) -> CertificateRecord:
        serial = normal_serial(text)
        record = None if serial is None else await self.core.store.get_certificate(serial)
        if record is None:
            raise AdminProblem(404, "Not found", f"no certificate with serial {text[:80]}")
        return record

    async def show(self, call: AdminCall) -> AdminReply:
        record = await self._get(call.path_params["serial"])
        return ok(certificate_view(record, self.core.clock.now()))

    async def pem(self, call: AdminCall) -> AdminReply:
        """The certificate, then its issuing chain when the default CA issued it."""
        record = await self._get(call.path_params["serial"])
        cert = record.certificate
        body = cert.public_bytes(serialization.Encoding.PEM)
        try:
            chain = await self.core.service.ca_chain()
        except CertgateError:
            chain = ()
        if chain and chain[0].subject == cert.issuer:
            body += b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
        return AdminReply(body=body, content_type="application/pem-certificate-chain")

    async def revoke(self, call: AdminCall) -> AdminReply:
        record = await self._get(call.path_params["serial"])
        reason = REVOCATION_REASONS[(call.body or {}).get("reason", "unspecified")]
        try:
            revoked = await self.core.service.revoke(record.serial, reason, call.actor)
        except CertgateError as exc:
            raise problem_of(exc) from None
        return ok(certificate_view(revoked, self.core.clock.now()))

    async def expiring(self, call: AdminCall) -> AdminReply:
        """Per week, this week first, for ``weeks`` weeks: the valid certificates expiring
        (``count``) and those falling due for renewal (``due``: the week their renewal
        window opens, as the service computes it for renewals and ARI; windows already open
        count in this week). Certificates a renewal has replaced are left out of both."""
        weeks = int(call.query.get("weeks") or 8)
        if not 1 <= weeks <= MAX_WEEKS:
            raise AdminProblem(400, "Bad request", f"weeks: must be between 1 and {MAX_WEEKS}")
        now = self.core.clock.now()
        first = week_start(now)
        starts = [first + timedelta(weeks=i) for i in range(weeks)]
        counts = dict.fromkeys(starts, 0)
        for at in await self.core.store.expiry_dates(now, starts[-1] + timedelta(weeks=1)):
            counts[week_start(at)] = counts.get(week_start(at), 0) + 1
        due = dict.fromkeys(starts, 0)
        horizon = starts[-1] + timedelta(weeks=1)
        valid = await self.core.store.list_certificates(CertificateStatus.VALID, limit=100_000)
        for record in valid:
            if record.superseded_by or record.not_after <= now:
                continue
            opens = self.core.service.renewal_of(record, now).window_start
            if opens < horizon:
                due[first if opens <= now else week_start(opens)] += 1
        items = [
            {"week_start": s.date().isoformat(), "count": counts[s], "due": due[s]} for s in starts
        ]
        return ok({"items": items})

    def operations(self) -> list[AdminOperation]:
        serial = path_parameter("serial", "serial number in hex (colons allowed)")
        return [
            AdminOperation(
                "GET",
                "/certificates",
                Role.VIEWER,
                "searchCertificates",
                "Search the certificate inventory, most recently issued first",
                self.search,
                "certificates",
                parameters=(
                    query_parameter("q", "subject, a SAN or the serial contains this"),
                    query_parameter("subject", "subject contains this"),
                    query_parameter("san", "a SAN contains this (e.g. dns:www.example.com)"),
                    query_parameter("serial", "exactly this serial (hex)"),
                    query_parameter("template", "only this template"),
                    query_parameter("status", "only this status", enum=CERTIFICATE_STATUSES),
                    query_parameter(
                        "expires_before", "expires before this time", format="date-time"
                    ),
                    query_parameter(
                        "expires_after", "expires at or after this time", format="date-time"
                    ),
                    LIMIT_PARAMETER,
                    CURSOR_PARAMETER,
                ),
                responses={"200": json_response(page_schema("#/components/schemas/Certificate"))},
            ),
            AdminOperation(
                "GET",
                "/certificates/expiring",
                Role.VIEWER,
                "expiringCertificates",
                "Certificates expiring and falling due for renewal per week (Monday 00:00 "
                "UTC), this week first: valid ones no renewal has replaced yet",
                self.expiring,
                "certificates",
                parameters=(
                    {
                        "name": "weeks",
                        "in": "query",
                        "required": False,
                        "description": "how many weeks (default 8)",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_WEEKS,
                            "default": 8,
                        },
                    },
                ),
                responses={"200": json_response(EXPIRING_SCHEMA)},
            ),
            AdminOperation(
                "GET",
                "/certificates/{serial}",
                Role.VIEWER,
                "getCertificate",
                "One certificate of the inventory",
                self.show,
                "certificates",
                parameters=(serial,),
                responses={"200": json_response(ref("Certificate"))},
            ),
            AdminOperation(
                "GET",
                "/certificates/{serial}/pem",
                Role.VIEWER,
                "getCertificatePem",
                "The certificate and its issuing chain as PEM",
                self.pem,
                "certificates",
                parameters=(serial,),
                responses={
                    "200": {
                        "description": "PEM certificate chain (RFC 8555 §9.1)",
                        "content": {
                            "application/pem-certificate-chain": {"schema": {"type": "string"}}
                        },
                    }
                },
            ),
            AdminOperation(
                "POST",
                "/certificates/{serial}/revoke",
                Role.APPROVER,
                "revokeCertificate",
                "Revoke a certificate (the CRL at /ca/crl lists it)",
                self.revoke,
                "certificates",
                parameters=(serial,),
                request_body=json_body(REVOKE_BODY, required=False),
                responses={"200": json_response(ref("Certificate"))},
            ),
        ]
