"""A small SCEP client for tests (asn1crypto + cryptography): builds every request type with
the knobs real clients turn (content cipher, key transport, digest, Windows-style signer) and
reads CertReps, checking their signature with an independent code path (``openssl cms``)
where a test asks for it.
"""

from __future__ import annotations

import base64
import os
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime

from asn1crypto import cms as asn1_cms
from asn1crypto import core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.pkix import cms
from protocols.scep import messages as m
from tests import pki_helpers as pki

PrivateKey = pki.PrivateKey


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def self_signed(
    key: PrivateKey,
    cn: str = "scep-client",
    *,
    digest: hashes.HashAlgorithm | None = None,
    windows: bool = False,
) -> x509.Certificate:
    """The transient signer certificate of RFC 8894 §2.3. ``windows=True`` imitates the Windows
    SCEP client: subject ``CN=SCEP Protocol Certificate``, SHA-1, a *critical* AKI."""
    key_usage = x509.KeyUsage(True, False, True, False, False, False, False, False, False)
    extensions: list[pki.Extension] = [(key_usage, True)]
    if windows:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key())  # type: ignore[arg-type]
        extensions.append((aki, True))
    subject = "SCEP Protocol Certificate" if windows else cn
    builder = pki.builder(subject, key.public_key(), extensions=extensions)
    if windows:
        assert isinstance(key, rsa.RSAPrivateKey)
        return _resign_sha1(builder.sign(key, hashes.SHA256()), key)
    return builder.sign(key, digest or hashes.SHA256())


def _resign_sha1(cert: x509.Certificate, key: rsa.RSAPrivateKey) -> x509.Certificate:
    """Re-sign with sha1WithRSAEncryption (cryptography's builder no longer signs SHA-1)."""
    from cryptography.hazmat.primitives.asymmetric import padding

    parsed = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    tbs = parsed["tbs_certificate"]
    algorithm = asn1_x509.SignedDigestAlgorithm({"algorithm": "sha1_rsa"})
    tbs["signature"] = algorithm
    signature = key.sign(tbs.dump(force=True), padding.PKCS1v15(), hashes.SHA1())
    out = asn1_x509.Certificate(
        {"tbs_certificate": tbs, "signature_algorithm": algorithm, "signature_value": signature}
    )
    return x509.load_der_x509_certificate(out.dump())


def make_csr(
    key: PrivateKey,
    cn: str = "device-1",
    *,
    challenge: str | None = None,
    uris: tuple[str, ...] = (),
    key_usage: x509.KeyUsage | None = None,
    digest: hashes.HashAlgorithm | None = None,
) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(pki.cn_name(cn))
    if challenge is not None:
        builder = builder.add_attribute(
            x509.oid.AttributeOID.CHALLENGE_PASSWORD, challenge.encode()
        )
    if uris:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
            critical=False,
        )
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    if isinstance(digest, hashes.SHA1):
        assert isinstance(key, rsa.RSAPrivateKey)
        return _resign_csr_sha1(builder.sign(key, hashes.SHA256()), key)
    return builder.sign(key, digest or hashes.SHA256())


def _resign_csr_sha1(
    csr: x509.CertificateSigningRequest, key: rsa.RSAPrivateKey
) -> x509.CertificateSigningRequest:
    """A SHA-1-signed CSR, as legacy SCEP clients send (the builder refuses SHA-1)."""
    from asn1crypto import csr as asn1_csr
    from cryptography.hazmat.primitives.asymmetric import padding

    parsed = asn1_csr.CertificationRequest.load(csr.public_bytes(serialization.Encoding.DER))
    info = parsed["certification_request_info"]
    signature = key.sign(info.dump(), padding.PKCS1v15(), hashes.SHA1())
    out = asn1_csr.CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": {"algorithm": "sha1_rsa"},
            "signature": signature,
        }
    )
    return x509.load_der_x509_csr(out.dump())


@dataclass
class CertRep:
    """A parsed CertRep (RFC 8894 §3.3.2)."""

    status: int
    fail_info: int | None
    fail_text: str | None
    transaction_id: str
    recipient_nonce: bytes
    sender_nonce: bytes
    message_type: int
    signer: x509.Certificate
    digest: str
    certificates: tuple[x509.Certificate, ...] = ()
    crls: tuple[bytes, ...] = ()
    cipher: str | None = None
    key_transport: str | None = None


def _attr_str(msg: cms.SignedMessage, oid: str) -> str | None:
    der = msg.attributes.get(oid)
    return None if der is None else str(core.Asn1Value.load(der).native)


def _attr_bytes(msg: cms.SignedMessage, oid: str) -> bytes:
    der = msg.attributes.get(oid)
    return b"" if der is None else bytes(core.OctetString.load(der).native)


def _enveloped_algorithms(der: bytes) -> tuple[str, str]:
    info = asn1_cms.ContentInfo.load(der)
    env = info["content"]
    cipher = env["encrypted_content_info"]["content_encryption_algorithm"]["algorithm"].native
    transport = env["recipient_infos"][0].chosen["key_encryption_algorithm"]["algorithm"].native
    return cipher, transport


@dataclass
class Client:
    """One SCEP client identity: its key, its signer certificate, and the RA to encrypt to."""

    ra: x509.Certificate
    key: PrivateKey = field(default_factory=rsa_key)
    signer: x509.Certificate | None = None

    def __post_init__(self) -> None:
        if self.signer is None:
            self.signer = self_signed(self.key)

    def message(
        self,
        message_type: int,
        body: bytes,
        *,
        transaction_id: str | None = None,
        cipher: str = "aes128_cbc",
        key_transport: str = "rsaes_pkcs1v15",
        digest: str = "sha256",
        nonce: bytes | None = None,
        recipient: x509.Certificate | None = None,
        signing_time: datetime | None = None,
    ) -> bytes:
        """A pkiMessage (RFC 8894 §3.2): ``body`` enveloped to the RA, signed by us."""
        assert self.signer is not None
        envelope = cms.envelope(
            body, recipient or self.ra, cipher=cipher, key_transport=key_transport
        )
        attrs = [
            cms.attribute(m.OID_MESSAGE_TYPE, core.PrintableString(str(message_type))),
            cms.attribute(
                m.OID_TRANSACTION_ID,
                core.PrintableString(transaction_id or os.urandom(8).hex()),
            ),
            cms.attribute(m.OID_SENDER_NONCE, core.OctetString(nonce or os.urandom(16))),
        ]
        return cms.sign(
            envelope,
            self.signer,
            self.key,
            digest=digest,
            attributes=attrs,
            signing_time=signing_time,
        )

    def pkcs_req(
        self, csr: x509.CertificateSigningRequest, *, renewal: bool = False, **kw: object
    ) -> bytes:
        kind = m.MessageType.RENEWAL_REQ if renewal else m.MessageType.PKCS_REQ
        return self.message(int(kind), csr.public_bytes(serialization.Encoding.DER), **kw)  # type: ignore[arg-type]

    def cert_poll(self, issuer: x509.Name, subject: x509.Name, **kw: object) -> bytes:
        body = m.IssuerAndSubject(
            {
                "issuer": asn1_x509.Name.load(issuer.public_bytes()),
                "subject": asn1_x509.Name.load(subject.public_bytes()),
            }
        ).dump()
        return self.message(int(m.MessageType.CERT_POLL), body, **kw)  # type: ignore[arg-type]

    def issuer_and_serial(self, kind: int, issuer: x509.Name, serial: int, **kw: object) -> bytes:
        body = asn1_cms.IssuerAndSerialNumber(
            {"issuer": asn1_x509.Name.load(issuer.public_bytes()), "serial_number": serial}
        ).dump()
        return self.message(kind, body, **kw)  # type: ignore[arg-type]

    def read(self, der: bytes) -> CertRep:
        """Verify and decode a CertRep; decrypt its envelope with our key."""
        msg = cms.parse_signed(der)
        cms.verify_signed(msg)
        status = int(_attr_str(msg, m.OID_PKI_STATUS) or "-1")
        fail = _attr_str(msg, m.OID_FAIL_INFO)
        rep = CertRep(
            status=status,
            fail_info=int(fail) if fail is not None else None,
            fail_text=_attr_str(msg, m.OID_FAIL_INFO_TEXT),
            transaction_id=_attr_str(msg, m.OID_TRANSACTION_ID) or "",
            recipient_nonce=_attr_bytes(msg, m.OID_RECIPIENT_NONCE),
            sender_nonce=_attr_bytes(msg, m.OID_SENDER_NONCE),
            message_type=int(_attr_str(msg, m.OID_MESSAGE_TYPE) or "-1"),
            signer=msg.signer,
            digest=msg.digest_algorithm,
        )
        if status == 0 and msg.content is not None:
            assert self.signer is not None and isinstance(self.key, rsa.RSAPrivateKey)
            plain = cms.decrypt_enveloped(
                msg.content, self.signer, self.key, allowed_ciphers=cms.CIPHERS
            )
            rep.certificates, rep.crls = cms.read_certs_only(plain.content)
            rep.cipher, rep.key_transport = _enveloped_algorithms(msg.content)
        return rep


def get_query(der: bytes, *, macos: bool = False, cisco: bool = False) -> str:
    """``operation=PKIOperation&message=...`` as the given client encodes it."""
    b64 = base64.b64encode(der).decode()
    if cisco:
        b64 = "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
        encoded = urllib.parse.quote(b64, safe="")
    elif macos:
        encoded = b64.replace("=", "%3D")  # '+' and '/' left raw
    else:
        encoded = urllib.parse.quote(b64, safe="")
    return f"operation=PKIOperation&message={encoded}"
