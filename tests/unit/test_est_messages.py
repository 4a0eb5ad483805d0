"""EST wire codecs: body decoding (RFC 8951 §3), csrattrs DER (RFC 7030 §4.5.2 vector),
the serverkeygen multipart (§4.4.2), tls-unique comparison; property tests on every parser."""

from __future__ import annotations

import base64
import email
import email.policy
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import AttributeOID, NameOID
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import BadCSR, BadRequest
from gateway.pkix.der import oid
from gateway.policy.loader import load_templates
from protocols.est.csrattrs import template_csrattrs
from protocols.est.messages import (
    WHITESPACE,
    CsrAttr,
    challenge_password,
    decode_base64_body,
    encode_base64,
    encode_csrattrs,
    media_type,
    parse_csr_body,
    request_fingerprint,
    serverkeygen_body,
    tls_unique_matches,
)
from tests.helpers import TEMPLATES, make_csr
from tests.unit.policy_helpers import make_template


def _der(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.DER)


def test_body_with_crlf_line_breaks_decodes_like_one_line() -> None:
    der = _der(make_csr(cn="x"))
    wrapped = encode_base64(der)
    assert b"\r\n" in wrapped
    assert decode_base64_body(wrapped) == der == decode_base64_body(base64.b64encode(der))
    assert decode_base64_body(b" \t" + wrapped.replace(b"\r\n", b"\n ")) == der


def test_whitespace_removal_equals_the_regex_it_replaced() -> None:
    # decode_base64_body strips with bytes.translate; the plain form is a regex substitution
    plain = re.compile(rb"[ \t\r\n]+")
    der = _der(make_csr(cn="x"))
    for body in (
        encode_base64(der),
        base64.encodebytes(der),
        b" \t" + base64.b64encode(der) + b"\r\n\r\n",
        b"\x0b\x0c" + base64.b64encode(der),  # vertical tab and form feed are not stripped
    ):
        assert body.translate(None, WHITESPACE) == plain.sub(b"", body)


def test_raw_der_body_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="raw DER"):
        decode_base64_body(_der(make_csr(cn="x")))


def test_truncated_base64_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="truncated"):
        decode_base64_body(base64.b64encode(_der(make_csr(cn="x")))[:-1])


def test_empty_body_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="empty"):
        decode_base64_body(b"\r\n")


def test_non_csr_der_is_a_bad_csr() -> None:
    with pytest.raises(BadCSR):
        parse_csr_body(base64.b64encode(b"\x30\x03\x02\x01\x01"))


def test_csr_whose_der_ends_in_a_whitespace_byte_parses() -> None:
    # DER ending in 0x09-0x0d/0x20 must not be stripped (found by the integration tests).
    for _ in range(400):
        der = _der(make_csr(cn="real-cert"))
        if der[-1:] in (b" ", b"\t", b"\n", b"\r", b"\x0b", b"\x0c"):
            assert _der(parse_csr_body(base64.b64encode(der))) == der
            return
    pytest.skip("no CSR ending in a whitespace byte was generated")


def test_media_type_ignores_case_and_parameters() -> None:
    assert media_type("Application/PKCS10; charset=x") == "application/pkcs10"
    assert media_type(None) == ""


def test_rfc7030_csrattrs_example_encodes_byte_for_byte() -> None:
    # RFC 7030 §4.5.2 example (as corrected by RFC 8951 §4): challengePassword,
    # ecPublicKey{secp384r1}, extensionRequest{macAddress}, ecdsaWithSHA384.
    items = [
        CsrAttr("1.2.840.113549.1.9.7"),
        CsrAttr("1.2.840.10045.2.1", (oid("1.3.132.0.34"),)),
        CsrAttr("1.2.840.113549.1.9.14", (oid("1.3.6.1.1.1.1.22"),)),
        CsrAttr("1.2.840.10045.4.3.3"),
    ]
    expected = (
        "MEEGCSqGSIb3DQEJBzASBgcqhkjOPQIBMQcGBSuBBAAiMBYGCSqGSIb3DQEJDjEJBgcr"
        "BgEBAQEWBggqhkjOPQQDAw=="
    )
    assert base64.b64encode(encode_csrattrs(items)).decode() == expected


def test_template_csrattrs_ask_for_the_pop_link_only_when_required() -> None:
    template = make_template()
    oids = [item.oid for item in template_csrattrs(template, pop_link=False)]
    assert "1.2.840.113549.1.9.7" not in oids
    linked = [item.oid for item in template_csrattrs(template, pop_link=True)]
    assert "1.2.840.113549.1.9.7" in linked
    assert len([o for o in linked if o == "1.2.840.113549.1.9.14"]) <= 1


def test_tls_unique_link_compares_base64_of_the_binding() -> None:
    binding = b"\x01\x02finished"
    assert tls_unique_matches(base64.b64encode(binding), binding)
    assert not tls_unique_matches(base64.b64encode(b"other"), binding)


def test_challenge_password_is_read_from_the_csr() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "p")]))
        .add_attribute(AttributeOID.CHALLENGE_PASSWORD, b"c2VjcmV0")
        .sign(key, hashes.SHA256())
    )
    assert challenge_password(csr) == b"c2VjcmV0"
    assert challenge_password(make_csr(cn="none")) is None


def test_serverkeygen_multipart_has_key_then_certificate() -> None:
    from tests.pki_helpers import self_signed

    key, cert = self_signed()
    pkcs8 = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    body = serverkeygen_body(pkcs8, cert)
    message = email.message_from_bytes(
        b"Content-Type: multipart/mixed; boundary=est-server-boundary\r\n\r\n" + body,
        policy=email.policy.HTTP,
    )
    parts = list(message.iter_parts())  # type: ignore[attr-defined]
    assert [p.get_content_type() for p in parts] == ["application/pkcs8", "application/pkcs7-mime"]
    assert base64.b64decode(str(parts[0].get_payload())) == pkcs8
    certs = pkcs7.load_der_pkcs7_certificates(base64.b64decode(str(parts[1].get_payload())))
    assert certs == [cert]


@given(st.binary(max_size=4096))
def test_any_bytes_give_a_csr_or_a_bad_request(data: bytes) -> None:
    try:
        parse_csr_body(data)
    except (BadRequest, BadCSR):
        pass


@given(st.binary(min_size=1, max_size=1024).map(base64.b64encode))
def test_any_base64_gives_a_csr_or_a_bad_csr(data: bytes) -> None:
    try:
        parse_csr_body(data)
    except BadCSR:
        pass


def test_certs_only_is_a_degenerate_signed_data() -> None:
    from asn1crypto import cms

    from gateway.pkix.certsonly import certs_only_der
    from tests.pki_helpers import self_signed

    certs = [self_signed("a")[1], self_signed("b")[1]]
    info = cms.ContentInfo.load(certs_only_der(certs))
    signed = info["content"]
    assert info["content_type"].native == "signed_data"
    assert signed["version"].native == "v1" and len(signed["digest_algorithms"]) == 0
    assert signed["encap_content_info"]["content"].native is None
    assert len(signed["signer_infos"]) == 0 and len(signed["certificates"]) == 2
    with pytest.raises(ValueError):
        certs_only_der([])


def _signed(
    key: ec.EllipticCurvePrivateKey,
    cn: str,
    *,
    password: bytes | None = None,
    dns: str | None = None,
    other: bool = False,
) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    if password is not None:
        builder = builder.add_attribute(AttributeOID.CHALLENGE_PASSWORD, password)
    if other:
        builder = builder.add_attribute(AttributeOID.UNSTRUCTURED_NAME, b"router-7")
    if dns is not None:
        san = x509.SubjectAlternativeName([x509.DNSName(dns)])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(key, hashes.SHA256())


def test_request_fingerprint_ignores_the_signature_and_the_pop_link() -> None:
    """RFC 7030 §4.2.3: a retry may re-create the CSR with a new session's tls-unique."""
    key = ec.generate_private_key(ec.SECP256R1())
    first = _signed(key, "dev", password=b"bGluaw==", dns="a.example", other=True)
    again = _signed(key, "dev", password=b"b3RoZXI=", dns="a.example", other=True)
    assert _der(first) != _der(again)
    assert request_fingerprint(first) == request_fingerprint(again)
    unlinked = _signed(key, "dev", dns="a.example", other=True)
    assert request_fingerprint(unlinked) == request_fingerprint(first)


def test_request_fingerprint_differs_for_anything_the_csr_asks_for() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    base = request_fingerprint(_signed(key, "dev", dns="a.example"))
    assert request_fingerprint(_signed(key, "other", dns="a.example")) != base
    assert request_fingerprint(_signed(key, "dev", dns="b.example")) != base
    assert request_fingerprint(_signed(key, "dev", dns="a.example", other=True)) != base
    assert request_fingerprint(_signed(key, "dev")) != base
    other_key = ec.generate_private_key(ec.SECP256R1())
    assert request_fingerprint(_signed(other_key, "dev", dns="a.example")) != base


def test_template_csrattrs_end_with_a_bare_oid() -> None:
    """libest's csrattrs walker only stops after a bare OID: every template's list ends so
    (shipped templates, and key policies whose key-type entries are all bare OIDs)."""
    templates = [
        *load_templates(TEMPLATES).values(),
        make_template("ed", key_policy={"algorithms": ["ed25519", "ed448"]}),
        make_template("rsa", key_policy={"algorithms": ["rsa"]}, san={"required": True}),
    ]
    for template in templates:
        for pop_link in (False, True):
            items = template_csrattrs(template, pop_link=pop_link)
            assert items, template.name
            assert items[-1].values is None, (template.name, items[-1])


_SAMPLE = _der(_signed(ec.generate_private_key(ec.SECP256R1()), "dev", password=b"x", other=True))


@given(st.integers(0, len(_SAMPLE) - 1), st.integers(1, 255))
def test_request_fingerprint_of_any_parsable_csr_is_a_digest_or_a_bad_csr(
    at: int, flip: int
) -> None:
    mutated = _SAMPLE[:at] + bytes([_SAMPLE[at] ^ flip]) + _SAMPLE[at + 1 :]
    try:
        csr = parse_csr_body(base64.b64encode(mutated))
        assert len(request_fingerprint(csr)) == 64
    except (BadCSR, BadRequest):
        pass
