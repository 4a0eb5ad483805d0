"""Answering OCSP requests from the inventory (RFC 6960, RFC 5019 profile), free of HTTP.

Every answer is read from the store at the moment of the request and signed then: there is no
status cache in the gateway, so a revocation recorded by any instance on a shared database is
in every instance's next response. (HTTP caches downstream may keep a ``good`` answer until
its nextUpdate: :attr:`gateway.config.OcspConfig.response_validity` bounds that.)

Which CA: the connectors that can sign OCSP responses (:class:`gateway.ports.OCSPCapable`)
are matched by the CertID's issuerNameHash/issuerKeyHash. A request that names no CA served
here gets ``unauthorized`` (RFC 5019 §2.2.3: the responder cannot answer authoritatively;
RFC 6960 §2.3); a signed ``unknown`` would not help the client, whose check that our
responder is authorized for that issuer fails anyway. Several CertIDs: each one of the first
CA named is answered (up to :data:`MAX_CERT_IDS`, RFC 5019 §2.1.1 lets a responder answer
only the first); CertIDs of another issuer are left out, since a delegated responder's
response naming several issuers is refused as a whole by clients (OpenSSL's
``OCSP_basic_verify``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.serialization import Encoding

from gateway.clock import Clock
from gateway.errors import CAUnavailable, CertgateError
from gateway.model import CertificateStatus, RevocationReason, serial_hex
from gateway.pkix.ocsp import (
    CertID,
    CertStatus,
    Good,
    IssuerHashes,
    MalformedOCSPRequest,
    ResponseStatus,
    Revoked,
    SingleResponse,
    Unknown,
    error_response,
    issuer_hashes,
    key_hash,
    parse_request,
    response_data,
    signed_response,
)
from gateway.ports import CAConnector, OCSPCapable, OCSPSigner, Store

__all__ = ["MAX_CERT_IDS", "OcspAnswer", "OcspService"]

log = logging.getLogger(__name__)

#: CertIDs answered per request (a bound on store lookups per request).
MAX_CERT_IDS = 32
_NO_REASON = frozenset({RevocationReason.UNSPECIFIED, RevocationReason.REMOVE_FROM_CRL})


@dataclass(frozen=True)
class OcspAnswer:
    """An OCSPResponse (DER) and what HTTP needs to know about it.

    ``produced_at`` and ``next_update`` are set for a successful response (``next_update``:
    the earliest of its answers); ``nonce``: the request had one (so no cache may keep the
    response). ``statuses``: good/revoked/unknown per answer, for the metrics.
    """

    body: bytes
    status: ResponseStatus
    produced_at: datetime | None = None
    next_update: datetime | None = None
    nonce: bool = False
    statuses: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Responder:
    """One OCSP signer with what its responses repeat, computed once."""

    signer: OCSPSigner
    hashes: IssuerHashes
    issuer_text: str
    key_hash: bytes
    certs: tuple[bytes, ...]


class OcspService:
    """Answers OCSP requests for the certificates of the OCSP-capable connectors."""

    def __init__(
        self,
        store: Store,
        connectors: Mapping[str, CAConnector],
        clock: Clock,
        response_validity: timedelta,
    ) -> None:
        self._store = store
        self._capable = [c for c in connectors.values() if isinstance(c, OCSPCapable)]
        self._clock = clock
        self._validity = response_validity
        self._responders: dict[int, _Responder] = {}  # by id() of a signer it holds

    @property
    def serves_any(self) -> bool:
        """Whether any connector can sign OCSP responses at all (else /ocsp says so)."""
        return bool(self._capable)

    async def warm(self) -> None:
        """Load (or issue) every connector's OCSP signer now, at start-up, so the first answer
        waits for no key and a key problem is in the start-up log, not in a client's answer."""
        try:
            responders = await self._current()
        except CAUnavailable as exc:
            log.warning("OCSP: no signer available yet: %s", exc.detail)
            return
        for responder in responders:
            certificate = responder.signer.responder
            log.info(
                "OCSP responses for %s signed by %s (serial %x, valid until %s)",
                responder.issuer_text,
                "the CA itself"
                if certificate == responder.signer.issuer
                else certificate.subject.rfc4514_string(),
                certificate.serial_number,
                certificate.not_valid_after_utc.isoformat(),
            )

    async def respond(self, der: bytes) -> OcspAnswer:
        """The OCSPResponse for the DER OCSPRequest ``der``; never raises for bad input."""
        try:
            request = parse_request(der)
        except MalformedOCSPRequest:
            return _error(ResponseStatus.MALFORMED_REQUEST)
        try:
            responders = await self._current()
        except CAUnavailable as exc:
            log.warning("OCSP: no signer available: %s", exc.detail)
            return _error(ResponseStatus.TRY_LATER)
        chosen = _first_named(responders, request.cert_ids)
        if chosen is None:
            return _error(ResponseStatus.UNAUTHORIZED)
        responder, cert_ids = chosen
        now = self._clock.now().replace(microsecond=0)
        next_update = min(now + self._validity, responder.signer.not_after)
        try:
            statuses = [await self._status(responder, cert_id) for cert_id in cert_ids]
        except CAUnavailable as exc:  # StoreUnavailable: the database is down
            log.warning("OCSP: status lookup failed: %s", exc.detail)
            return _error(ResponseStatus.TRY_LATER)
        singles = [
            SingleResponse(cert_id, status, now, next_update)
            for cert_id, status in zip(cert_ids, statuses, strict=True)
        ]
        tbs = response_data(responder.key_hash, now, singles, request.nonce)
        signer = responder.signer
        try:
            body = signed_response(tbs, signer.signature_algorithm, signer.sign, responder.certs)
        except Exception as exc:  # the key store's failure (a token gone): not the client's
            log.warning("OCSP: signing failed (%s)", type(exc).__name__)
            return _error(ResponseStatus.TRY_LATER)
        return OcspAnswer(
            body,
            ResponseStatus.SUCCESSFUL,
            produced_at=now,
            next_update=next_update,
            nonce=request.nonce is not None,
            statuses=tuple(_name(s) for s in statuses),
        )

    async def _current(self) -> list[_Responder]:
        found = []
        for connector in self._capable:
            signer = await connector.ocsp_signer()
            if signer is not None:
                known = self._responders.get(id(signer))
                found.append(self._responder(signer))
                if signer.issued and (known is None or known.signer is not signer):
                    await self._announce(signer)
        return found

    async def _announce(self, signer: OCSPSigner) -> None:
        """The CA issued a delegated responder certificate: an audit event, like every
        issuance (a store outage loses the event, never the answer: logged instead)."""
        certificate = signer.responder
        try:
            await self._store.audit(
                "ocsp.responder.issued",
                "certgate:ocsp",
                serial=serial_hex(certificate.serial_number),
                detail={
                    "subject": certificate.subject.rfc4514_string(),
                    "issuer": signer.issuer.subject.rfc4514_string(),
                    "not_after": certificate.not_valid_after_utc.isoformat(),
                },
            )
        except CertgateError as exc:
            log.warning("OCSP: could not record the responder certificate: %s", exc.detail)

    def _responder(self, signer: OCSPSigner) -> _Responder:
        responder = self._responders.get(id(signer))
        if responder is None or responder.signer is not signer:
            if len(self._responders) > 16:  # renewed signers replace old ones
                self._responders.clear()
            issuer_der = signer.issuer.public_bytes(Encoding.DER)
            responder = _Responder(
                signer,
                issuer_hashes(issuer_der),
                signer.issuer.subject.rfc4514_string(),
                key_hash(signer.responder.public_bytes(Encoding.DER)),
                tuple(c.public_bytes(Encoding.DER) for c in signer.certs),
            )
            self._responders[id(signer)] = responder
        return responder

    async def _status(self, responder: _Responder, cert_id: CertID) -> CertStatus:
        """The inventory's word on one certificate of ``responder``'s CA (RFC 6960 §2.2)."""
        if cert_id.serial <= 0:
            return Unknown()
        record = await self._store.get_certificate(serial_hex(cert_id.serial))
        # The inventory holds every connector's certificates: a serial is ours only if our
        # CA issued it.
        if record is None or record.issuer != responder.issuer_text:
            return Unknown()
        if record.status is CertificateStatus.REVOKED and record.revoked_at is not None:
            reason = record.revocation_reason
            code = None if reason is None or reason in _NO_REASON else int(reason)
            return Revoked(record.revoked_at, code)
        return Good()


def _first_named(
    responders: Sequence[_Responder], cert_ids: Sequence[CertID]
) -> tuple[_Responder, list[CertID]] | None:
    """The responder of the first CA a CertID names, and the CertIDs naming that CA."""
    for cert_id in cert_ids:
        for responder in responders:
            if responder.hashes.matches(cert_id):
                mine = [c for c in cert_ids if responder.hashes.matches(c)]
                return responder, mine[:MAX_CERT_IDS]
    return None


def _name(status: CertStatus) -> str:
    return (
        "good"
        if isinstance(status, Good)
        else "revoked"
        if isinstance(status, Revoked)
        else "unknown"
    )


def _error(status: ResponseStatus) -> OcspAnswer:
    return OcspAnswer(error_response(status), status)
