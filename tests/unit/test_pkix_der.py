"""The shared DER primitives (gateway.pkix.der) against asn1crypto and cryptography, and the
CSR key fingerprint's fast path (the CSR's own SubjectPublicKeyInfo bytes) against the
re-encoded key for every key type and point form."""

from __future__ import annotations

import hashlib

import pytest
from asn1crypto import core
from asn1crypto import csr as asn1_csr
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID
from hypothesis import given
from hypothesis import strategies as st

from gateway.model import EnrollmentRequest
from gateway.pkix import der
from gateway.pkix.csr import csr_spki_sha256, spki_der, spki_fingerprint
from gateway.service import local_requester
from tests.unit.policy_helpers import build_csr, cn


@given(st.integers(min_value=-(2**130), max_value=2**130))
def test_integer_matches_asn1crypto(value: int) -> None:
    assert der.integer(value) == core.Integer(value).dump()


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (1, "020101"),
        (127, "02017f"),
        (128, "02020080"),
        (256, "02020100"),
        (-1, "0201ff"),
        (-128, "020180"),
        (-129, "0202ff7f"),
        (-256, "0202ff00"),
        (-32768, "02028000"),
    ],
)
def test_integer_is_minimal_twos_complement(value: int, encoded: str) -> None:
    assert der.integer(value).hex() == encoded


@given(st.lists(st.integers(min_value=0, max_value=2**70), min_size=1, max_size=6))
def test_oid_matches_asn1crypto(arcs: list[int]) -> None:
    dotted = ".".join(map(str, [1, 3, *arcs]))
    assert der.oid(dotted) == core.ObjectIdentifier(dotted).dump()


def test_oid_with_large_arcs() -> None:
    # 2.999.3 is X.690 §8.19.5's example: the first two arcs combine above 127
    assert der.oid("2.999.3").hex() == "0603883703"
    assert der.oid("1.3.6.1.4.1.311.21.7").hex() == "06092b0601040182371507"


@pytest.mark.parametrize("text", ["1", "3.1", "1.40", "1.2.-3", "1..2", "a.b"])
def test_oid_refuses_what_is_not_an_oid(text: str) -> None:
    with pytest.raises(ValueError):
        der.oid(text)


def test_long_lengths_use_the_long_form() -> None:
    assert der.tlv(0x04, b"x" * 200)[:3] == bytes((0x04, 0x81, 200))
    assert der.tlv(0x04, b"x" * 300)[:4] == bytes((0x04, 0x82, 0x01, 0x2C))
    element = der.tlv(0x04, b"x" * 300)
    assert der.header_length(element, 0) == 4
    assert der.element_length(element, 0) == len(element)


@pytest.mark.parametrize(
    "extension",
    [
        x509.Extension(ExtensionOID.BASIC_CONSTRAINTS, True, x509.BasicConstraints(False, None)),
        x509.Extension(
            ExtensionOID.EXTENDED_KEY_USAGE,
            False,
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
        ),
    ],
)
def test_extension_matches_asn1crypto(extension: x509.Extension[x509.ExtensionType]) -> None:
    encoded = der.extension(extension)
    parsed = asn1_x509.Extension.load(encoded)
    assert parsed["extn_id"].dotted == extension.oid.dotted_string
    assert parsed["critical"].native is extension.critical
    assert parsed["extn_value"].contents == extension.value.public_bytes()
    # critical FALSE is the DEFAULT and omitted (X.690 §11.5)
    assert (b"\x01\x01\xff" in encoded) is extension.critical


_KEYS = {
    "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "p521": lambda: ec.generate_private_key(ec.SECP521R1()),
    "secp256k1": lambda: ec.generate_private_key(ec.SECP256K1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
    "ed448": ed448.Ed448PrivateKey.generate,
    "rsa2048": lambda: rsa.generate_private_key(65537, 2048),
}
_SINGLE_FORM = {"p256", "p384", "p521", "ed25519", "ed448"}


@pytest.mark.parametrize("kind", sorted(_KEYS))
def test_csr_spki_is_the_encoded_key_and_single_form_keys_are_recognised(kind: str) -> None:
    csr = build_csr(_KEYS[kind](), cn("spki.example.test"))
    raw = der.csr_spki(csr.public_bytes(serialization.Encoding.DER))
    encoded = csr.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert raw == encoded
    assert der.is_canonical_spki(raw) is (kind in _SINGLE_FORM)
    request = EnrollmentRequest(
        csr=csr, template="t", requester=local_requester("a"), transaction_id="x"
    )
    assert request.spki_sha256 == hashlib.sha256(encoded).hexdigest()
    assert spki_der(request.public_key) == encoded


def test_compressed_point_is_fingerprinted_as_cryptography_encodes_the_key() -> None:
    """A P-256 CSR whose key is a compressed point (SEC 1 §2.3.3): its SPKI bytes differ from
    the uncompressed re-encoding, so the fast path must not hash them as they are."""
    key = ec.generate_private_key(ec.SECP256R1())
    request = asn1_csr.CertificationRequest.load(
        build_csr(key, cn("spki.example.test")).public_bytes(serialization.Encoding.DER)
    )
    info = request["certification_request_info"]
    compressed = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    info["subject_pk_info"] = asn1_keys.PublicKeyInfo(
        {
            "algorithm": info["subject_pk_info"]["algorithm"],
            "public_key": compressed,
        }
    )
    signature = key.sign(info.dump(force=True), ec.ECDSA(hashes.SHA256()))
    request["signature"] = signature
    csr = x509.load_der_x509_csr(request.dump(force=True))
    raw = der.csr_spki(csr.public_bytes(serialization.Encoding.DER))
    assert len(raw) == 59 and not der.is_canonical_spki(raw)
    assert csr_spki_sha256(csr) == spki_fingerprint(key.public_key())


@pytest.mark.parametrize("data", [b"", b"\x30", b"\x30\x03\x30\x01\x02", b"\x30\x02\x05\x00"])
def test_csr_spki_refuses_what_is_not_a_request(data: bytes) -> None:
    with pytest.raises(ValueError):
        der.csr_spki(data)
