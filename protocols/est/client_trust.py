"""Does a label trust a TLS client certificate? (RFC 7030 §3.3.2, §3.6.1; RFC 5280 §6)

The EST listener completes the handshake whoever issued the client certificate
(:mod:`protocols.est.tls_request`), so this check is the only gate: a certificate counts for a
label only if it verifies, issued directly by one of that label's trust anchors, with
cryptography's RFC 5280 path validation (signature, the anchor's basicConstraints cA and name
constraints, validity of both) under a profile for device certificates: the Web PKI
extension requirements are dropped (factory certificates rarely carry AKI or SAN), but what
OpenSSL's TLS-client purpose check required in the handshake is kept: an extendedKeyUsage,
when present, must allow clientAuth, and a keyUsage must allow digitalSignature or
keyAgreement.

Only the leaf is available (Python's ``ssl`` before 3.13 exposes no peer chain), so
intermediates are not followed: "issued directly by an anchor", as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
)

_CLIENT_EKUS = (ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE)


class UntrustedCertificate(Exception):
    """The certificate does not authenticate for the label; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _eku_problem(eku: x509.ExtendedKeyUsage | None) -> str | None:
    if eku is not None and not any(oid in eku for oid in _CLIENT_EKUS):
        return "its extendedKeyUsage does not allow TLS client authentication"
    return None


def _ku_problem(ku: x509.KeyUsage | None) -> str | None:
    if ku is not None and not (ku.digital_signature or ku.key_agreement):
        return (
            "its keyUsage allows neither digitalSignature nor keyAgreement "
            "(TLS client authentication)"
        )
    return None


def client_purpose_problem(cert: x509.Certificate) -> str | None:
    """Why ``cert`` may not authenticate a TLS client (what OpenSSL's ``ssl_client`` purpose
    check refuses), or None. For certificates of the gateway's own CA, which also issues TLS
    server certificates."""
    try:
        extensions = cert.extensions
    except ValueError as exc:
        return f"its extensions cannot be decoded: {str(exc)[:120]}"
    try:
        eku = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    try:
        ku = extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        ku = None
    return _eku_problem(eku) or _ku_problem(ku)


def _client_eku(policy: Policy, cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None) -> None:
    problem = _eku_problem(eku)
    if problem:
        raise ValueError(problem)


def _client_key_usage(policy: Policy, cert: x509.Certificate, ku: x509.KeyUsage | None) -> None:
    problem = _ku_problem(ku)
    if problem:
        raise ValueError(problem)


_CA_POLICY = ExtensionPolicy.permit_all().require_present(
    x509.BasicConstraints, Criticality.AGNOSTIC, None
)
_EE_POLICY = (
    ExtensionPolicy.permit_all()
    .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _client_eku)
    .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _client_key_usage)
)


def anchor_names(anchors: Sequence[x509.Certificate]) -> str:
    """The anchors' subjects for a message (RFC 4514), ``none`` if there are none."""
    return "; ".join(a.subject.rfc4514_string() for a in anchors) or "none"


def verify_client_certificate(
    cert: x509.Certificate, anchors: Sequence[x509.Certificate], now: datetime
) -> x509.Certificate:
    """The anchor in ``anchors`` that issued ``cert``, which is valid for TLS client
    authentication at ``now``; else :class:`UntrustedCertificate`."""
    if not any(a.subject == cert.issuer for a in anchors):
        raise UntrustedCertificate("it is not issued by one of them")
    try:
        verifier = (
            PolicyBuilder()
            .store(Store(list(anchors)))
            .time(now)
            .max_chain_depth(0)
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
            .build_client_verifier()
        )
        chain = verifier.verify(cert, []).chain
    except Exception as exc:  # attacker-controlled certificate: any failure is a refusal
        reason = str(exc).split(" (encountered processing", 1)[0]
        raise UntrustedCertificate(f"it does not verify against them: {reason[:200]}") from None
    return chain[-1]
