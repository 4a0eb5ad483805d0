"""/serverkeygen (RFC 7030 §4.4): the server generates the key pair.

The request is authenticated like /simpleenroll; the CSR's public key and signature are
ignored (§4.4.1): a key is generated per the template's key
policy (the CSR's key type and size when the template allows them, else the first allowed
type), the subject and extensions are copied into a CSR signed with the new key, and that goes
through the normal policy path. The reply is multipart/mixed with the PKCS#8 key and the
certs-only certificate (§4.4.2). The key is never stored, so:

* templates that need manager approval are refused (the key could not wait for the approval);
* a CA that answers "pending" gets 503 + Retry-After: the client asks again and gets a new key.

Additional key encryption (DecryptKeyIdentifier, AsymmetricDecryptKeyIdentifier) is not
supported; such requests are refused with 400 (§4.4.1.1 says an unknown identifier MUST fail).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from gateway.errors import BadRequest, PolicyDenied
from gateway.model import EnrollmentRequest, Issued, Pending
from gateway.policy import KeyAlgorithm, KeyPolicy
from protocols.est.context import EstContext
from protocols.est.handlers.common import authenticated_csr
from protocols.est.messages import MULTIPART_BOUNDARY, serverkeygen_body
from protocols.est.render import EstReply, denied_reply, text
from protocols.est.settings import LabelSettings
from protocols.est.tls import TransportFacts

#: RFC 4108 §2.2.5 id-aa-decryptKeyID and RFC 7030 id-aa-asymmDecryptKeyID.
_KEY_ENCRYPTION_ATTRS = ("1.2.840.113549.1.9.16.2.37", "1.2.840.113549.1.9.16.2.54")
_CURVES: dict[str, Callable[[], ec.EllipticCurve]] = {
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp521r1": ec.SECP521R1,
    "secp256k1": ec.SECP256K1,
    "brainpoolP256r1": ec.BrainpoolP256R1,
    "brainpoolP384r1": ec.BrainpoolP384R1,
    "brainpoolP512r1": ec.BrainpoolP512R1,
}


def generate_key(policy: KeyPolicy, requested: object) -> CertificateIssuerPrivateKeyTypes:
    """A key the template accepts, shaped like the CSR's key when that is allowed."""
    algorithms = policy.algorithms
    if isinstance(requested, ec.EllipticCurvePublicKey) and KeyAlgorithm.EC in algorithms:
        if requested.curve.name in policy.curves and requested.curve.name in _CURVES:
            return ec.generate_private_key(_CURVES[requested.curve.name]())
    if isinstance(requested, rsa.RSAPublicKey) and KeyAlgorithm.RSA in algorithms:
        bits = min(max(requested.key_size, policy.min_rsa_bits, 2048), 4096)
        return rsa.generate_private_key(65537, bits)
    if isinstance(requested, ed25519.Ed25519PublicKey) and KeyAlgorithm.ED25519 in algorithms:
        return ed25519.Ed25519PrivateKey.generate()
    if KeyAlgorithm.EC in algorithms:
        usable: list[str] = [
            c for c in ("secp256r1", "secp384r1", "secp521r1") if c in policy.curves
        ]
        usable += sorted(c for c in policy.curves if c in _CURVES and c not in usable)
        if usable:
            return ec.generate_private_key(_CURVES[usable[0]]())
    if KeyAlgorithm.RSA in algorithms:
        return rsa.generate_private_key(65537, max(policy.min_rsa_bits, 2048))
    if KeyAlgorithm.ED25519 in algorithms:
        return ed25519.Ed25519PrivateKey.generate()
    if KeyAlgorithm.ED448 in algorithms:
        return ed448.Ed448PrivateKey.generate()
    raise PolicyDenied("key-algorithm", "the template allows no key type the server can generate")


def rebuild_csr(
    csr: x509.CertificateSigningRequest, key: CertificateIssuerPrivateKeyTypes
) -> x509.CertificateSigningRequest:
    """The client's subject and requested extensions in a CSR signed by ``key``."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(csr.subject)
    for extension in csr.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    digest = (
        None
        if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey))
        else hashes.SHA256()
    )
    return builder.sign(key, digest)


async def serverkeygen(
    request: web.Request, est: EstContext, label: LabelSettings, transport: TransportFacts
) -> EstReply:
    auth, csr = await authenticated_csr(request, est, label, transport)
    try:
        oids = {a.oid.dotted_string for a in csr.attributes}
        subject_ok = csr.subject is not None and csr.extensions is not None
    except ValueError as exc:
        raise BadRequest(f"the CSR cannot be decoded: {str(exc)[:120]}") from None
    if oids & set(_KEY_ENCRYPTION_ATTRS) or not subject_ok:
        raise BadRequest("additional encryption of server-generated keys is not supported")
    template = est.policy.template(label.template)
    if template.issuance.manager_approval:
        raise PolicyDenied(
            "est-serverkeygen",
            f"template {template.name!r} needs manager approval, and server-generated keys are "
            "never stored to wait for it; enroll with your own key (/simpleenroll)",
        )
    key = await asyncio.to_thread(generate_key, template.key_policy, csr.public_key())
    outcome = await est.service.enroll(
        EnrollmentRequest(
            csr=rebuild_csr(csr, key),
            template=label.template,
            requester=auth.requester,
            transaction_id=f"serverkeygen.{uuid.uuid4()}",
        )
    )
    if isinstance(outcome, Pending):
        return text(
            503,
            "the CA did not answer at once; request again (a new key will be generated)",
            {"Retry-After": str(outcome.retry_after)},
        )
    if not isinstance(outcome, Issued):
        return denied_reply(outcome, realm=est.settings.realm)
    pkcs8 = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return EstReply(
        200,
        serverkeygen_body(pkcs8, outcome.certificate),
        f"multipart/mixed; boundary={MULTIPART_BOUNDARY}",
    )
