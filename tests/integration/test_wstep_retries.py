"""WS-TEP's client transaction id (ContextItem ``certgate-request-id``, scoped to the caller)
goes through the service's retry mechanism (gateway.service.retries): a resubmission of the
same request returns the recorded certificate; a different CSR under the same id is judged
afresh and gets its own certificate, never the other request's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.codecs.ms.wstrust import TokenResponse, parse_reply
from gateway.config import load_config
from gateway.server.app import components_of, create_app
from protocols.wstep.users import Account, add_account, hash_password
from tests.helpers import make_csr, write_config
from tests.pki_helpers import ec_key
from tests.wstep_helpers import PASSWORD, SOAP_HEADERS, rst

Client = Any


@pytest.fixture
async def client(
    tmp_path: Path, aiohttp_client: Callable[[Any], Awaitable[Any]]
) -> AsyncIterator[Client]:
    cfg = write_config(tmp_path, "\n[wstep]\nenabled = true\nallow_password_over_http = true\n")
    app = await create_app(load_config(cfg))
    http = await aiohttp_client(app)
    account = Account("alice", "alice", (), hash_password(PASSWORD))
    await components_of(app).store.write(add_account, account, datetime.now(UTC))
    yield http


async def _issue(client: Client, csr: x509.CertificateSigningRequest, txn: str) -> str:
    """Issue; the RequestID (CES request number) of the answer."""
    body = rst(csr.public_bytes(Encoding.DER), extra_context={"certgate-request-id": txn})
    response = await client.post("/wstep/CES", data=body, headers=SOAP_HEADERS)
    assert response.status == 200, await response.text()
    reply = parse_reply(await response.read())
    assert isinstance(reply, TokenResponse) and reply.request_id, reply
    return reply.request_id


async def _issued(client: Client) -> list[tuple[str, ...]]:
    """The DNS names of every certificate issued so far, oldest first."""
    certificates = await components_of(client.app).store.list_certificates()
    return sorted(record.sans for record in certificates)


async def test_a_resubmission_replays_and_a_different_csr_is_judged_afresh(
    client: Client,
) -> None:
    key = ec_key()
    number = await _issue(client, make_csr(key, cn="a.example", dns=("a.example",)), "req-7")
    first = await _issued(client)
    again = await _issue(client, make_csr(key, cn="a.example", dns=("a.example",)), "req-7")
    assert await _issued(client) == first and again == number  # re-signed: replayed
    other = await _issue(client, make_csr(key, cn="b.example", dns=("b.example",)), "req-7")
    assert other != number  # the new attempt has a request number of its own
    # the first request, repeated after the second, still gets its own number
    assert await _issue(client, make_csr(key, cn="a.example", dns=("a.example",)), "req-7") == (
        number
    )
    issued = await _issued(client)
    assert len(issued) == 2 and any("b.example" in str(sans) for sans in issued)
    store = components_of(client.app).store
    first_attempt = await store.find_request("wstep", "alice/req-7")
    second_attempt = await store.find_request("wstep", "alice/req-7#2")
    assert first_attempt is not None and second_attempt is not None
    assert first_attempt.certificate_serial != second_attempt.certificate_serial
