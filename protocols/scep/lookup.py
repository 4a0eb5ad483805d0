"""CertPoll, GetCert and GetCRL (RFC 8894 §3.3.3, §3.3.4, §4.4-4.6): answered from the store.

CertPoll is keyed on the transactionID (RFC 8894 §3.3.3 recommends it over the names in
IssuerAndSubject) and only answers the key that made the request (or the certificate a renewal
was signed with), so nobody else can collect a PENDING request's result -- except on an
endpoint with ``signer = "any"``, whose NDES clients poll with a throw-away signer: there the
transactionID alone finds the request (the answer is a certificate, which is public, encrypted
to whoever asks). A refused transaction that was judged afresh is answered from its newest
attempt (:mod:`protocols.scep.transactions`).
"""

from __future__ import annotations

from cryptography import x509

from gateway.errors import NotFound
from gateway.model import Outcome, serial_hex
from gateway.pkix.csr import spki_fingerprint
from protocols.scep import enrollment, transactions
from protocols.scep.config import Endpoint
from protocols.scep.messages import (
    FailInfo,
    MessageError,
    PKIMessage,
    parse_issuer_and_serial,
    parse_issuer_and_subject,
)
from protocols.scep.state import Scep


async def cert_poll(scep: Scep, endpoint: Endpoint, message: PKIMessage, content: bytes) -> Outcome:
    """The recorded outcome of the transaction; badCertId when there is none (RFC 8894 §4.4)."""
    parse_issuer_and_subject(content)
    transactions.check_client_id(message.transaction_id)
    stored = None
    if await enrollment.issued_by_us(scep, message.signer):
        renewal_txn = enrollment.renewal_transaction(message.transaction_id, message.signer)
        stored, _ = await transactions.latest(scep.store, renewal_txn)
    if stored is None:
        stored, _ = await transactions.latest(scep.store, message.transaction_id)
    if stored is None:
        raise MessageError(FailInfo.BAD_CERT_ID, "no request with this transactionID")
    signer = message.signer
    same_key = spki_fingerprint(signer.public_key()) == stored.spki_sha256
    same_prior = stored.prior_serial is not None and stored.prior_serial == serial_hex(
        signer.serial_number
    )
    if not (same_key or same_prior or endpoint.signer == "any"):
        raise MessageError(FailInfo.BAD_CERT_ID, "no request with this transactionID")
    return await scep.service.outcome_of(stored)


async def get_cert(scep: Scep, content: bytes) -> x509.Certificate:
    """The certificate named by IssuerAndSerialNumber (RFC 8894 §3.3.4); else badCertId."""
    wanted = parse_issuer_and_serial(content)
    record = await scep.store.get_certificate(serial_hex(wanted.serial))
    if record is None:
        raise MessageError(FailInfo.BAD_CERT_ID, "no such certificate")
    certificate = record.certificate
    if certificate.issuer.public_bytes() != wanted.issuer_der:
        raise MessageError(FailInfo.BAD_CERT_ID, "no such certificate")
    return certificate


async def get_crl(scep: Scep, content: bytes) -> bytes:
    """The current CRL of the issuing CA (RFC 8894 §3.3.4); the IssuerAndSerialNumber must name
    a certificate from this CA."""
    wanted = parse_issuer_and_serial(content)
    chain = scep.ra.ca_chain
    if not chain or chain[0].subject.public_bytes() != wanted.issuer_der:
        raise MessageError(FailInfo.BAD_CERT_ID, "no CRL for this issuer")
    try:
        return await scep.service.crl()
    except NotFound as exc:
        raise MessageError(FailInfo.BAD_REQUEST, exc.detail) from None
