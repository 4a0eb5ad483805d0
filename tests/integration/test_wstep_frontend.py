"""The MS-XCEP/MS-WSTEP front-end through the real app factory: enrollment, renewal signed by
the old certificate, pending polls, idempotent resubmission, and hostile input (malformed SOAP,
entity expansion, external entities, huge or slow bodies, wrong auth) answered with SOAP faults,
never a 500 page and never a hang."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from gateway.codecs.ms import hresults as hr
from gateway.codecs.ms.cms import sign_request
from gateway.codecs.ms.wstrust import EnrollmentFault, TokenResponse, parse_reply
from gateway.config import load_config
from gateway.model import RequestKind, RequestRecord
from gateway.server.app import components_of, create_app
from protocols.wstep.numbers import RequestNumbers
from protocols.wstep.users import Account, add_account, hash_password
from tests.helpers import TEMPLATES, ec_key, make_csr, write_config
from tests.wstep_helpers import PASSWORD, SOAP_HEADERS, VECTORS, get_policies, rst

DER = Encoding.DER
Client = Any


@pytest.fixture
async def client(
    tmp_path: Path, aiohttp_client: Callable[[Any], Awaitable[Any]]
) -> AsyncIterator[Client]:
    cfg = write_config(
        tmp_path,
        '\n[wstep]\nenabled = true\nmax_body_bytes = 20000\nread_timeout = "1s"\n'
        "allow_password_over_http = true\n",
    )
    app = await create_app(load_config(cfg))
    http = await aiohttp_client(app)
    store = components_of(app).store
    now = datetime.now(UTC)
    for name, principal in (("alice", "alice"), ("bob", "bob")):
        await store.write(add_account, Account(name, principal, (), hash_password(PASSWORD)), now)
    yield http


async def ces(
    client: Client, body: bytes, **headers: str
) -> tuple[int, TokenResponse | EnrollmentFault]:
    response = await client.post("/wstep/CES", data=body, headers={**SOAP_HEADERS, **headers})
    data = await response.read()
    assert response.content_type == "application/soap+xml", data[:200]
    return response.status, parse_reply(data)


async def record_of(client: Client, wire_id: str) -> RequestRecord | None:
    """The certgate request behind a CES request number."""
    store = components_of(client.app).store
    request_id = await RequestNumbers(store).request_of(wire_id)
    return None if request_id is None else await store.get_request(request_id)


def _der(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(DER)


async def test_issue_returns_the_certificate_and_its_chain(client: Client) -> None:
    csr = make_csr(cn="a.example", dns=("a.example",))
    status, reply = await ces(client, rst(_der(csr)))
    assert status == 200 and isinstance(reply, TokenResponse) and reply.issued
    assert reply.certificate is not None and reply.pkcs7 is not None
    cert = x509.load_der_x509_certificate(reply.certificate)
    assert cert.public_key() == csr.public_key()
    assert reply.disposition_message == "Issued" and reply.request_id


async def test_pending_request_is_polled_with_query_token_status_only_by_its_owner(
    client: Client,
) -> None:
    csr = make_csr(cn="client-1", dns=("c1.example",))
    status, reply = await ces(client, rst(_der(csr), template="approval-required"))
    assert status == 200 and isinstance(reply, TokenResponse) and not reply.issued
    assert reply.disposition_message == "Taken Under Submission"
    status, again = await ces(client, rst(request_id=reply.request_id))
    assert isinstance(again, TokenResponse) and not again.issued
    status, foreign = await ces(client, rst(request_id=reply.request_id, username="bob"))
    assert status == 500 and isinstance(foreign, EnrollmentFault)
    assert foreign.hresult == hr.code("CERTSRV_E_NO_REQUEST")
    components = components_of(client.app)
    request_id = await RequestNumbers(components.store).request_of(reply.request_id)
    assert request_id is not None
    await components.service.approve(request_id, "test")
    status, done = await ces(client, rst(request_id=reply.request_id))
    assert status == 200 and isinstance(done, TokenResponse) and done.issued
    assert done.request_id == reply.request_id


async def test_renewal_signed_by_the_old_certificate_reaches_policy_as_a_renewal(
    client: Client,
) -> None:
    key = ec_key()
    status, first = await ces(client, rst(_der(make_csr(key, cn="r.example", dns=("r.example",)))))
    assert isinstance(first, TokenResponse) and first.certificate is not None
    old = x509.load_der_x509_certificate(first.certificate)
    new_csr = make_csr(cn="r.example", dns=("r.example",))
    signed = sign_request(_der(new_csr), old, key)
    status, renewed = await ces(client, rst(signed))
    # A fresh certificate is not due yet: the renewal-window rule (a renewal rule) answers.
    assert status == 500 and isinstance(renewed, EnrollmentFault), renewed
    assert "renewal-window" in renewed.reason and renewed.request_id
    assert renewed.hresult == hr.code("CERTSRV_E_BAD_RENEWAL_CERT_ATTRIBUTE")
    assert renewed.request_id is not None and renewed.request_id.isdigit()
    record = await record_of(client, renewed.request_id)
    assert record is not None and record.kind is RequestKind.RENEWAL
    assert record.prior_serial == format(old.serial_number, "x")


@pytest.fixture
async def renewal_client(
    tmp_path: Path, aiohttp_client: Callable[[Any], Awaitable[Any]]
) -> AsyncIterator[Client]:
    """The shipped templates plus ``renewable`` (tls-server allowing early renewal)."""
    templates = tmp_path / "templates"
    templates.mkdir()
    for path in TEMPLATES.glob("*.toml"):
        (templates / path.name).write_text(path.read_text())
    text = (TEMPLATES / "tls-server.toml").read_text()
    text = text.replace('name = "tls-server"', 'name = "renewable"')
    text = re.sub(r'(?m)^oid = ".*"$', 'oid = "2.25.8080"', text)
    (templates / "renewable.toml").write_text(
        text.replace("early_renewal = false", "early_renewal = true")
    )
    cfg = write_config(tmp_path, "\n[wstep]\nenabled = true\nallow_password_over_http = true\n")
    cfg.write_text(cfg.read_text().replace(str(TEMPLATES), str(templates)))
    app = await create_app(load_config(cfg))
    http = await aiohttp_client(app)
    await components_of(app).store.write(
        add_account, Account("alice", "alice", (), hash_password(PASSWORD)), datetime.now(UTC)
    )
    yield http


async def test_renewal_signed_by_the_old_certificate_is_issued_and_supersedes_it(
    renewal_client: Client,
) -> None:
    client = renewal_client
    key = ec_key()
    csr = make_csr(key, cn="n.example", dns=("n.example",))
    _, first = await ces(client, rst(_der(csr), template="renewable"))
    assert isinstance(first, TokenResponse) and first.certificate is not None, first
    old = x509.load_der_x509_certificate(first.certificate)
    new_key = ec_key()
    signed = sign_request(_der(make_csr(new_key, cn="n.example", dns=("n.example",))), old, key)
    status, renewed = await ces(client, rst(signed, template="renewable"))
    assert status == 200 and isinstance(renewed, TokenResponse) and renewed.issued, renewed
    assert renewed.certificate is not None
    new = x509.load_der_x509_certificate(renewed.certificate)
    assert new.public_key() == new_key.public_key()
    store = components_of(client.app).store
    record = await record_of(client, renewed.request_id)
    assert record is not None and record.kind is RequestKind.RENEWAL
    prior = await store.get_certificate(format(old.serial_number, "x"))
    assert prior is not None and prior.superseded_by == format(new.serial_number, "x")


async def test_renewal_of_someone_elses_certificate_is_refused(client: Client) -> None:
    key = ec_key()
    _, first = await ces(client, rst(_der(make_csr(key, cn="s.example", dns=("s.example",)))))
    assert isinstance(first, TokenResponse) and first.certificate is not None, first
    old = x509.load_der_x509_certificate(first.certificate)
    signed = sign_request(_der(make_csr(cn="s.example", dns=("s.example",))), old, key)
    status, reply = await ces(client, rst(signed, username="bob"))
    assert status == 500 and isinstance(reply, EnrollmentFault)
    assert reply.hresult == hr.code("E_ACCESSDENIED")


async def test_the_fixture_renewal_signed_by_a_foreign_ca_is_refused(client: Client) -> None:
    body = (VECTORS / "rst_renewal_request.xml").read_bytes()
    body = body.replace(b"</s:Header>", _username_header() + b"</s:Header>")
    status, reply = await ces(client, body)
    assert status == 500 and isinstance(reply, EnrollmentFault)
    assert "did not issue" in reply.reason


def _username_header() -> bytes:
    return (
        b'<o:Security xmlns:o="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-'
        b'wssecurity-secext-1.0.xsd"><o:UsernameToken><o:Username>alice</o:Username>'
        b"<o:Password>" + PASSWORD.encode() + b"</o:Password></o:UsernameToken></o:Security>"
    )


async def test_same_certgate_request_id_never_issues_twice(client: Client) -> None:
    csr = make_csr(cn="i.example", dns=("i.example",))
    body = rst(_der(csr), extra_context={"certgate-request-id": "req-42"})
    _, one = await ces(client, body)
    _, two = await ces(client, rst(_der(csr), extra_context={"certgate-request-id": "req-42"}))
    assert isinstance(one, TokenResponse) and isinstance(two, TokenResponse)
    assert one.certificate == two.certificate and one.request_id == two.request_id
    certs = await components_of(client.app).store.list_certificates()
    assert len(certs) == 1


async def test_template_is_taken_from_the_csr_template_name_extension(client: Client) -> None:
    name = core.BMPString("approval-required").dump()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=client-2"))
        .add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2"), name),
            critical=False,
        )
        .sign(ec_key(), hashes.SHA256())
    )
    _, reply = await ces(client, rst(_der(csr), template=None))
    assert isinstance(reply, TokenResponse) and not reply.issued  # approval-required pends


async def test_policy_denial_is_a_fault_naming_the_rule(client: Client) -> None:
    csr = make_csr(cn="not-a-san", dns=("a.example",))
    status, reply = await ces(client, rst(_der(csr)))
    assert status == 500 and isinstance(reply, EnrollmentFault)  # Receiver, as CES does
    assert reply.hresult == hr.code("CERTSRV_E_BAD_REQUESTSUBJECT")
    assert "cn-in-sans" in reply.reason and reply.request_id


async def test_unknown_template_is_unsupported_cert_type(client: Client) -> None:
    status, reply = await ces(client, rst(_der(make_csr(cn="x")), template="no-such"))
    assert status == 500 and isinstance(reply, EnrollmentFault)
    assert reply.hresult == hr.code("CERTSRV_E_UNSUPPORTED_CERT_TYPE")


async def test_get_policies_lists_templates_and_is_schema_valid(client: Client) -> None:
    response = await client.post("/wstep/CEP", data=get_policies(), headers=SOAP_HEADERS)
    data = await response.read()
    assert response.status == 200
    root = etree.fromstring(data)
    body = root.find("{http://www.w3.org/2003/05/soap-envelope}Body")[0]
    etree.XMLSchema(etree.parse(str(VECTORS / "xsd" / "xcep.xsd"))).assertValid(
        etree.ElementTree(body)
    )
    from gateway.codecs.ms.wstrust import parse_envelope
    from gateway.codecs.ms.xcep import parse_get_policies_response

    document = parse_get_policies_response(parse_envelope(data))
    by_name = {p.common_name: p for p in document.policies}
    approval = by_name["approval-required"]
    assert approval.enrollment_flags & 0x2  # PEND_ALL_REQUESTS
    assert by_name["tls-server"].validity_seconds == 90 * 86400
    assert document.cas[0].uris[0][1].endswith("/wstep/CES")


async def test_get_policies_needs_authentication(client: Client) -> None:
    response = await client.post(
        "/wstep/CEP", data=get_policies(password="nope"), headers=SOAP_HEADERS
    )
    reply = parse_reply(await response.read())
    assert response.status == 500 and isinstance(reply, EnrollmentFault)
    assert reply.subcode == "o:FailedAuthentication"


# -- hostile input ------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><x>&lol3;</x></s:Body></s:Envelope>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><x>&xxe;</x></s:Body></s:Envelope>"""
SOAP11 = b"""<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body/></soap:Envelope>"""


@pytest.mark.parametrize(
    ("body", "expect"),
    [
        (b"<not xml", "malformed XML"),
        (b"", "malformed XML"),
        (BILLION_LAUGHS, "forbidden XML construct"),
        (EXTERNAL_ENTITY, "forbidden XML construct"),
        (SOAP11, "not a SOAP 1.2 envelope"),
        (b"\xff\xfe<\x00", "malformed XML"),
    ],
)
@pytest.mark.parametrize("path", ["/wstep/CES", "/wstep/CEP"])
async def test_hostile_xml_gets_a_sender_fault(
    client: Client, path: str, body: bytes, expect: str
) -> None:
    response = await client.post(path, data=body, headers=SOAP_HEADERS)
    reply = parse_reply(await response.read())
    assert response.status == 500 and isinstance(reply, EnrollmentFault)
    assert reply.code == "Sender" and expect in reply.reason
    assert b"root:" not in await response.read()


async def test_huge_body_is_refused_before_parsing(client: Client) -> None:
    body = b"<s:Envelope>" + b"a" * 50_000
    response = await client.post("/wstep/CES", data=body, headers=SOAP_HEADERS)
    reply = parse_reply(await response.read())
    assert response.status == 413 and isinstance(reply, EnrollmentFault)


async def test_huge_chunked_body_is_refused_too(client: Client) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"a" * 1000

    response = await client.post("/wstep/CES", data=chunks(), headers=SOAP_HEADERS)
    assert response.status == 413
    assert isinstance(parse_reply(await response.read()), EnrollmentFault)


async def test_a_trickling_body_times_out_with_a_fault(client: Client) -> None:
    async def slow() -> AsyncIterator[bytes]:
        yield b"<s:Envelope"
        await asyncio.sleep(3)
        yield b"/>"

    started = time.monotonic()
    response = await client.post("/wstep/CES", data=slow(), headers=SOAP_HEADERS)
    assert response.status == 408
    assert isinstance(parse_reply(await response.read()), EnrollmentFault)
    assert time.monotonic() - started < 2.9


async def test_wrong_content_type_and_wrong_action_get_faults(client: Client) -> None:
    body = rst(_der(make_csr(cn="a.example", dns=("a.example",))))
    response = await client.post("/wstep/CES", data=body, headers={"Content-Type": "text/xml"})
    assert response.status == 415
    assert isinstance(parse_reply(await response.read()), EnrollmentFault)
    response = await client.post("/wstep/CEP", data=body, headers=SOAP_HEADERS)
    reply = parse_reply(await response.read())
    assert response.status == 500 and isinstance(reply, EnrollmentFault)
    assert "unsupported SOAP action" in reply.reason


@pytest.mark.parametrize(
    ("username", "password"), [("alice", "wrong"), ("mallory", PASSWORD), (None, None)]
)
async def test_wrong_or_missing_credentials_are_refused(
    client: Client, username: str | None, password: str | None
) -> None:
    csr = make_csr(cn="a.example", dns=("a.example",))
    status, reply = await ces(client, rst(_der(csr), username=username, password=password))
    assert status == 500 and isinstance(reply, EnrollmentFault)
    assert reply.hresult == hr.code("E_ACCESSDENIED")
    assert await components_of(client.app).store.list_certificates() == []


async def test_garbage_token_and_bad_base64_are_sender_faults(client: Client) -> None:
    status, reply = await ces(client, rst(b"\x30\x82garbage"))
    assert status == 500 and isinstance(reply, EnrollmentFault)
    assert reply.hresult == hr.code("CRYPT_E_ASN1_BADTAG")
    body = rst(b"x").replace(b">eA==<", b">!!notbase64!!<")
    status, reply = await ces(client, body)
    assert status == 500 and isinstance(reply, EnrollmentFault) and "base64" in reply.reason
