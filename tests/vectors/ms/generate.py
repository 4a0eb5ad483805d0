"""Regenerate the MS-WSTEP/MS-XCEP fixtures in this directory (see README.md).

The XML shapes follow the examples in MS-WSTEP §4 and MS-XCEP §4 (element order, namespaces,
WCF's ActivityId header, ``xsi:nil`` usage); the base64 payloads are certificates and requests
made here with a throw-away RSA CA, because the specification's own payloads are expired and
carry keys nobody holds. Run: ``.venv/bin/python tests/vectors/ms/generate.py``.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HERE = Path(__file__).resolve().parent
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _cert(subject, issuer, key, signer, *, ca: bool, days: int, serial: int):  # type: ignore[no-untyped-def]
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    return b.sign(signer, hashes.SHA256())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def main() -> None:
    root_key, sub_key, leaf_key, new_key = _key(), _key(), _key(), _key()
    root = _cert(
        _name("Fixture Root CA"),
        _name("Fixture Root CA"),
        root_key,
        root_key,
        ca=True,
        days=3650,
        serial=1,
    )
    sub = _cert(
        _name("Fixture Issuing CA"), root.subject, sub_key, root_key, ca=True, days=1825, serial=2
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("abby"))
        .issuer_name(sub.subject)
        .public_key(leaf_key.public_key())
        .serial_number(0x18D9D5D300000000003D)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=365))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(sub_key, hashes.SHA256())
    )
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name("abby"))
        .sign(new_key, hashes.SHA256())
    )
    der = serialization.Encoding.DER
    files = {
        "rsa_leaf.key": leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        "chain.pem": b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (sub, root)),
        "leaf.pem": leaf.public_bytes(serialization.Encoding.PEM),
    }
    b64 = lambda data: base64.encodebytes(data).decode().strip()  # noqa: E731 (76-col base64, like WCF)
    subs = {
        "CSR": b64(csr.public_bytes(der)),
        "LEAF": b64(leaf.public_bytes(der)),
        "CHAIN_P7": b64(pkcs7.serialize_certificates([root, sub, leaf], der)),
        "SUBCA": b64(sub.public_bytes(der)),
        "RENEWAL_CMS": b64(
            pkcs7.PKCS7SignatureBuilder()
            .set_data(csr.public_bytes(der))
            .add_signer(leaf, leaf_key, hashes.SHA256())
            .sign(der, [pkcs7.PKCS7Options.NoCapabilities, pkcs7.PKCS7Options.Binary])
        ),
    }
    for template in sorted(HERE.glob("*.xml.in")):
        text = template.read_text()
        for key, value in subs.items():
            text = text.replace(f"@{key}@", value)
        (HERE / template.name[: -len(".in")]).write_text(text)
    for name, data in files.items():
        (HERE / name).write_bytes(data)


if __name__ == "__main__":
    main()
