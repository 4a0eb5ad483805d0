"""CES request ids on the wire are numbers (as AD CS sends and cepces parses them: an unsigned
32-bit integer), the pending answer carries the reference a client polls, every fault travels
with HTTP 500, and a poll answers only the caller's own request. Through the real app factory
(aiohttp test client); the PostgreSQL cases share one database between two stores, as two
gateway instances would."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.codecs.ms import hresults as hr
from gateway.codecs.ms.wstrust import WSSE, WST, WSTEP, EnrollmentFault, TokenResponse, parse_reply
from gateway.config import load_config
from gateway.model import RequestKind, RequestRecord
from gateway.server.app import components_of, create_app
from gateway.store import open_store
from protocols.wstep.numbers import RequestNumbers
from protocols.wstep.tables import MAX_REQUEST_NUMBER
from protocols.wstep.users import Account, add_account, hash_password
from tests.helpers import ec_key, make_csr, write_config
from tests.pg_helpers import scratch_database
from tests.wstep_helpers import PASSWORD, SOAP_HEADERS, rst

DER = Encoding.DER
Client = Any
CES = "/wstep/CES"


async def _app_client(
    tmp_path: Path, aiohttp_client: Callable[[Any], Awaitable[Any]], store: str = ""
) -> Client:
    extra = "\n[wstep]\nenabled = true\nallow_password_over_http = true\n"
    if store:
        extra += f'[store]\nurl = "{store}"\n'
    app = await create_app(load_config(write_config(tmp_path, extra)))
    http = await aiohttp_client(app)
    now = datetime.now(UTC)
    for name in ("alice", "bob"):
        await components_of(app).store.write(
            add_account, Account(name, name, (), hash_password(PASSWORD)), now
        )
    return http


@pytest.fixture
async def client(tmp_path: Path, aiohttp_client: Callable[[Any], Awaitable[Any]]) -> Client:
    return await _app_client(tmp_path, aiohttp_client)


async def post(client: Client, body: bytes) -> tuple[int, bytes]:
    response = await client.post(CES, data=body, headers=SOAP_HEADERS)
    assert response.content_type == "application/soap+xml"
    return response.status, await response.read()


async def ces(client: Client, body: bytes) -> tuple[int, TokenResponse | EnrollmentFault]:
    status, data = await post(client, body)
    return status, parse_reply(data)


def _csr(cn: str) -> bytes:
    return make_csr(cn=cn, dns=(cn,)).public_bytes(DER)


def rstr(data: bytes) -> ElementTree.Element:
    """The RequestSecurityTokenResponse element, found the way cepces's binder finds it."""
    body = ElementTree.fromstring(data).find("{http://www.w3.org/2003/05/soap-envelope}Body")
    assert body is not None
    found = body.find(
        f"{{{WST}}}RequestSecurityTokenResponseCollection/{{{WST}}}RequestSecurityTokenResponse"
    )
    assert found is not None
    return found


def cepces_request_id(element: ElementTree.Element) -> int:
    """cepces's UnsignedIntegerConverter on ``wstep:RequestID``: int() within 0..2**32-1."""
    text = element.findtext(f"{{{WSTEP}}}RequestID")
    assert text is not None
    value = int(text)
    assert 0 <= value <= 2**32 - 1 and 0 < value <= MAX_REQUEST_NUMBER
    return value


async def record_of(client: Client, wire_id: str) -> RequestRecord:
    store = components_of(client.app).store
    request_id = await RequestNumbers(store).request_of(wire_id)
    assert request_id is not None
    record = await store.get_request(request_id)
    assert record is not None
    return record


def cepces_poll(request_id: int, username: str = "alice") -> bytes:
    """A QueryTokenStatus as cepces 0.3.17 builds it (SecurityTokenRequest.create() with the
    request type swapped, its empty BinarySecurityToken left in, RequestID appended after it)
    with its UsernameToken header (wsse:Type on the Password, Nonce-less)."""
    return f"""<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
 xmlns:a="http://www.w3.org/2005/08/addressing"><s:Header>
<a:Action s:mustUnderstand="1">{WSTEP}/RST/wstep</a:Action>
<a:MessageID>urn:uuid:{uuid.uuid4()}</a:MessageID><a:To s:mustUnderstand="1">http://x/wstep/CES</a:To>
<wsse:Security xmlns:wsse="{WSSE}"><wsse:UsernameToken><wsse:Username>{username}</wsse:Username>
<wsse:Password wsse:Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText">{PASSWORD}</wsse:Password>
</wsse:UsernameToken></wsse:Security></s:Header><s:Body>
<wst:RequestSecurityToken xmlns:wst="{WST}" xmlns:wsse="{WSSE}"
 xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">
<wst:TokenType>http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3</wst:TokenType>
<wst:RequestType>{WSTEP}/QueryTokenStatus</wst:RequestType>
<wsse:BinarySecurityToken ValueType="{WSTEP}#PKCS10" EncodingType="{WSSE}#base64binary" wsu:Id="" />
<ns3:RequestID xmlns:ns3="{WSTEP}">{request_id}</ns3:RequestID>
</wst:RequestSecurityToken></s:Body></s:Envelope>""".encode()


async def test_issued_answer_carries_a_number_and_the_certificate_where_cepces_reads_them(
    client: Client,
) -> None:
    csr = make_csr(cn="n1.example", dns=("n1.example",))
    status, data = await post(client, rst(csr.public_bytes(DER)))
    assert status == 200
    element = rstr(data)
    number = cepces_request_id(element)
    token = element.findtext(f"{{{WST}}}RequestedSecurityToken/{{{WSSE}}}BinarySecurityToken")
    assert token  # cepces wraps this text in PEM armour (CertificateConverter)
    cert = x509.load_der_x509_certificate(base64.b64decode(token))
    assert cert.public_key() == csr.public_key()
    record = await record_of(client, str(number))
    assert record.certificate_serial == format(cert.serial_number, "x")


async def test_pending_answer_references_the_ces_url_and_the_poll_by_number_issues(
    client: Client,
) -> None:
    status, data = await post(client, rst(_csr("p1.example"), template="approval-required"))
    assert status == 200
    element = rstr(data)
    number = cepces_request_id(element)
    assert element.findtext(f"{{{WSTEP}}}DispositionMessage") == "Taken Under Submission"
    ref = element.find(
        f"{{{WST}}}RequestedSecurityToken/{{{WSSE}}}SecurityTokenReference/{{{WSSE}}}Reference"
    )
    assert ref is not None  # cepces: requested_token.token_reference.reference.uri
    external = components_of(client.app).config.server.external_url
    assert ref.get("URI") == external + CES
    assert element.find(f"{{{WST}}}RequestedSecurityToken/{{{WSSE}}}BinarySecurityToken") is None

    status, data = await post(client, cepces_poll(number))  # still pending: same shape
    assert status == 200 and cepces_request_id(rstr(data)) == number
    assert rstr(data).find(f"{{{WST}}}RequestedSecurityToken/{{{WSSE}}}SecurityTokenReference")

    record = await record_of(client, str(number))
    await components_of(client.app).service.approve(record.id, "officer")
    status, data = await post(client, cepces_poll(number))
    assert status == 200 and cepces_request_id(rstr(data)) == number
    reply = parse_reply(data)
    assert isinstance(reply, TokenResponse) and reply.issued and reply.request_id == str(number)


async def test_denial_fault_carries_the_request_number_with_http_500(client: Client) -> None:
    # tls-server refuses a CN that is not among the SANs (cn-in-sans): a recorded denial.
    csr = make_csr(cn="other.example", dns=("d1.example",)).public_bytes(DER)
    status, reply = await ces(client, rst(csr))
    assert status == 500 and isinstance(reply, EnrollmentFault) and reply.code == "Receiver"
    assert reply.request_id is not None and reply.request_id.isdigit()
    assert (await record_of(client, reply.request_id)).state.value == "denied"


async def test_a_denied_request_polled_by_number_is_the_same_fault(client: Client) -> None:
    status, data = await post(client, rst(_csr("d2.example"), template="approval-required"))
    number = cepces_request_id(rstr(data))
    record = await record_of(client, str(number))
    await components_of(client.app).service.deny(record.id, "officer", "not this one")
    status, reply = await ces(client, cepces_poll(number))
    assert status == 500 and isinstance(reply, EnrollmentFault)
    assert reply.request_id == str(number) and reply.hresult == hr.code("CERTSRV_E_ENROLL_DENIED")


@pytest.mark.parametrize("wire_id", ["99999", "2147483647", str(uuid.UUID(int=7))])
async def test_unknown_ids_get_the_no_request_fault(client: Client, wire_id: str) -> None:
    status, reply = await ces(client, rst(request_id=wire_id))
    assert status == 500 and isinstance(reply, EnrollmentFault)
    assert reply.hresult == hr.code("CERTSRV_E_NO_REQUEST") and reply.request_id is None


@pytest.mark.parametrize(
    "wire_id", ["abc", "0", "-1", "4294967296", "2147483648", "1e3", "٣", "x" * 500]
)
async def test_ids_that_are_no_request_number_get_the_invalid_request_id_fault(
    client: Client, wire_id: str
) -> None:
    status, reply = await ces(client, rst(request_id=wire_id))
    assert status == 500 and isinstance(reply, EnrollmentFault) and reply.code == "Sender"
    assert reply.hresult == hr.code("CERTSRV_E_INVALID_REQUESTID") and reply.request_id is None
    assert reply.invalid_request


async def test_another_callers_number_is_answered_as_unknown(client: Client) -> None:
    status, data = await post(client, rst(_csr("own.example"), template="approval-required"))
    number = cepces_request_id(rstr(data))
    status, reply = await ces(client, cepces_poll(number, username="bob"))
    assert status == 500 and isinstance(reply, EnrollmentFault)
    assert reply.hresult == hr.code("CERTSRV_E_NO_REQUEST") and reply.request_id is None
    _, unknown = await ces(client, rst(request_id="99999"))  # a number nobody has
    assert isinstance(unknown, EnrollmentFault)
    assert reply.reason.replace(str(number), "N") == unknown.reason.replace("99999", "N")


async def test_numbers_are_distinct_and_a_retry_keeps_its_number(client: Client) -> None:
    replies = [
        await ces(client, rst(_csr(f"s{i}.example"), template="approval-required"))
        for i in range(3)
    ]
    numbers = [int(r.request_id) for _, r in replies if isinstance(r, TokenResponse)]
    assert len(set(numbers)) == 3
    again = rst(
        _csr("s-retry.example"),
        template="approval-required",
        extra_context={"certgate-request-id": "r1"},
    )
    _, first = await ces(client, again)
    _, second = await ces(client, again)
    assert isinstance(first, TokenResponse) and isinstance(second, TokenResponse)
    assert first.request_id == second.request_id and int(first.request_id) not in numbers


async def test_wrong_password_is_a_fault_with_http_500_and_an_audit_event(client: Client) -> None:
    status, reply = await ces(client, rst(_csr("w.example"), password="wrong"))
    assert status == 500 and isinstance(reply, EnrollmentFault)
    assert reply.code == "Sender" and reply.hresult == hr.code("E_ACCESSDENIED")
    events = await components_of(client.app).store.audit_events()
    refused = [e for e in events if e.event == "wstep.request.refused"]
    assert refused and refused[-1].detail["rule"] == "bad-password"
    assert PASSWORD not in str(refused[-1].detail) and "wrong" not in str(refused[-1].detail)


async def test_a_bare_pkcs10_sent_as_cepces_renews_is_a_new_request_of_the_caller(
    client: Client,
) -> None:
    """cepces with CERTMONGER_CERTIFICATE set only picks a renewal endpoint; it sends the same
    bare PKCS#10. That names no prior certificate, so it is judged as a new enrollment of the
    authenticated caller, never as a renewal of anybody's certificate."""
    key = ec_key()
    _, first = await ces(
        client, rst(make_csr(key, cn="rn.example", dns=("rn.example",)).public_bytes(DER))
    )
    assert isinstance(first, TokenResponse) and first.issued
    status, again = await ces(
        client, rst(make_csr(key, cn="rn.example", dns=("rn.example",)).public_bytes(DER))
    )
    assert status == 200 and isinstance(again, TokenResponse) and again.issued
    record = await record_of(client, again.request_id)
    assert record.kind is RequestKind.NEW and record.prior_serial is None
    assert record.requester.principal == "alice"


# -- PostgreSQL: several instances draw from one sequence ---------------------------------


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from scratch_database("certgate_wstep")


@pytest.mark.postgres
async def test_concurrent_enrollments_on_postgresql_get_distinct_numbers(
    tmp_path: Path, aiohttp_client: Callable[[Any], Awaitable[Any]], pg_url: str
) -> None:
    client = await _app_client(tmp_path, aiohttp_client, store=pg_url)
    results = await asyncio.gather(
        *(ces(client, rst(_csr(f"pg{i}.example"), template="approval-required")) for i in range(6))
    )
    numbers = {r.request_id for _, r in results if isinstance(r, TokenResponse)}
    assert len(numbers) == 6 and all(n.isdigit() for n in numbers)


@pytest.mark.postgres
async def test_two_instances_allocating_at_once_agree_on_one_number_per_request(
    pg_url: str,
) -> None:
    stores = [open_store(pg_url), open_store(pg_url)]
    try:
        for store in stores:
            await store.migrate()
        a, b = (RequestNumbers(store) for store in stores)
        ids = [str(uuid.uuid4()) for _ in range(20)]
        got_a, got_b = await asyncio.gather(
            asyncio.gather(*(a.number_for(i) for i in ids)),
            asyncio.gather(*(b.number_for(i) for i in reversed(ids))),
        )
        assert list(got_a) == list(reversed(got_b))  # the same number for the same request
        assert len(set(got_a)) == 20
        for i, number in zip(ids, got_a, strict=True):
            assert await b.request_of(str(number)) == i
    finally:
        for store in stores:
            await store.close()
