"""The issuer's own TBSCertificate encoding is byte-for-byte what cryptography's builder
encodes for the same inputs, for every CA key type the key store accepts."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import asn1crypto.x509
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    NameOID,
    ObjectIdentifier,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backends.local_ca import der
from backends.local_ca.keystore import SoftwareSigner
from gateway.pkix.csr import spki_der
from gateway.pkix.der import extension as encode_extension

_CA_KEYS = {
    "p256": ec.generate_private_key(ec.SECP256R1()),
    "p384": ec.generate_private_key(ec.SECP384R1()),
    "p521": ec.generate_private_key(ec.SECP521R1()),
    "rsa2048": rsa.generate_private_key(65537, 2048),
}
_SUBJECT_KEYS = [
    ec.generate_private_key(ec.SECP256R1()).public_key(),
    ec.generate_private_key(ec.SECP384R1()).public_key(),
    rsa.generate_private_key(65537, 2048).public_key(),
    ed25519.Ed25519PrivateKey.generate().public_key(),
    ed448.Ed448PrivateKey.generate().public_key(),
]
_ISSUER = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "certgate tests"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Issuing CA"),
    ]
)

# cryptography limits CN/O/OU to 64 UTF-8 octets: 16 characters of up to 4 octets each
_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=16)
_attribute = st.one_of(
    st.builds(lambda v: x509.NameAttribute(NameOID.COMMON_NAME, v), _text),
    st.builds(lambda v: x509.NameAttribute(NameOID.ORGANIZATION_NAME, v), _text),
    st.builds(lambda v: x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, v), _text),
    st.sampled_from([x509.NameAttribute(NameOID.COUNTRY_NAME, c) for c in ("US", "DE", "JP")]),
    st.builds(
        lambda v: x509.NameAttribute(NameOID.SERIAL_NUMBER, v),
        st.from_regex(r"[A-Za-z0-9 ]{1,20}", fullmatch=True),
    ),
)
_rdn = st.lists(_attribute, min_size=1, max_size=3, unique_by=lambda a: (a.oid, a.value)).map(
    x509.RelativeDistinguishedName
)
_name = st.lists(_rdn, max_size=4).map(x509.Name)

_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
_general_name = st.one_of(
    st.lists(_label, min_size=2, max_size=4).map(lambda p: x509.DNSName(".".join(p))),
    st.ip_addresses().map(lambda a: x509.IPAddress(ipaddress.ip_address(a))),
    _label.map(lambda u: x509.RFC822Name(f"{u}@example.test")),
    _label.map(lambda p: x509.UniformResourceIdentifier(f"https://example.test/{p}")),
)
_moment = st.datetimes(
    min_value=datetime(1950, 1, 1), max_value=datetime(2200, 12, 31), timezones=st.just(UTC)
)


def _optional_extensions(draw: st.DrawFn) -> list[x509.ExtensionType]:
    chosen: list[x509.ExtensionType] = []
    if draw(st.booleans()):
        chosen.append(x509.BasicConstraints(ca=False, path_length=None))
    if draw(st.booleans()):
        encipher = draw(st.booleans())
        chosen.append(
            x509.KeyUsage(True, False, encipher, False, False, False, False, False, False)
        )
    if draw(st.booleans()):
        chosen.append(
            x509.ExtendedKeyUsage(
                draw(
                    st.lists(
                        st.sampled_from(
                            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                        ),
                        min_size=1,
                        max_size=2,
                        unique=True,
                    )
                )
            )
        )
    if draw(st.booleans()):
        chosen.append(
            x509.SubjectAlternativeName(draw(st.lists(_general_name, min_size=1, max_size=5)))
        )
    if draw(st.booleans()):
        chosen.append(
            x509.UnrecognizedExtension(
                ObjectIdentifier("1.3.6.1.4.1.311.21.7"), draw(st.binary(max_size=300))
            )
        )
    if draw(st.booleans()):
        url = x509.UniformResourceIdentifier("http://pki.example.test/issuing.crt")
        chosen.append(
            x509.AuthorityInformationAccess(
                [x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS, url)]
            )
        )
    return chosen


@st.composite
def _certificates(draw: st.DrawFn) -> dict[str, object]:
    not_before = draw(_moment)
    return {
        "ca": draw(st.sampled_from(sorted(_CA_KEYS))),
        "serial": draw(st.integers(min_value=1, max_value=(1 << 159) - 1)),
        "not_before": not_before,
        "not_after": not_before + draw(st.timedeltas(timedelta(seconds=1), timedelta(days=9000))),
        "subject": draw(_name),
        "key": draw(st.sampled_from(_SUBJECT_KEYS)),
        "extensions": [
            x509.Extension(value.oid, draw(st.booleans()), value)
            for value in _optional_extensions(draw)
        ],
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_certificates())
def test_tbs_matches_cryptography_builder(case: dict[str, object]) -> None:
    ca_key = _CA_KEYS[case["ca"]]  # type: ignore[index]
    signer = SoftwareSigner(ca_key)
    extensions: list[x509.Extension[x509.ExtensionType]] = case["extensions"]  # type: ignore[assignment]
    reference = x509.CertificateBuilder(
        issuer_name=_ISSUER,
        subject_name=case["subject"],  # type: ignore[arg-type]
        public_key=case["key"],  # type: ignore[arg-type]
        serial_number=case["serial"],  # type: ignore[arg-type]
        not_valid_before=case["not_before"],  # type: ignore[arg-type]
        not_valid_after=case["not_after"],  # type: ignore[arg-type]
        extensions=extensions,
    ).sign(ca_key, signer._hash)

    layout = der.CertificateLayout(signer.signature_algorithm, _ISSUER)
    tbs = layout.tbs(
        serial=case["serial"],  # type: ignore[arg-type]
        not_before=case["not_before"],  # type: ignore[arg-type]
        not_after=case["not_after"],  # type: ignore[arg-type]
        subject=case["subject"],  # type: ignore[arg-type]
        spki_der=spki_der(case["key"]),  # type: ignore[arg-type]
        extensions=[encode_extension(e) for e in extensions],
    )
    assert tbs == reference.tbs_certificate_bytes

    ours = x509.load_der_x509_certificate(layout.certificate(tbs, signer.sign_tbs(tbs)))
    reference_der = asn1crypto.x509.Certificate.load(reference.public_bytes(Encoding.DER))
    assert signer.signature_algorithm == reference_der["signature_algorithm"].dump()
    assert ours.signature_algorithm_oid == reference.signature_algorithm_oid
    # the signature verifies with the CA key (raises InvalidSignature otherwise)
    public = ca_key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(ours.signature, tbs, padding.PKCS1v15(), signer._hash)
    else:
        public.verify(ours.signature, tbs, ec.ECDSA(signer._hash))


@pytest.mark.parametrize(
    ("moment", "encoded"),
    [
        (datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC), b"\x17\x0d491231235959Z"),
        (datetime(2050, 1, 1, tzinfo=UTC), b"\x18\x0f20500101000000Z"),
        (datetime(1999, 1, 2, 3, 4, 5, 999999, tzinfo=UTC), b"\x17\x0d990102030405Z"),
    ],
)
def test_time_switches_to_generalized_time_in_2050(moment: datetime, encoded: bytes) -> None:
    assert der.time(moment) == encoded


def test_subject_key_identifier_extension_matches_cryptography() -> None:
    for key in _SUBJECT_KEYS:
        ski = x509.SubjectKeyIdentifier.from_public_key(key)
        expected = encode_extension(x509.Extension(ski.oid, False, ski))
        assert der.subject_key_identifier_extension(der.key_identifier(spki_der(key))) == expected


def test_key_identifier_refuses_a_spki_without_a_bit_string() -> None:
    with pytest.raises(ValueError, match="BIT STRING"):
        der.key_identifier(bytes.fromhex("300430000400"))
