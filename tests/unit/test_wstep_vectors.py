"""The MS-WSTEP/MS-XCEP fixtures (tests/vectors/ms, written from the specifications' examples)
parse with the shared codecs, and both the fixtures and what certgate itself produces are valid
against minimal XSDs of the parts checked (tests/vectors/ms/xsd)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from gateway.codecs.ms import hresults as hr
from gateway.codecs.ms.cms import open_signed_request
from gateway.codecs.ms.wstrust import (
    REQUEST_ISSUE,
    REQUEST_QUERY,
    VALUE_PKCS10,
    EnrollmentFault,
    TokenRequest,
    TokenResponse,
    build_envelope,
    build_fault,
    build_request_body,
    build_response,
    parse_envelope,
    parse_reply,
    parse_request,
)
from gateway.codecs.ms.xcep import (
    build_get_policies_response_body,
    parse_get_policies,
    parse_get_policies_response,
)
from gateway.pkix import load_csr
from gateway.pkix.certsonly import certs_only_der, read_certs_only
from tests.wstep_helpers import VECTORS

XSD = VECTORS / "xsd"
DER = Encoding.DER
SOAP = "{http://www.w3.org/2003/05/soap-envelope}"


def _schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD / name)))


WST, XCEP, WSTEP = _schema("wst.xsd"), _schema("xcep.xsd"), _schema("wstep.xsd")


def _validate(schema: etree.XMLSchema, envelope: bytes) -> None:
    root = etree.fromstring(envelope, parser=etree.XMLParser(resolve_entities=False))
    body = root.find(f"{SOAP}Body")
    assert body is not None and len(body) == 1
    element = body[0]
    if element.tag == f"{SOAP}Fault":
        detail = element.find(f"{SOAP}Detail")
        assert detail is not None
        element = detail[0]
    schema.assertValid(etree.ElementTree(element))


def vector(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def test_issue_request_fixture_carries_csr_template_and_username_token() -> None:
    envelope = parse_envelope(vector("rst_issue_request.xml"))
    request = parse_request(envelope)
    assert request.request_type == REQUEST_ISSUE and request.request_id is None
    assert request.context["CertificateTemplate"] == "User"
    assert request.token is not None
    assert load_csr(request.token).subject.rfc4514_string() == "CN=abby"
    assert (envelope.username, envelope.password) == ("EXAMPLE\\abby", "p@ss & word")
    _validate(WST, vector("rst_issue_request.xml"))


def test_renewal_fixture_is_a_signed_data_whose_signer_is_the_old_certificate() -> None:
    request = parse_request(parse_envelope(vector("rst_renewal_request.xml")))
    assert request.token is not None
    signed = open_signed_request(request.token)
    assert signed.signer == x509.load_pem_x509_certificate(vector("leaf.pem"))
    assert load_csr(signed.csr_der).subject.rfc4514_string() == "CN=abby"
    _validate(WST, vector("rst_renewal_request.xml"))


def test_tampered_renewal_signature_is_refused() -> None:
    request = parse_request(parse_envelope(vector("rst_renewal_request.xml")))
    assert request.token is not None
    token = bytearray(request.token)
    token[-5] ^= 0x01  # inside the signature value
    with pytest.raises(Exception) as info:
        open_signed_request(bytes(token))
    assert type(info.value).__name__ == "BadRequest"


def test_query_fixture_names_the_pending_request() -> None:
    request = parse_request(parse_envelope(vector("rst_query_request.xml")))
    assert request.request_type == REQUEST_QUERY and request.request_id == "65"
    _validate(WST, vector("rst_query_request.xml"))


def test_issued_fixture_yields_leaf_chain_and_request_id() -> None:
    reply = parse_reply(vector("rstrc_issued.xml"))
    assert isinstance(reply, TokenResponse) and reply.issued
    assert reply.request_id == "61" and reply.disposition_message == "Issued"
    assert reply.certificate == x509.load_pem_x509_certificate(vector("leaf.pem")).public_bytes(DER)
    assert reply.pkcs7 is not None and len(read_certs_only(reply.pkcs7)[0]) == 3
    _validate(WST, vector("rstrc_issued.xml"))


def test_pending_fixture_has_request_id_the_poll_reference_and_no_token() -> None:
    reply = parse_reply(vector("rstrc_pending.xml"))
    assert isinstance(reply, TokenResponse) and not reply.issued
    assert (reply.request_id, reply.disposition_message) == ("65", "Taken Under Submission")
    assert (
        reply.reference == "https://ces.example.com/Example-CA_CES_UsernamePassword/service.svc/CES"
    )
    _validate(WST, vector("rstrc_pending.xml"))


@pytest.mark.parametrize(
    ("name", "hresult", "request_id", "invalid"),
    [
        ("fault_bad_template_version.xml", "CERTSRV_E_BAD_TEMPLATE_VERSION", "368", True),
        ("fault_enroll_denied.xml", "CERTSRV_E_ENROLL_DENIED", "369", True),
        ("fault_restricted_officer.xml", "CERTSRV_E_RESTRICTEDOFFICER", "370", False),
        ("fault_ca_unavailable.xml", "RPC_S_SERVER_UNAVAILABLE", "371", False),
    ],
)
def test_enrollment_fault_fixtures_decode_hresult_and_request_id(
    name: str, hresult: str, request_id: str, invalid: bool
) -> None:
    fault = parse_reply(vector(name))
    assert isinstance(fault, EnrollmentFault)
    assert fault.hresult == hr.code(hresult)
    assert (fault.request_id, fault.invalid_request, fault.code) == (
        request_id,
        invalid,
        "Receiver",
    )
    assert hresult in hr.describe(fault.hresult)
    _validate(WSTEP, vector(name))


def test_wcf_and_addressing_faults_have_no_hresult_but_a_subcode() -> None:
    internal = parse_reply(vector("fault_internal_service.xml"))
    addressing = parse_reply(vector("fault_address_filter_mismatch.xml"))
    assert isinstance(internal, EnrollmentFault) and internal.hresult is None
    assert internal.subcode is not None and internal.subcode.endswith("InternalServiceFault")
    assert isinstance(addressing, EnrollmentFault) and addressing.code == "Sender"
    assert addressing.subcode == "a:DestinationUnreachable"


def test_get_policies_fixtures_parse() -> None:
    parse_get_policies(parse_envelope(vector("get_policies_request.xml")))
    document = parse_get_policies_response(parse_envelope(vector("get_policies_response.xml")))
    names = [p.common_name for p in document.policies]
    assert names == ["WebServer", "Corp User", "ApprovedWeb"]
    web = document.policies[0]
    assert (web.validity_seconds, web.renewal_seconds, web.major_revision) == (63072000, 3628800, 4)
    assert web.template_oid == "1.3.6.1.4.1.311.21.8.1.2.3.4.5.6.1"
    assert [e.oid for e in web.extensions] == ["2.5.29.15", "2.5.29.37"]
    assert document.policies[2].superseded == ("WebServer",)
    assert [u[0] for u in document.cas[0].uris] == [2, 4, 8]
    assert document.cas[0].uris[2][3] is True  # renewalOnly
    _validate(XCEP, vector("get_policies_response.xml"))


# -- what certgate produces is schema-valid and parses back to what was built ------------


def test_built_request_response_and_fault_are_schema_valid_and_round_trip() -> None:
    request = TokenRequest(
        REQUEST_ISSUE, token=b"\x30\x03\x02\x01\x01", context={"CertificateTemplate": "a&b"}
    )
    envelope = build_envelope(
        "x", build_request_body(request), message_id="urn:uuid:1", username="u<", password="p&"
    )
    _validate(WST, envelope)
    parsed = parse_envelope(envelope)
    assert parse_request(parsed) == dataclasses.replace(request, value_type=VALUE_PKCS10)
    assert (parsed.username, parsed.password) == ("u<", "p&")

    leaf = x509.load_pem_x509_certificate(vector("leaf.pem"))
    chain = x509.load_pem_x509_certificates(vector("chain.pem"))
    der = leaf.public_bytes(DER)
    for response in (
        TokenResponse("61", "Issued", der, certs_only_der([leaf, *chain])),
        TokenResponse("65", "Taken Under Submission"),
        TokenResponse("66", "Taken Under Submission", reference="https://ces.test/wstep/CES"),
    ):
        built = build_response(response, relates_to="urn:uuid:1")
        _validate(WST, built)
        assert parse_reply(built) == response

    fault = EnrollmentFault(
        "Receiver", "denied <by> policy", hr.code("CERTSRV_E_ENROLL_DENIED"), "7", True
    )
    built = build_fault(fault, relates_to=None)
    _validate(WSTEP, built)
    assert parse_reply(built) == fault


def test_built_get_policies_response_is_schema_valid_and_round_trips() -> None:
    document = parse_get_policies_response(parse_envelope(vector("get_policies_response.xml")))
    body = build_get_policies_response_body(document)
    built = build_envelope("x", body)
    _validate(XCEP, built)
    again = parse_get_policies_response(parse_envelope(built))
    assert again.policies == document.policies and again.cas == document.cas


def test_vectors_readme_names_every_fixture() -> None:
    readme = (VECTORS / "README.md").read_text()
    for path in sorted(Path(VECTORS).glob("*.xml")):
        assert path.name in readme, path.name
