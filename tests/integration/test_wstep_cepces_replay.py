"""Replay what openSUSE cepces v0.3.17 sends (``tests/vectors/cepces``, captured from the real
client by tests/interop/test_wstep_cepces.py; origin in tests/vectors/README.md) to the real app
on its TLS listener, in process, and read the answers the way cepces reads them.

CI cannot install cepces, so this is the check that runs everywhere. The reading below follows
cepces' own bindings, not certgate's parser: ``cepces/soap/service.py`` (a fault is read only
from an HTTP 500, anything else non-2xx is an error), ``cepces/xcep/types.py`` (GetPolicies:
template commonNames, CA URIs with clientAuthentication 1/2/4/8 and the CA certificate),
``cepces/core.py`` (endpoint choice: matching auth, lowest priority first, not renewal-only),
``cepces/wstep/types.py`` and ``service.py`` (RequestID as xs:unsignedInt, a required
RequestedSecurityToken holding either the certificate or
SecurityTokenReference/Reference/@URI, where cepces polls).
"""

from __future__ import annotations

import base64
import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.config import load_config
from gateway.model import EnrollmentRequest, Issued, Requester, RequestKind, RequestState
from gateway.server.app import LISTENERS, components_of, create_app
from protocols.wstep.users import Account, add_account, hash_password
from tests.helpers import REPO, free_port, make_csr, write_config
from tests.interop.cepces_harness import VECTOR_HOST
from tests.pki_helpers import write_cert, write_key
from tests.wstep_helpers import PASSWORD, SOAP_HEADERS, tls_files

VECTORS = REPO / "tests" / "vectors" / "cepces"
USER = "linux-host"  # the account the vectors were captured with

SOAP = "http://www.w3.org/2003/05/soap-envelope"
XCEP = "http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy"
WST = "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
ENROLL = "http://schemas.microsoft.com/windows/pki/2009/01/enrollment"
# cepces/xcep/converter.py ClientAuthenticationConverter: any other value is a ValueError.
CLIENT_AUTH = {1: "Anonymous", 2: "Kerberos", 4: "UsernamePassword", 8: "Certificate"}


# --- cepces' reading of the answers -------------------------------------------------------


class CepcesFault(Exception):
    """cepces' SOAPFault: ``<reason> (Code: <value>; Subcode: <value>)``."""


def payload(status: int, body: bytes) -> ElementTree.Element:
    """The first element of the SOAP Body, or :class:`CepcesFault` as cepces raises it."""
    assert status == 500 or 200 <= status < 300, f"cepces raises HTTPError on {status}"
    envelope = ElementTree.fromstring(body)
    soap_body = envelope.find(f"{{{SOAP}}}Body")
    assert soap_body is not None and len(soap_body), body[:300]
    first = soap_body[0]
    if status == 500 and first.tag == f"{{{SOAP}}}Fault":
        code = first.findtext(f"{{{SOAP}}}Code/{{{SOAP}}}Value")
        subcode = first.findtext(f"{{{SOAP}}}Code/{{{SOAP}}}Subcode/{{{SOAP}}}Value")
        reason = first.findtext(f"{{{SOAP}}}Reason/{{{SOAP}}}Text")
        assert code and reason, body[:500]  # cepces reads both unconditionally
        raise CepcesFault(f"{reason} (Code: {code}; Subcode: {subcode})")
    assert status == 200, f"HTTP {status} without a SOAP fault"
    return first


def _nil(element: ElementTree.Element | None) -> bool:
    return element is None or element.get("{http://www.w3.org/2001/XMLSchema-instance}nil") in (
        "true",
        "1",
    )


def template_names(response: ElementTree.Element) -> list[str]:
    """GET-SUPPORTED-TEMPLATES' output: response/policies/policy/attributes/commonName."""
    assert response.tag == f"{{{XCEP}}}GetPoliciesResponse"
    policies = response.find(f"{{{XCEP}}}response/{{{XCEP}}}policies")
    if _nil(policies):
        return []
    assert policies is not None
    return [
        p.findtext(f"{{{XCEP}}}attributes/{{{XCEP}}}commonName") or ""
        for p in policies.findall(f"{{{XCEP}}}policy")
    ]


@dataclass(frozen=True)
class Endpoint:
    uri: str
    priority: int
    renewal_only: bool


def endpoints(response: ElementTree.Element, auth: str) -> list[Endpoint]:
    """cepces' Service.endpoints: every CA URI of ``auth``, lowest priority first; and the
    checks its converters make on every URI (an unknown clientAuthentication aborts)."""
    found: list[Endpoint] = []
    for ca in response.findall(f"{{{XCEP}}}cAs/{{{XCEP}}}cA"):
        int(ca.findtext(f"{{{XCEP}}}cAReferenceID") or "")  # SignedIntegerConverter
        assert ca.findtext(f"{{{XCEP}}}enrollPermission") in ("true", "false", "1", "0")
        for uri in ca.findall(f"{{{XCEP}}}uris/{{{XCEP}}}cAURI"):
            kind = CLIENT_AUTH[int(uri.findtext(f"{{{XCEP}}}clientAuthentication") or "")]
            priority = uri.find(f"{{{XCEP}}}priority")
            renewal = uri.find(f"{{{XCEP}}}renewalOnly")
            value = 0 if _nil(priority) or priority is None else int(priority.text or "0")
            assert 0 <= value < 2**32
            only = not _nil(renewal) and renewal is not None and renewal.text in ("true", "1")
            if kind == auth:
                found.append(Endpoint(uri.findtext(f"{{{XCEP}}}uri") or "", value, only))
    return sorted(found, key=lambda e: e.priority)


def enrollment_endpoint(response: ElementTree.Element, auth: str) -> str:
    """Where cepces sends a new request: the first endpoint that is not renewal-only."""
    chosen = [e for e in endpoints(response, auth) if not e.renewal_only]
    assert chosen, f"cepces finds no {auth} endpoint and gives up (UNDERCONFIGURED)"
    return chosen[0].uri


def ca_certificate(response: ElementTree.Element) -> x509.Certificate:
    """FETCH-ROOTS starts from cAs/cA[0]/certificate."""
    text = response.findtext(f"{{{XCEP}}}cAs/{{{XCEP}}}cA/{{{XCEP}}}certificate") or ""
    return x509.load_der_x509_certificate(base64.b64decode(text))


@dataclass(frozen=True)
class TokenAnswer:
    request_id: int
    certificate: x509.Certificate | None
    reference: str | None


def token_answer(response: ElementTree.Element) -> TokenAnswer:
    """cepces' WSTEP Service.request/poll on the one RequestSecurityTokenResponse."""
    assert response.tag == f"{{{WST}}}RequestSecurityTokenResponseCollection", response.tag
    answers = response.findall(f"{{{WST}}}RequestSecurityTokenResponse")
    assert len(answers) == 1
    rstr = answers[0]
    text = (rstr.findtext(f"{{{ENROLL}}}RequestID") or "").strip()
    assert text.isdigit() and 0 < int(text) < 2**32, f"RequestID {text!r} is no xs:unsignedInt"
    token = rstr.find(f"{{{WST}}}RequestedSecurityToken")
    assert token is not None, "cepces reads RequestedSecurityToken unconditionally"
    bst = token.find(f"{{{WSSE}}}BinarySecurityToken")
    if bst is not None:
        # CertificateConverter wraps the text as PEM; an empty element would crash cepces.
        assert bst.text and bst.text.strip(), "empty BinarySecurityToken"
        b64 = "".join(bst.text.replace("&#xD;", "").split())
        pem = f"-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n"
        return TokenAnswer(int(text), x509.load_pem_x509_certificate(pem.encode()), None)
    ref = token.find(f"{{{WSSE}}}SecurityTokenReference/{{{WSSE}}}Reference")
    assert ref is not None and ref.get("URI"), "pending answer without the poll reference"
    return TokenAnswer(int(text), None, ref.get("URI"))


# --- the gateway ------------------------------------------------------------------------------


@dataclass
class Gateway:
    app: web.Application
    tls: str  # https://127.0.0.1:T, the [wstep.tls] listener
    cafile: Path
    client_cert: Path
    client_key: Path
    session: aiohttp.ClientSession

    def vector(
        self, name: str, *, to: str = "", request_id: int | None = None, user: str = USER
    ) -> bytes:
        """A captured request with this gateway's URL and password put back in."""
        body = (VECTORS / name).read_bytes()
        body = body.replace(VECTOR_HOST.encode(), (to or self.tls).encode())
        body = body.replace(b"@PASSWORD@", PASSWORD.encode())
        body = body.replace(b"@WRONG_PASSWORD@", b"not the password")
        body = body.replace(f">{USER}<".encode(), f">{user}<".encode())
        if request_id is not None:
            body = re.sub(rb"(RequestID>)\d+(<)", rb"\g<1>%d\g<2>" % request_id, body)
        return body

    async def post(
        self, url: str, body: bytes, *, certificate: bool = False
    ) -> ElementTree.Element:
        """POST as cepces does (requests: Content-Type application/soap+xml; charset=utf-8,
        the TLS client certificate for Certificate auth) and read the answer as it does."""
        context = ssl.create_default_context(cafile=str(self.cafile))
        if certificate:
            context.load_cert_chain(str(self.client_cert), str(self.client_key))
        async with self.session.post(url, data=body, headers=SOAP_HEADERS, ssl=context) as r:
            return payload(r.status, await r.read())


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    port, tls_port = free_port(), free_port()
    cert, key = tls_files(tmp_path / "tls")
    cfg = write_config(
        tmp_path,
        f'\n[wstep]\nenabled = true\n[wstep.tls]\nhost = "127.0.0.1"\nport = {tls_port}\n'
        f'certificate = "{cert}"\nkey = "{key}"\n',
        port=port,
    )
    app = await create_app(load_config(cfg))
    runner = web.AppRunner(app)
    await runner.setup()
    session = aiohttp.ClientSession()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        for item in app[LISTENERS]:
            await web.TCPSite(runner, item.host, item.port, ssl_context=item.ssl_context).start()
        components = components_of(app)
        await components.store.write(
            add_account, Account(USER, USER, (), hash_password(PASSWORD)), datetime.now(UTC)
        )
        # The Certificate endpoint's client: a device certificate this gateway issued.
        client_key = ec.generate_private_key(ec.SECP256R1())
        issued = await components.service.enroll(
            EnrollmentRequest(
                csr=make_csr(client_key, cn="cepces-client"),
                template="device",
                requester=Requester("cli", "cepces-client", "local"),
                transaction_id="cepces-client",
                kind=RequestKind.NEW,
            )
        )
        assert isinstance(issued, Issued)
        yield Gateway(
            app,
            f"https://127.0.0.1:{tls_port}",
            cert,
            write_cert(tmp_path / "client.crt", *issued.full_chain),
            write_key(tmp_path / "client.key", client_key),
            session,
        )
    finally:
        await session.close()
        await runner.cleanup()


def _csr_of(body: bytes) -> x509.CertificateSigningRequest:
    element = ElementTree.fromstring(body).find(f".//{{{WSSE}}}BinarySecurityToken")
    assert element is not None and element.text
    pem = f"-----BEGIN CERTIFICATE REQUEST-----\n{element.text}\n-----END CERTIFICATE REQUEST-----"
    return x509.load_pem_x509_csr(pem.encode())


# --- GetPolicies --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vector", "auth", "certificate"),
    [
        ("get_policies_certificate.xml", "Certificate", True),
        ("get_policies_username.xml", "UsernamePassword", False),
    ],
)
async def test_get_policies_lists_templates_and_an_endpoint_cepces_selects(
    gateway: Gateway, vector: str, auth: str, certificate: bool
) -> None:
    cep = f"{gateway.tls}/wstep/CEP"
    response = await gateway.post(cep, gateway.vector(vector, to=cep), certificate=certificate)
    assert {"device", "approval-required", "tls-server"} <= set(template_names(response))
    # Every URI passes cepces' converters; the one it picks for this auth is the TLS CES.
    assert enrollment_endpoint(response, auth) == f"{gateway.tls}/wstep/CES"
    issuing = ca_certificate(response)
    assert issuing == (await components_of(gateway.app).service.ca_chain())[0]


# --- RequestSecurityToken -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vector", "certificate"),
    [("rst_issue_username.xml", False), ("rst_issue_certificate.xml", True)],
)
async def test_issue_answers_a_numeric_request_id_and_the_certificate(
    gateway: Gateway, vector: str, certificate: bool
) -> None:
    ces = f"{gateway.tls}/wstep/CES"
    body = gateway.vector(vector)
    answer = token_answer(await gateway.post(ces, body, certificate=certificate))
    assert answer.certificate is not None and answer.reference is None
    assert answer.certificate.public_key() == _csr_of(body).public_key()
    issuing = (await components_of(gateway.app).service.ca_chain())[0]
    answer.certificate.verify_directly_issued_by(issuing)


async def test_pending_answer_carries_the_poll_reference_and_the_poll_issues_after_approval(
    gateway: Gateway,
) -> None:
    ces = f"{gateway.tls}/wstep/CES"
    pending = token_answer(
        await gateway.post(ces, gateway.vector("rst_issue_pending_username.xml"))
    )
    assert pending.certificate is None and pending.reference == ces
    # cepces' cookie is "<RequestID>,<reference>"; POLL posts the query to the reference.
    poll = gateway.vector("rst_query_username.xml", request_id=pending.request_id)
    again = token_answer(await gateway.post(pending.reference, poll))
    assert (again.request_id, again.certificate, again.reference) == (pending.request_id, None, ces)
    components = components_of(gateway.app)
    waiting = await components.store.list_requests(RequestState.PENDING)
    assert len(waiting) == 1
    await components.service.approve(waiting[0].id, "officer")
    done = token_answer(await gateway.post(pending.reference, poll))
    assert done.request_id == pending.request_id and done.certificate is not None
    assert done.certificate.subject.rfc4514_string() == "CN=capture-approval-required"


async def test_poll_of_another_callers_request_is_a_fault_not_their_certificate(
    gateway: Gateway,
) -> None:
    ces = f"{gateway.tls}/wstep/CES"
    pending = token_answer(
        await gateway.post(ces, gateway.vector("rst_issue_pending_username.xml"))
    )
    await components_of(gateway.app).store.write(
        add_account, Account("other", "other", (), hash_password(PASSWORD)), datetime.now(UTC)
    )
    poll = gateway.vector("rst_query_username.xml", request_id=pending.request_id, user="other")
    with pytest.raises(CepcesFault):
        await gateway.post(ces, poll)


async def test_wrong_password_is_a_soap_fault_with_http_500(gateway: Gateway) -> None:
    ces = f"{gateway.tls}/wstep/CES"
    store = components_of(gateway.app).store
    before = await store.list_requests()
    with pytest.raises(CepcesFault, match=r"username or password .*\(Code: \S+; Subcode: "):
        await gateway.post(ces, gateway.vector("rst_issue_wrong_password.xml"))
    assert await store.list_requests() == before  # nothing was enrolled


def test_vectors_hold_no_secret() -> None:
    """The captured password and the nonce derived from it were replaced (README)."""
    for path in VECTORS.glob("*.xml"):
        text = path.read_text()
        for password in re.findall(r"<(?:\w+:)?Password\b[^>]*>([^<]*)<", text):
            assert password in ("@PASSWORD@", "@WRONG_PASSWORD@"), path.name
        for nonce in re.findall(r"<(?:\w+:)?Nonce>([^<]*)<", text):
            assert nonce == "AAAAAAAAAAAAAAAAAAAAAA==", path.name
        assert "127.0.0.1" not in text, path.name
