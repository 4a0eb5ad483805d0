"""``MSCESConnector``: certgate as a CES client (MS-WSTEP) in front of AD CS or another CES.

* ``submit(plan)`` sends ``plan.csr`` exactly as the client signed it (AD CS re-checks the
  request signature) with the AD CS template name from ``plan.connector_params
  ["adcs_template"]`` (else the certgate template name); certgate's policy has already decided.
* Issued -> :class:`Issued` (leaf from ``RequestedSecurityToken``, chain from the PKCS#7);
  pending -> :class:`ConnectorPending` with the CES ``RequestID``, which the core's poller later
  passes to :meth:`poll` (QueryTokenStatus); a CA refusal -> :class:`Denied` ``ca-denied`` with
  the decoded HRESULT; unreachable/timeouts -> :class:`CAUnavailable` with a retry hint.

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

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from backends.ms_ces.client import SOAPClient
from backends.ms_ces.settings import AuthMode, CESSettings, parse_settings
from gateway import wstep_hresults as hr
from gateway.errors import BadRequest, CAUnavailable, ConnectorError, ErrorCode
from gateway.model import (
    ConnectorOutcome,
    ConnectorPending,
    Denied,
    IssuancePlan,
    Issued,
    RevocationReason,
)
from gateway.pkix.wstep_cms import read_certs_only
from gateway.ports import ConnectorContext, IssuanceJournal
from gateway.wstep_messages import (
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
from gateway.xcep_messages import (
    ACTION_GET_POLICIES,
    PolicyDocument,
    build_get_policies_body,
    parse_get_policies_response,
)

_T = TypeVar("_T")
log = logging.getLogger("certgate.connector.ms_ces")

REQUEST_ID_CONTEXT = "certgate-request-id"
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
        """QueryTokenStatus for a request the CA put under submission."""
        return await self._call(TokenRequest(REQUEST_QUERY, request_id=ca_request_id), None)

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

    async def _call(self, request: TokenRequest, request_id: str | None) -> ConnectorOutcome:
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
            raise ConnectorError(f"CES sent a malformed answer: {exc.detail}") from None
        outcome = self._outcome(reply)
        log.info(
            "ces %s %s -> %s (HTTP %d, %.1f ms)",
            "poll" if request.is_query else "submit",
            request.request_id or request_id,
            type(outcome).__name__,
            status,
            (time.perf_counter() - started) * 1000,
        )
        return outcome

    def _outcome(self, reply: TokenResponse | EnrollmentFault) -> ConnectorOutcome:
        if isinstance(reply, EnrollmentFault):
            return self._fault(reply)
        if reply.certificate is not None:
            try:
                leaf = x509.load_der_x509_certificate(reply.certificate)
            except ValueError:
                raise ConnectorError("CES returned an unparseable certificate") from None
            return Issued(leaf, self._issuer_chain(leaf, reply.pkcs7))
        if not reply.request_id:
            raise ConnectorError("CES answered neither a certificate nor a RequestID")
        return ConnectorPending(reply.request_id, self.settings.retry_after)

    def _issuer_chain(
        self, leaf: x509.Certificate, pkcs7: bytes | None
    ) -> tuple[x509.Certificate, ...]:
        """Issuer chain from the response's PKCS#7 (issuing CA first), else the configured one."""
        if pkcs7 is None:
            return self._chain
        try:
            certs = [c for c in read_certs_only(pkcs7) if c != leaf]
        except BadRequest:
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
