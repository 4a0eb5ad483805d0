"""PKIOperation (RFC 8894 §4.3): unwrap, verify, decrypt, dispatch, and answer with a signed
CertRep. Every SCEP-level problem becomes a CertRep FAILURE with its failInfo; only a body
that is not a pkiMessage with a signer, a transactionID and a senderNonce (so no CertRep can be
addressed) raises :class:`TransportError` for an HTTP 400.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.errors import CertgateError, ErrorCode, StoreUnavailable
from gateway.model import Denied, Issued, Outcome, Pending, serial_hex
from gateway.observability.events import protocol_refusal
from gateway.pkix import cms
from gateway.pkix.certsonly import certs_only_der
from protocols.scep import enrollment, lookup
from protocols.scep.config import Endpoint
from protocols.scep.errors import fail_info, fail_text
from protocols.scep.messages import (
    FailInfo,
    MessageError,
    MessageType,
    PKIMessage,
    PKIStatus,
    Reply,
    cert_rep,
    parse_pki_message,
    verify,
)
from protocols.scep.state import Scep

log = logging.getLogger("certgate.scep")

#: Digests a CertRep may be signed with: the client's own if it is one of these.
_REPLY_DIGESTS = frozenset({"sha1", "sha224", "sha256", "sha384", "sha512"})
#: signingTime further than this from our clock is badTime (RFC 8894 §3.2.1.4).
MAX_SIGNING_TIME_SKEW = timedelta(days=1)
_SIGNING_TIME = "1.2.840.113549.1.9.5"


@dataclass(frozen=True)
class Request:
    """A verified, decrypted request: the outer message and its messageData."""

    message: PKIMessage
    content: bytes
    decrypted: cms.Decrypted


async def pki_operation(scep: Scep, endpoint: Endpoint, der: bytes) -> bytes:
    """Answer one pkiMessage with a DER CertRep (raises TransportError if none is possible,
    StoreUnavailable when the gateway's database is down: a CertRep FAILURE would tell the
    client its request is refused for good)."""
    message = parse_pki_message(der)
    digest = message.digest if message.digest in _REPLY_DIGESTS else "sha256"
    if message.digest == "md5" and endpoint.legacy_des:
        digest = "md5"  # legacy Cisco IOS: mirror, it may know nothing better
    refused = True  # a refusal the service did not record (it audits its own denials)
    try:
        reply = await _serve(scep, endpoint, message, digest)
        refused = False
    except MessageError as exc:
        reply = _failure(message, digest, exc.fail_info, exc.detail)
    except StoreUnavailable:
        raise  # the gateway's own outage is no answer about the request: HTTP 503 (http.py)
    except CertgateError as exc:
        reply = _failure(message, digest, fail_info(exc.code), fail_text(exc.code, exc.detail))
    except Exception:  # the last resort: still a signed SCEP answer, never a 500
        log.exception("scep: transaction %r failed", message.transaction_id)
        reply = _failure(message, digest, FailInfo.BAD_REQUEST, "internal error")
    if refused and message.message_type in _ENROLL_TYPES:
        await _audit_refusal(scep, endpoint, message, reply)
    if reply.status is PKIStatus.FAILURE:
        protocol_refusal(
            "scep",
            reply.fail_info.name if reply.fail_info is not None else "-",
            reply.fail_text or "",
            endpoint=endpoint.name,
            transaction_id=message.transaction_id,
            message_type=message.message_type,
        )
    signer = scep.signing(endpoint)
    return cert_rep(reply, signer.certificate, signer.key)


_ENROLL_TYPES = frozenset({int(MessageType.PKCS_REQ), int(MessageType.RENEWAL_REQ)})


async def _audit_refusal(scep: Scep, endpoint: Endpoint, message: PKIMessage, reply: Reply) -> None:
    """Every refused enrollment is an audit event: ``scep.refused`` for those refused before
    the service judged them (challenge, signer, renewal authority, algorithms). The failInfo
    text never names a secret (RFC 8894 §7.3)."""
    try:
        await scep.store.audit(
            "scep.refused",
            f"scep:{endpoint.name}",
            detail={
                "endpoint": endpoint.name,
                "transaction_id": message.transaction_id,
                "message_type": message.message_type,
                "fail_info": reply.fail_info.name if reply.fail_info is not None else None,
                "reason": reply.fail_text,
                "signer_subject": message.signer.subject.rfc4514_string(),
                "signer_serial": serial_hex(message.signer.serial_number),
            },
        )
    except Exception:  # the refusal stands; the missing audit line is logged loudly
        log.exception("scep: cannot audit the refusal of transaction %r", message.transaction_id)


def _failure(message: PKIMessage, digest: str, info: FailInfo, text: str) -> Reply:
    return Reply(
        transaction_id=message.transaction_id,
        recipient_nonce=message.sender_nonce,
        status=PKIStatus.FAILURE,
        fail_info=info,
        fail_text=text[:512],
        digest=digest,
    )


def _decrypt(scep: Scep, endpoint: Endpoint, envelope: bytes) -> cms.Decrypted:
    """Open the pkcsPKIEnvelope (RFC 8894 §3.2.2) with the first RA key it is encrypted to."""
    for certificate, key in scep.decrypting(endpoint):
        try:
            return cms.decrypt_enveloped(
                envelope, certificate, key, allowed_ciphers=endpoint.ciphers
            )
        except cms.UnsupportedAlgorithm as exc:
            legacy = not endpoint.legacy_des and exc.algorithm == "des"
            text = _legacy_refusal(endpoint, "single DES") if legacy else str(exc)
            raise MessageError(FailInfo.BAD_ALG, text) from None
        except cms.NotForUs:
            continue
        except cms.CMSError as exc:
            raise MessageError(FailInfo.BAD_MESSAGE_CHECK, f"cannot decrypt: {exc}") from None
    raise MessageError(
        FailInfo.BAD_MESSAGE_CHECK, "the envelope is not encrypted to this RA certificate"
    )


def _legacy_refusal(endpoint: Endpoint, algorithm: str) -> str:
    """failInfoText (and log text) for single DES or MD5 on an endpoint without the legacy
    switch: RFC 8894 §2.9 forbids them by default; name the one setting that allows them."""
    return (
        f"{algorithm} is refused by default (RFC 8894 §2.9); legacy clients (Cisco IOS, "
        f"micromdm scepclient) need scep.endpoints.{endpoint.name}.legacy_des = true"
    )


def _check_signing_time(message: PKIMessage, now: datetime) -> None:
    der = message.signed.attributes.get(_SIGNING_TIME)
    if der is None:
        return
    try:
        value = core.Asn1Value.load(der).native
    except ValueError:
        raise MessageError(FailInfo.BAD_TIME, "the signingTime attribute is malformed") from None
    if not isinstance(value, datetime):
        raise MessageError(FailInfo.BAD_TIME, "the signingTime attribute is malformed")
    if abs(value.astimezone(UTC) - now) > MAX_SIGNING_TIME_SKEW:
        raise MessageError(FailInfo.BAD_TIME, "signingTime is too far from the server's time")


async def _serve(scep: Scep, endpoint: Endpoint, message: PKIMessage, digest: str) -> Reply:
    if message.digest not in endpoint.digests:
        if message.digest == "md5":
            raise MessageError(FailInfo.BAD_ALG, _legacy_refusal(endpoint, "MD5"))
        raise MessageError(FailInfo.BAD_ALG, f"digest {message.digest!r} is not accepted")
    verify(message)
    _check_signing_time(message, scep.clock.now())
    try:
        kind = MessageType(message.message_type)
    except ValueError:
        kind = None
    if kind is None or kind is MessageType.CERT_REP:
        raise MessageError(FailInfo.BAD_REQUEST, f"messageType {message.message_type} is unknown")
    if message.envelope is None:
        raise MessageError(FailInfo.BAD_REQUEST, "the pkcsPKIEnvelope is missing")
    decrypted = _decrypt(scep, endpoint, message.envelope)
    if not isinstance(message.signer.public_key(), rsa.RSAPublicKey):
        # A CertRep is encrypted to the signer's key by key transport, which needs RSA:
        # refuse before anything is issued (protocols.md 1.7, EC client keys).
        raise MessageError(FailInfo.BAD_ALG, "the signer's key must be RSA to receive a CertRep")
    request = Request(message, decrypted.content, decrypted)
    if kind in (MessageType.PKCS_REQ, MessageType.RENEWAL_REQ):
        outcome = await enrollment.enroll(scep, endpoint, request.message, request.content)
        return _render(request, digest, outcome)
    if kind is MessageType.CERT_POLL:
        outcome = await lookup.cert_poll(scep, endpoint, request.message, request.content)
        return _render(request, digest, outcome)
    if kind is MessageType.GET_CERT:
        certificate = await lookup.get_cert(scep, request.content)
        return _success(request, digest, certs_only_der([certificate]))
    crl = await lookup.get_crl(scep, request.content)
    return _success(request, digest, certs_only_der([], crls=[crl]))


def _success(request: Request, digest: str, content: bytes) -> Reply:
    return Reply(
        transaction_id=request.message.transaction_id,
        recipient_nonce=request.message.sender_nonce,
        status=PKIStatus.SUCCESS,
        content=content,
        recipient=request.message.signer,
        cipher=request.decrypted.cipher,
        key_transport=request.decrypted.key_transport,
        digest=digest,
    )


def _render(request: Request, digest: str, outcome: Outcome) -> Reply:
    """Issued -> SUCCESS (leaf first, then the chain), Pending -> PENDING, Denied -> FAILURE."""
    if isinstance(outcome, Issued):
        certs: list[x509.Certificate] = list(outcome.full_chain)
        return _success(request, digest, certs_only_der(certs))
    if isinstance(outcome, Pending):
        return Reply(
            transaction_id=request.message.transaction_id,
            recipient_nonce=request.message.sender_nonce,
            status=PKIStatus.PENDING,
            digest=digest,
        )
    assert isinstance(outcome, Denied)
    detail = f"{outcome.rule}: {outcome.detail}" if outcome.rule else outcome.detail
    return _failure(
        request.message,
        digest,
        fail_info(outcome.code),
        fail_text(outcome.code or ErrorCode.POLICY_DENIED.value, detail),
    )
