"""SCEP codecs without sockets: the failInfo mapping, GET decoding, and property tests that
arbitrary bytes only ever raise the protocol's own errors."""

from __future__ import annotations

import base64
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import ErrorCode
from gateway.pkix import cms
from protocols.scep import messages as m
from protocols.scep.errors import FAIL_INFO, fail_info, fail_text
from tests import scep_client as sc

RA_KEY = sc.rsa_key()
RA = sc.self_signed(RA_KEY, "test RA")
CLIENT = sc.Client(RA)
VALID = CLIENT.pkcs_req(sc.make_csr(CLIENT.key, challenge="x" * 10), transaction_id="t-1")


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_maps_to_a_fail_info(code: ErrorCode) -> None:
    assert isinstance(FAIL_INFO[code], m.FailInfo)
    assert fail_info(code.value) is FAIL_INFO[code]
    assert fail_text(code.value, "secret detail")


def test_not_found_is_badcertid_and_the_rest_badrequest() -> None:
    assert fail_info("not-found") is m.FailInfo.BAD_CERT_ID
    assert fail_info("policy-denied") is m.FailInfo.BAD_REQUEST
    assert fail_info("no-such-code") is m.FailInfo.BAD_REQUEST


def test_unauthorized_and_internal_details_are_not_revealed() -> None:
    assert fail_text("unauthorized", "password was hunter2") == "not authorized"
    assert fail_text("internal", "stack trace") == "internal error"


def test_valid_message_parses_with_its_attributes() -> None:
    msg = m.parse_pki_message(VALID)
    m.verify(msg)
    assert msg.message_type == m.MessageType.PKCS_REQ
    assert msg.transaction_id == "t-1"
    assert len(msg.sender_nonce) == 16
    assert msg.signer == CLIENT.signer


@pytest.mark.parametrize("style", ["plain", "macos", "cisco"])
def test_get_message_decodes_each_client_encoding(style: str) -> None:
    query = sc.get_query(VALID, macos=style == "macos", cisco=style == "cisco")
    assert m.decode_get_message(query) == VALID


def test_get_message_with_plus_turned_into_space_by_a_proxy_is_not_mangled() -> None:
    raw = base64.b64encode(VALID).decode()
    assert "+" in raw or "/" in raw
    assert m.decode_get_message("message=" + raw) == VALID  # '+' raw, as macOS sends it


def test_get_message_without_padding_is_accepted() -> None:
    raw = base64.b64encode(VALID).decode().rstrip("=")
    assert m.decode_get_message("message=" + urllib.parse.quote(raw, safe="")) == VALID


def test_get_without_message_is_a_transport_error() -> None:
    with pytest.raises(m.TransportError):
        m.decode_get_message("operation=PKIOperation")


def test_caps_text_is_one_keyword_per_line() -> None:
    assert m.caps_text(("AES", "SHA-256")) == "AES\nSHA-256\n"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_escape_as_other_errors(data: bytes) -> None:
    try:
        msg = m.parse_pki_message(data)
    except (m.TransportError, m.MessageError):
        return
    try:
        m.verify(msg)
    except m.MessageError:
        pass


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=len(VALID) - 1), st.integers(1, 255), st.booleans())
def test_mutated_valid_messages_fail_only_with_protocol_errors(
    position: int, xor: int, truncate: bool
) -> None:
    data = bytearray(VALID)
    data[position] ^= xor
    mutated = bytes(data[:position] if truncate else data)
    try:
        msg = m.parse_pki_message(mutated)
        m.verify(msg)
    except (m.TransportError, m.MessageError):
        return
    if msg.envelope is not None:
        try:
            cms.decrypt_enveloped(msg.envelope, RA, RA_KEY, allowed_ciphers=cms.CIPHERS)
        except cms.CMSError:
            pass


@settings(max_examples=200)
@given(st.binary(max_size=1024))
def test_envelope_parser_raises_only_cms_errors(data: bytes) -> None:
    with pytest.raises(cms.CMSError):
        cms.decrypt_enveloped(data, RA, RA_KEY, allowed_ciphers=cms.CIPHERS)


@settings(max_examples=200)
@given(st.binary(max_size=512))
def test_message_data_parsers_raise_only_message_errors(data: bytes) -> None:
    for parse in (m.parse_issuer_and_serial, m.parse_issuer_and_subject):
        try:
            parse(data)
        except m.MessageError as exc:
            assert exc.fail_info is m.FailInfo.BAD_REQUEST


@settings(max_examples=200)
@given(st.text(max_size=300))
def test_get_decoder_raises_only_transport_errors(query: str) -> None:
    try:
        m.decode_get_message(query)
    except m.TransportError:
        pass


def test_cert_rep_failure_omits_the_envelope_and_carries_fail_info() -> None:
    reply = m.Reply(
        transaction_id="t",
        recipient_nonce=b"n" * 16,
        status=m.PKIStatus.FAILURE,
        fail_info=m.FailInfo.BAD_TIME,
        fail_text="clock",
    )
    rep = CLIENT.read(m.cert_rep(reply, RA, RA_KEY))
    assert (rep.status, rep.fail_info, rep.fail_text) == (2, 3, "clock")
    assert rep.certificates == ()
    # No envelope, but an empty id-data eContent rather than none: OpenSSL's PKCS7_verify
    # refuses a SignedData without content (RFC 8894 §3.3.2.2; see test_scep_certrep_wire).
    assert cms.parse_signed(m.cert_rep(reply, RA, RA_KEY)).content == b""


def test_der_csr_ending_in_a_whitespace_byte_parses() -> None:
    # A DER CSR's last byte is the signature's: 6 in 256 are ASCII whitespace, which a
    # strip() before parsing used to cut off (found by the SCEP load benchmark).
    from cryptography.hazmat.primitives import serialization

    from gateway.pkix import load_csr

    key = sc.rsa_key()
    for i in range(2000):
        csr = sc.make_csr(key, f"ws-{i}")
        der = csr.public_bytes(serialization.Encoding.DER)
        if der[-1:] in (b" ", b"\n", b"\r", b"\t", b"\x0b", b"\x0c"):
            assert load_csr(der) == csr
            return
    pytest.fail("no CSR ending in a whitespace byte was generated")
