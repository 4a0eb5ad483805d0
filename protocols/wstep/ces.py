"""The CES endpoint (MS-WSTEP §3.1.4.1 ``RequestSecurityToken2``): Issue and QueryTokenStatus.

Issue (MS-WSTEP §3.1.4.2.1.1): a bare PKCS#10 is a new request; a CMS SignedData wrapping the
PKCS#10 and signed by a certificate this gateway issued is a renewal of that certificate. The
template comes from ``AdditionalContext/ContextItem[@Name='CertificateTemplate']``, else the
CSR's template extension (1.3.6.1.4.1.311.21.7) or template-name extension
(1.3.6.1.4.1.311.20.2), else the gateway's default template. Issued -> RSTR with the
certificate; pending -> RSTR whose ``RequestedSecurityToken`` holds a ``SecurityTokenReference``
to this same CES URL (MS-WSTEP §3.1.4.1.3.2; cepces polls that URI); denied -> fault. Every
answer carries the request's number (:mod:`protocols.wstep.numbers`) as ``RequestID``.

QueryTokenStatus (MS-WSTEP §3.1.4.2.1.2): the outcome of the caller's own earlier request, named
by its number (or, for requests answered before numbers existed, by certgate's request id).
Another caller's request and an unknown number get the same fault (CERTSRV_E_NO_REQUEST), so
numbers reveal nothing; a RequestID that is no number gets CERTSRV_E_INVALID_REQUESTID.

A renewal that cepces makes (``CERTMONGER_CERTIFICATE`` set: it only chooses a renewal endpoint
and sends a bare PKCS#10) is a new request of the authenticated caller; only a CMS request
signed by the prior certificate renews that certificate (:meth:`CESHandler._renewable`).

Idempotency: a ContextItem ``certgate-request-id`` (sent by certgate's own CES connector) is the
transaction id, scoped to the caller, so a resubmission returns the recorded outcome instead of
issuing twice. Without it every Issue is a new transaction, as with AD CS.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from dataclasses import dataclass

from aiohttp import web
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.codecs.ms import hresults as hr
from gateway.codecs.ms.cms import is_signed_data, open_signed_request
from gateway.codecs.ms.wstrust import (
    ACTION_RST,
    EnrollmentFault,
    Envelope,
    TokenRequest,
    TokenResponse,
    build_response,
    parse_request,
)
from gateway.errors import BadRequest, CertgateError, ErrorCode, NotFound
from gateway.model import (
    CertificateStatus,
    EnrollmentRequest,
    Issued,
    Outcome,
    Pending,
    Requester,
    RequestKind,
    serial_hex,
)
from gateway.pkix import load_csr
from gateway.pkix.certsonly import certs_only_der
from gateway.policy import TEMPLATE_EXTENSION_OID, decode_template_extension
from protocols.wstep.auth import PROTOCOL, authenticate
from protocols.wstep.errors import fault_for, fault_for_denial, fault_for_exception
from protocols.wstep.listeners import Listeners
from protocols.wstep.numbers import RequestNumbers, parse_number
from protocols.wstep.ports import WstepContext
from protocols.wstep.settings import WSTEPSettings
from protocols.wstep.tables import MAX_REQUEST_NUMBER
from protocols.wstep.transport import (
    SOAPFault,
    bad_request,
    fault_response,
    read_envelope,
    soap_response,
)
from protocols.wstep.users import PasswordVerifier

log = logging.getLogger("certgate.wstep")

TEMPLATE_CONTEXT = "CertificateTemplate"
TRANSACTION_CONTEXT = "certgate-request-id"
_DER = Encoding.DER
TEMPLATE_NAME_OID = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2")
ISSUED, PENDING = "Issued", "Taken Under Submission"
#: certgate's own request ids (UUIDs): what QueryTokenStatus named before numbers existed.
_LEGACY_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass
class CESHandler:
    """aiohttp handler for ``POST <path>/CES``."""

    context: WstepContext
    settings: WSTEPSettings
    verifier: PasswordVerifier
    listeners: Listeners
    numbers: RequestNumbers

    async def handle(self, request: web.Request) -> web.Response:
        envelope: Envelope | None = None
        try:
            envelope = await read_envelope(request, self.settings)
            if envelope.action != ACTION_RST:
                raise bad_request(f"unsupported SOAP action {envelope.action[:120]!r}")
            token_request = _parse(envelope)
            requester = await authenticate(
                request, envelope, self.settings, self.verifier, self.context.store
            )
            if token_request.is_query:
                return await self._query(request, envelope, token_request, requester)
            return await self._issue(request, envelope, token_request, requester)
        except SOAPFault as error:
            return fault_response(error, envelope.message_id if envelope else None)
        except CertgateError as exc:
            fault = fault_for_exception(exc)
            return fault_response(SOAPFault(fault), envelope.message_id if envelope else None)
        except Exception:
            log.exception("CES request failed (request id %s)", request.get("request_id"))
            fault = fault_for(ErrorCode.INTERNAL, "internal error")
            return fault_response(SOAPFault(fault), envelope.message_id if envelope else None)

    async def _issue(
        self,
        request: web.Request,
        envelope: Envelope,
        token_request: TokenRequest,
        requester: Requester,
    ) -> web.Response:
        assert token_request.token is not None
        kind, prior = RequestKind.NEW, None
        token = token_request.token
        if is_signed_data(token):
            signed = open_signed_request(token)
            prior = await self._renewable(signed.signer, requester)
            kind, token = RequestKind.RENEWAL, signed.csr_der
        csr = load_csr(token)
        template = self._template(token_request, csr)
        supplied = token_request.context.get(TRANSACTION_CONTEXT)
        if supplied is not None and not 0 < len(supplied) <= 128:
            raise BadRequest(f"{TRANSACTION_CONTEXT} must be 1..128 characters")
        transaction = _transaction_id(requester.principal, supplied)
        outcome = await self.context.service.enroll(
            EnrollmentRequest(
                csr=csr,
                template=template,
                requester=requester,
                transaction_id=transaction,
                kind=kind,
                prior_certificate=prior,
            )
        )
        request_id = await self._request_id(outcome, transaction)
        number = await self.numbers.number_for(request_id) if request_id else None
        return self._render(request, envelope, outcome, number)

    async def _query(
        self,
        request: web.Request,
        envelope: Envelope,
        token_request: TokenRequest,
        requester: Requester,
    ) -> web.Response:
        wire_id = token_request.request_id or ""
        if parse_number(wire_id) is not None:
            request_id = await self.numbers.request_of(wire_id)
        elif _LEGACY_ID.match(wire_id):
            request_id = wire_id
        else:
            # Not a request number at all (AD CS ids are positive 32-bit numbers).
            raise SOAPFault(_invalid_request_id(wire_id))
        record = await self.context.store.get_request(request_id) if request_id else None
        if (
            record is None
            or record.protocol != PROTOCOL
            or record.requester.principal != requester.principal
        ):
            raise NotFound(f"no request {wire_id[:64]!r} of this caller")
        outcome = await self.context.service.outcome_of(record)
        number = await self.numbers.number_for(record.id)
        return self._render(request, envelope, outcome, number)

    def _render(
        self, request: web.Request, envelope: Envelope, outcome: Outcome, number: int | None
    ) -> web.Response:
        wire_id = "" if number is None else str(number)
        if isinstance(outcome, Issued):
            response = TokenResponse(
                request_id=wire_id,
                disposition_message=ISSUED,
                certificate=outcome.certificate.public_bytes(_DER),
                pkcs7=certs_only_der(outcome.full_chain),
            )
        elif isinstance(outcome, Pending):
            # No outer BinarySecurityToken: AD CS puts its CA response there, and certgate has
            # no CMC status response to give; clients poll with RequestID and the reference.
            response = TokenResponse(
                request_id=wire_id,
                disposition_message=PENDING,
                reference=self.listeners.ces_url(request),
            )
        else:
            raise SOAPFault(fault_for_denial(outcome, wire_id or None))
        return soap_response(build_response(response, relates_to=envelope.message_id))

    async def _request_id(self, outcome: Outcome, transaction: str) -> str:
        """The certgate request id behind an outcome ('' when nothing was recorded)."""
        return await self.context.service.request_id_of(PROTOCOL, transaction, outcome)

    def _template(self, token_request: TokenRequest, csr: x509.CertificateSigningRequest) -> str:
        named = token_request.context.get(TEMPLATE_CONTEXT)
        if named:
            return named
        try:
            extensions = csr.extensions
        except ValueError:
            raise BadRequest("the CSR's extensionRequest is malformed") from None
        for ext in extensions:
            if ext.oid == TEMPLATE_EXTENSION_OID:
                found = _template_by_oid(self.context, ext)
                if found:
                    return found
            if ext.oid == TEMPLATE_NAME_OID and isinstance(ext.value, x509.UnrecognizedExtension):
                try:
                    return str(core.BMPString.load(ext.value.value).native)
                except Exception:
                    raise BadRequest("the template-name extension is malformed") from None
        return self.context.default_template

    async def _renewable(self, signer: x509.Certificate, requester: Requester) -> x509.Certificate:
        """The certificate a renewal was signed with, if it is this gateway's, valid, and the
        caller's own (MS-WSTEP §3.1.4.2.1.1; AD CS checks the same before renewing)."""
        record = await self.context.store.get_certificate(serial_hex(signer.serial_number))
        if record is None or record.der != signer.public_bytes(_DER):
            raise BadRequest("the renewal is signed by a certificate this CA did not issue")
        if record.status is not CertificateStatus.VALID:
            raise BadRequest("the certificate being renewed is revoked")
        if record.requester != requester.principal:
            raise SOAPFault(
                fault_for(ErrorCode.UNAUTHORIZED, "the certificate being renewed is not yours")
            )
        return signer


def _invalid_request_id(wire_id: str) -> EnrollmentFault:
    """CERTSRV_E_INVALID_REQUESTID (winerror.h 0x8009481E) for a RequestID that is no number."""
    return EnrollmentFault(
        code="Sender",
        reason=f"RequestID {wire_id[:64]!r} is not a request number (1..{MAX_REQUEST_NUMBER})",
        hresult=hr.code("CERTSRV_E_INVALID_REQUESTID"),
        invalid_request=True,
    )


def _transaction_id(principal: str, supplied: str | None) -> str:
    """The idempotency key: the caller's own request id scoped to the caller (hashed when it
    would not fit the store's 255 characters), else a fresh one."""
    if not supplied:
        return str(uuid.uuid4())
    scoped = f"{principal}/{supplied}"
    if len(scoped) <= 255:
        return scoped
    return f"{hashlib.sha256(principal.encode()).hexdigest()}/{supplied}"


def _parse(envelope: Envelope) -> TokenRequest:
    try:
        return parse_request(envelope)
    except BadRequest as exc:
        raise bad_request(exc.detail) from None


def _template_by_oid(context: WstepContext, ext: x509.Extension[x509.ExtensionType]) -> str | None:
    if not isinstance(ext.value, x509.UnrecognizedExtension):
        return None
    try:
        oid = decode_template_extension(ext.value.value).oid
    except ValueError:
        raise BadRequest("the CSR's certificate template extension is malformed") from None
    found = context.policy.catalog.by_template_oid(oid)
    return None if found is None else found.name
