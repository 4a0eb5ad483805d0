"""Builders for policy tests: keys, CSRs (incl. SHA-1 and broken signatures), templates,
requests and prior certificates. Keys are cached so the suite stays fast."""

from __future__ import annotations

import copy
import functools
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asn1crypto import algos, core
from asn1crypto import csr as asn1_csr
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

from gateway.errors import PolicyDenied
from gateway.model import EnrollmentRequest, Identifier, Requester, RequestKind
from gateway.policy import (
    CertificateTemplate,
    PolicyDecision,
    PolicyEngine,
    encode_template_extension,
    parse_template,
)
from gateway.policy.extensions import TEMPLATE_EXTENSION_OID

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)

PrivateKey = CertificateIssuerPrivateKeyTypes


@functools.cache
def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.cache
def ec_key(curve: str = "secp256r1", index: int = 0) -> ec.EllipticCurvePrivateKey:
    curves: dict[str, ec.EllipticCurve] = {
        "secp256r1": ec.SECP256R1(),
        "secp384r1": ec.SECP384R1(),
        "secp521r1": ec.SECP521R1(),
        "secp256k1": ec.SECP256K1(),
    }
    return ec.generate_private_key(curves[curve])


@functools.cache
def ed25519_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def name(*attributes: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])


def cn(value: str) -> x509.Name:
    return name((NameOID.COMMON_NAME, value))


def dns(*values: str) -> list[x509.GeneralName]:
    return [x509.DNSName(v) for v in values]


def build_csr(
    key: PrivateKey | None = None,
    subject: x509.Name | None = None,
    sans: Sequence[x509.GeneralName] | None = None,
) -> x509.CertificateSigningRequest:
    """A CSR signed by ``key`` (default EC P-256) with SHA-256 (none for EdDSA)."""
    key = key if key is not None else ec_key()
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject or x509.Name([]))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    eddsa = isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey)
    algorithm = None if eddsa else hashes.SHA256()
    return builder.sign(key, algorithm)


def sha1_csr(
    subject: x509.Name, sans: Sequence[x509.GeneralName] = ()
) -> x509.CertificateSigningRequest:
    """An RSA CSR signed with sha1WithRSAEncryption (cryptography no longer signs with SHA-1,
    so re-sign the CertificationRequestInfo by hand, as Windows certreq would)."""
    key = rsa_key()
    template = build_csr(key, subject, sans)
    info = asn1_csr.CertificationRequest.load(template.public_bytes(serialization.Encoding.DER))[
        "certification_request_info"
    ]
    signature = key.sign(info.dump(), padding.PKCS1v15(), hashes.SHA1())
    der = asn1_csr.CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": algos.SignedDigestAlgorithm(
                {"algorithm": "sha1_rsa", "parameters": core.Null()}
            ),
            "signature": signature,
        }
    ).dump()
    return x509.load_der_x509_csr(der)


def csr_with_duplicate_san() -> x509.CertificateSigningRequest:
    """A correctly signed EC CSR whose extensionRequest holds the SAN extension twice, which
    RFC 5280 §4.2 forbids and cryptography refuses to decode."""
    key = ec_key()
    base = build_csr(key, cn("host.example.com"), dns("host.example.com"))
    request = asn1_csr.CertificationRequest.load(base.public_bytes(serialization.Encoding.DER))
    info = request["certification_request_info"]
    extensions = info["attributes"][0]["values"][0]
    info["attributes"][0]["values"][0] = asn1_x509.Extensions([*extensions, extensions[0]])
    tbs = info.dump(force=True)
    signature = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    der = asn1_csr.CertificationRequest(
        {
            "certification_request_info": asn1_csr.CertificationRequestInfo.load(tbs),
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
            "signature": signature,
        }
    ).dump()
    return x509.load_der_x509_csr(der)


def broken_signature(csr: x509.CertificateSigningRequest) -> x509.CertificateSigningRequest:
    """``csr`` with the last byte of its signature flipped."""
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    return x509.load_der_x509_csr(bytes(der))


def requester(principal: str = "alice", groups: Iterable[str] = ()) -> Requester:
    return Requester(
        protocol="est", principal=principal, auth_method="basic", groups=frozenset(groups)
    )


def request(
    csr: x509.CertificateSigningRequest | None = None,
    template: str = "t",
    *,
    who: Requester | None = None,
    kind: RequestKind = RequestKind.NEW,
    prior: x509.Certificate | None = None,
    validated: Iterable[Identifier] = (),
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> EnrollmentRequest:
    return EnrollmentRequest(
        csr=csr
        if csr is not None
        else build_csr(subject=cn("host.example.com"), sans=dns("host.example.com")),
        template=template,
        requester=who or requester(),
        transaction_id="tx-1",
        kind=kind,
        validated_identifiers=frozenset(validated),
        prior_certificate=prior,
        not_before=not_before,
        not_after=not_after,
    )


# --- templates ---------------------------------------------------------------------------

BASE_TEMPLATE: dict[str, Any] = {
    "validity": "90d",
    "renewal_period": "30d",
    "key_usage": {"usages": ["digital_signature", "key_encipherment"], "ekus": ["server_auth"]},
    "key_policy": {"algorithms": ["rsa", "ec", "ed25519"], "curves": ["secp256r1", "secp384r1"]},
    "subject": {"rdn": [{"type": "CN"}]},
    "san": {"types": ["dns", "ip"]},
    "permissions": {"enroll": ["*"]},
}


def template_data(name: str = "t", **sections: Any) -> dict[str, Any]:
    """A valid template table; each keyword replaces a top-level key, or updates a section
    when both are tables."""
    data = copy.deepcopy(BASE_TEMPLATE)
    data["name"] = name
    data["oid"] = "2.25." + str(int.from_bytes(hashlib.sha256(name.encode()).digest()[:15], "big"))
    for key, value in sections.items():
        if isinstance(value, Mapping) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    return data


def make_template(name: str = "t", **sections: Any) -> CertificateTemplate:
    return parse_template(template_data(name, **sections), f"{name}.toml")


def engine(*templates: CertificateTemplate) -> PolicyEngine:
    return PolicyEngine({t.name: t for t in (templates or (make_template(),))})


def plan(
    policy: PolicyEngine,
    req: EnrollmentRequest,
    *,
    now: datetime = NOW,
    issuer_not_after: datetime | None = None,
    approved: bool = False,
    check_possession: bool = True,
) -> PolicyDecision:
    return policy.plan(
        req,
        request_id="req-1",
        now=now,
        issuer_not_after=issuer_not_after,
        approved=approved,
        check_possession=check_possession,
    )


def denial(policy: PolicyEngine, req: EnrollmentRequest, **kwargs: Any) -> PolicyDenied:
    with pytest.raises(PolicyDenied) as info:
        plan(policy, req, **kwargs)
    return info.value


def extension(decision: PolicyDecision, oid: x509.ObjectIdentifier) -> x509.Extension[Any] | None:
    for ext in decision.plan.extensions:
        if ext.oid == oid:
            return ext
    return None


# --- prior certificates ------------------------------------------------------------------


def issue(
    public_key: Any,
    *,
    not_before: datetime,
    lifetime: timedelta = timedelta(days=90),
    template: CertificateTemplate | None = None,
    major: int | None = None,
    subject: x509.Name | None = None,
) -> x509.Certificate:
    """A certificate for ``public_key`` (issued by a throwaway CA key), optionally carrying the
    template extension for ``template`` at version ``major`` (default: the template's)."""
    ca = ec_key("secp384r1")
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject or cn("host.example.com"))
        .issuer_name(cn("Test CA"))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + lifetime)
    )
    if template is not None:
        der = encode_template_extension(
            template.oid, template.major_version if major is None else major, template.minor_version
        )
        builder = builder.add_extension(
            x509.UnrecognizedExtension(TEMPLATE_EXTENSION_OID, der), critical=False
        )
    return builder.sign(ca, hashes.SHA256())
