"""``MSCESConnector``: certgate as a CES client (MS-WSTEP) in front of AD CS or another CES.

* ``submit(plan)`` sends ``plan.csr`` exactly as the client signed it (AD CS re-checks the
  request signature) with the AD CS template name from ``plan.connector_params
  ["adcs_template"]`` (else the certgate template name); certgate's policy has already decided.
* Issued -> :class:`Issued` (leaf from ``RequestedSecurityToken``, chain from the PKCS#7);
  pending -> :class:`ConnectorPending` with the CES ``RequestID``, which the core's poller later
  passes to :meth:`poll` (QueryTokenStatus); a CA refusal -> :class:`Denied` ``ca-denied`` with
  the decoded HRESULT; unreachable/timeouts -> :class:`CAUnavailable` with a retry hint.
  Faults are read whatever the HTTP status (AD CS, on WCF, sends every fault with 500).

Request ids (MS-WSTEP §3.1.4.1.2.4 ``wstep:RequestID``): AD CS answers with its database row id,
an unsigned 32-bit decimal; it is recorded as the request's ``ca_request_id`` (normalised:
``"0065"`` -> ``"65"``) and sent back as is in QueryTokenStatus (§3.1.4.2.1.2). Older certgate
CES servers answered with a UUID: such ids, already recorded, are polled verbatim. A pending
answer names in ``RequestedSecurityToken/SecurityTokenReference/Reference/@URI`` where to poll
(§3.1.4.1.3.2); the connector polls its configured ``url`` all the same, the one endpoint its
credentials are meant for (any CES of the CA answers for the CA's requests), and says so in
the log when the reference names another origin.

Idempotency per ``plan.request_id`` (the core resubmits after a crash):

1. an issued certificate is journaled before ``submit`` returns, and a resubmission returns it
   without contacting the CA;
2. every request carries ``ContextItem certgate-request-id = plan.request_id``; certgate's own
   CES front-end treats it as the transaction id, so a resubmission that reaches it returns the
   recorded outcome (issued, the same pending ``RequestID``, or the denial) and never issues
   twice;
3. AD CS ignores that item (it stores it as a request attribute). Remaining window there: a
   crash after AD CS answered and before the journal write or the core's pending record makes
   the core submit once more, so AD CS holds one extra request (and, if it issued, one extra
   certificate that certgate never hands out). The journal makes that window one HTTP
   round-trip wide.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable
from datetime import datetime
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from backends.ms_ces.client import SOAPClient
from backends.ms_ces.settings import AuthMode, CESSettings, parse_settings
from gateway.codecs.ms import hresults as hr
from gateway.codecs.ms.wstrust import (
    ACTION_RST,
    REQUEST_ISSUE,
    REQUEST_QUERY,
    VALUE_PKCS10,
    EnrollmentFault,
    TokenRequest,
    TokenResponse,
    build_envelope,
    build_request_body,
    parse_envelope,
    parse_reply,
)
from gateway.codecs.ms.xcep import (
    ACTION_GET_POLICIES,
    PolicyDocument,
    build_get_policies_body,
    parse_get_policies_response,
)
from gateway.errors import BadRequest, CAUnavailable, ConnectorError, ErrorCode
from gateway.model import (
    ConnectorOutcome,
    ConnectorPending,
    Denied,
    IssuancePlan,
    Issued,
    RevocationReason,
)
from gateway.pkix.certsonly import read_certs_only
from gateway.pkix.cms_algorithms import CMSError
from gateway.ports import ConnectorContext, IssuanceJournal

_T = TypeVar("_T")
log = logging.getLogger("certgate.connector.ms_ces")

REQUEST_ID_CONTEXT = "certgate-request-id"
#: AD CS request ids are unsigned 32-bit row ids; the store keeps at most 255 characters.
MAX_ADCS_REQUEST_ID = 2**32 - 1
MAX_CA_REQUEST_ID_CHARS = 255
#: HRESULTs that mean "the CA cannot answer now", not "the CA refused".
TRANSIENT = frozenset(
    {
        hr.code("RPC_S_SERVER_UNAVAILABLE"),
        hr.code("CERTSRV_E_SERVER_SUSPENDED"),
        hr.code("E_UNEXPECTED"),
        hr.code("E_FAIL"),
    }
)


class MSCESConnector:
    """A :class:`gateway.ports.CAConnector` speaking MS-WSTEP to a CES endpoint."""

    def __init__(self, context: ConnectorContext) -> None:
        self.name = context.name
        self.settings: CESSettings = parse_settings(
            context.name, context.settings, context.config_file
        )
        self._journal: IssuanceJournal = context.journal
        self._client = SOAPClient(self.settings)
        self._chain: tuple[x509.Certificate, ...] = ()
        self._foreign_references: set[str] = set()

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the issuer chain from ``issuer_chain``, else learn it from CEP."""
        if self._chain:
            return
        if self.settings.issuer_chain is not None:
            self._chain = _load_chain(self.settings.issuer_chain)
            if not self._chain:
                raise self.settings.error("issuer_chain", "no certificate in the file")
            return
        document = await self.fetch_policies()
        chain = tuple(x509.load_der_x509_certificate(ca.certificate) for ca in document.cas)
        if not chain:
            raise ConnectorError(f"CEP at {self.settings.policy_url} lists no CA")
        self._chain = chain[:1]

    async def close(self) -> None:
        await self._client.close()

    # -- CAConnector --------------------------------------------------------------------------

    async def submit(self, plan: IssuancePlan) -> ConnectorOutcome:
        known = await _journaled(self._journal.get(plan.request_id))
        if known is not None:
            return Issued(x509.load_der_x509_certificate(known), self._chain)
        context = {"CertificateTemplate": plan.connector_params.get("adcs_template", plan.template)}
        if self.settings.send_request_id:
            context[REQUEST_ID_CONTEXT] = plan.request_id
        request = TokenRequest(
            REQUEST_ISSUE,
            token=plan.csr.public_bytes(Encoding.DER),
            value_type=VALUE_PKCS10,
            context=context,
        )
        outcome = await self._call(request, plan.request_id)
        if isinstance(outcome, Issued):
            der = outcome.certificate.public_bytes(Encoding.DER)
            stored = await _journaled(self._journal.put(plan.request_id, der))
            if stored != der:  # another instance journaled first: hand out that one
                return Issued(x509.load_der_x509_certificate(stored), outcome.chain)
        return outcome

    async def poll(self, ca_request_id: str) -> ConnectorOutcome:
        """QueryTokenStatus (MS-WSTEP §3.1.4.2.1.2) for a request the CA put under submission,
        with the ``RequestID`` recorded at submission (a number; an older UUID verbatim)."""
        request = TokenRequest(REQUEST_QUERY, request_id=ca_request_id)
        return await self._call(request, None, polled=ca_request_id)

    async def revoke(self, serial: int, reason: RevocationReason, when: datetime) -> None:
        """MS-WSTEP has no revocation operation: revoke on the CA itself."""
        raise ConnectorError(
            f"connector {self.name}: CES cannot revoke; revoke serial {serial:x} on the AD CS"
        )

    async def ca_chain(self) -> tuple[x509.Certificate, ...]:
        return self._chain

    async def check(self) -> None:
        """Readiness: the CES endpoint answers HTTP at all (any SOAP fault counts as up)."""
        body = build_envelope(ACTION_RST, "<x/>", message_id=f"urn:uuid:{uuid.uuid4()}")
        await self._client.post(self.settings.url, ACTION_RST, body)

    # -- CEP (policy import and chain discovery) ----------------------------------------------

    async def fetch_policies(self, url: str | None = None) -> PolicyDocument:
        """GetPolicies from ``url`` (default ``policy_url``) with this connector's credentials."""
        target = url or self.settings.policy_url
        if not target:
            raise self.settings.error("policy_url", "is required to fetch policies")
        body = build_envelope(
            ACTION_GET_POLICIES,
            build_get_policies_body(),
            message_id=f"urn:uuid:{uuid.uuid4()}",
            to=target,
            username=self._username,
            password=self._password,
        )
        _, data = await self._client.post(target, ACTION_GET_POLICIES, body)
        try:
            envelope = parse_envelope(data)
            if envelope.body.tag.endswith("}Fault"):
                fault = parse_reply(data)
                raise ConnectorError(f"CEP at {target} answered a fault: {_describe(fault)}")
            return parse_get_policies_response(envelope)
        except BadRequest as exc:
            raise ConnectorError(f"CEP at {target} sent a malformed answer: {exc.detail}") from None

    # -- internals ----------------------------------------------------------------------------

    @property
    def _username(self) -> str | None:
        return self.settings.username if self.settings.auth is AuthMode.USERNAME else None

    @property
    def _password(self) -> str | None:
        return self.settings.password if self.settings.auth is AuthMode.USERNAME else None

    async def _call(
        self, request: TokenRequest, request_id: str | None, *, polled: str | None = None
    ) -> ConnectorOutcome:
        started = time.perf_counter()
        body = build_envelope(
            ACTION_RST,
            build_request_body(request),
            message_id=f"urn:uuid:{uuid.uuid4()}",
            to=self.settings.url,
            username=self._username,
            password=self._password,
        )
        status, data = await self._client.post(self.settings.url, ACTION_RST, body)
        try:
            reply = parse_reply(data)
        except BadRequest as exc:
            if status >= 500:  # a proxy's or a failing server's garbled error page: try later
                raise CAUnavailable(
                    f"CES answered HTTP {status} with a malformed body: {exc.detail}",
                    self.settings.retry_after,
                ) from None
            raise ConnectorError(f"CES sent a malformed answer: {exc.detail}") from None
        outcome = self._outcome(reply, polled)
        log.info(
            "ces %s %s -> %s (HTTP %d, %.1f ms)",
            "poll" if request.is_query else "submit",
            request.request_id or request_id,
            type(outcome).__name__,
            status,
            (time.perf_counter() - started) * 1000,
        )
        return outcome

    def _outcome(
        self, reply: TokenResponse | EnrollmentFault, polled: str | None
    ) -> ConnectorOutcome:
        if isinstance(reply, EnrollmentFault):
            return self._fault(reply)
        if reply.certificate is not None:
            try:
                leaf = x509.load_der_x509_certificate(reply.certificate)
            except ValueError:
                raise ConnectorError("CES returned an unparseable certificate") from None
            return Issued(leaf, self._issuer_chain(leaf, reply.pkcs7))
        return self._pending(reply, polled)

    def _pending(self, reply: TokenResponse, polled: str | None) -> ConnectorPending:
        """A pending answer (MS-WSTEP §3.1.4.2.1.1): keep the CA's ``RequestID`` to poll with.
        A poll keeps the id it asked with, the one the store holds (a server may answer a
        legacy id's poll with the request's new number; the old one found it, and still will)."""
        if polled is not None:
            wire_id = polled
        elif reply.request_id:
            wire_id = ca_request_id(reply.request_id)
        else:
            raise ConnectorError("CES answered neither a certificate nor a RequestID")
        if reply.reference:
            self._note_reference(reply.reference)
        return ConnectorPending(wire_id, self.settings.retry_after)

    def _note_reference(self, reference: str) -> None:
        """Log once per origin when a pending answer names another endpoint to poll: the
        connector polls its configured ``url`` (its credentials never go elsewhere)."""
        origin = _origin(reference)
        if origin == _origin(self.settings.url) or origin in self._foreign_references:
            return
        self._foreign_references.add(origin)
        log.warning(
            "connector %s: CES names %r to poll pending requests; polling %s instead",
            self.name,
            reference[:200],
            self.settings.url,
        )

    def _issuer_chain(
        self, leaf: x509.Certificate, pkcs7: bytes | None
    ) -> tuple[x509.Certificate, ...]:
        """Issuer chain from the response's PKCS#7 (issuing CA first), else the configured one."""
        if pkcs7 is None:
            return self._chain
        try:
            certs = [c for c in read_certs_only(pkcs7)[0] if c != leaf]
        except CMSError:
            return self._chain
        chain: list[x509.Certificate] = []
        current = leaf
        while True:
            issuer = next(
                (c for c in certs if c.subject == current.issuer and c not in chain), None
            )
            if issuer is None or issuer == current:
                break
            chain.append(issuer)
            current = issuer
        return tuple(chain) or self._chain

    def _fault(self, fault: EnrollmentFault) -> ConnectorOutcome:
        detail = _describe(fault)
        subcode = fault.subcode or ""
        if "FailedAuthentication" in subcode or "InvalidSecurity" in subcode:
            raise ConnectorError(f"CES refused our credentials: {detail}")
        if fault.hresult is None:
            if "InternalServiceFault" in subcode:
                raise CAUnavailable(f"CES internal error: {detail}", self.settings.retry_after)
            raise ConnectorError(f"CES fault: {detail}")
        if fault.hresult in TRANSIENT:
            raise CAUnavailable(f"CA unavailable: {detail}", self.settings.retry_after)
        return Denied(ErrorCode.CA_DENIED.value, detail, "ca")


def ca_request_id(text: str) -> str:
    """A CES ``RequestID`` as recorded for polling: AD CS's decimal row id (1..2**32-1) without
    leading zeros, or another CA's opaque id (an older certgate's UUID) verbatim.

    :class:`ConnectorError` for anything the store could not keep or a poll could not send
    back: empty, longer than 255 characters, not printable ASCII, or a number out of range."""
    wire = text.strip()
    if wire.isascii() and wire.isdigit():
        number = int(wire)
        if 0 < number <= MAX_ADCS_REQUEST_ID:
            return str(number)
        raise ConnectorError(f"CES sent RequestID {wire[:40]!r}, outside 1..{MAX_ADCS_REQUEST_ID}")
    if not wire or len(wire) > MAX_CA_REQUEST_ID_CHARS or not wire.isascii():
        raise ConnectorError(f"CES sent an unusable RequestID {wire[:40]!r}")
    if not wire.isprintable() or any(c.isspace() for c in wire):
        raise ConnectorError(f"CES sent an unusable RequestID {wire[:40]!r}")
    return wire


def _origin(url: str) -> str:
    parts = urlsplit(url)
    try:
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme.lower())
    except ValueError:  # a port that is no number: compare the text
        return url
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}"


def _describe(fault: TokenResponse | EnrollmentFault) -> str:
    if not isinstance(fault, EnrollmentFault):
        return "unexpected token response"
    reason = fault.reason[:300]
    if fault.hresult is None:
        return f"{fault.subcode or fault.code}: {reason}"
    return f"{hr.describe(fault.hresult)}: {reason}"


def _load_chain(path: Path) -> tuple[x509.Certificate, ...]:
    try:
        return tuple(x509.load_pem_x509_certificates(path.read_bytes()))
    except (OSError, ValueError) as exc:
        raise ConnectorError(f"cannot read issuer chain {path}: {exc}") from None


async def _journaled(call: Awaitable[_T]) -> _T:
    """Await a journal (store) call; its failures are transient for the connector's caller."""
    try:
        return await call
    except (CAUnavailable, ConnectorError):
        raise
    except Exception as exc:
        raise CAUnavailable(f"issuance journal unavailable ({type(exc).__name__})") from exc
