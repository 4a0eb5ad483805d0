"""Records and helpers shared by the store contract tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from gateway.model import (
    CertificateRecord,
    CertificateStatus,
    Requester,
    RequestKind,
    RequestRecord,
    RequestState,
)
from gateway.store import SQLStore
from tests.contract.conftest import StepClock

REPO = Path(__file__).resolve().parents[2]
OpenStores = Callable[[], Awaitable[SQLStore]]


def request_record(
    clock: StepClock,
    txn: str | None = None,
    *,
    protocol: str = "est",
    principal: str = "alice",
    spki: str = "ab" * 32,
    template: str = "tls-server",
) -> RequestRecord:
    now = clock.now()
    return RequestRecord(
        id=str(uuid.uuid4()),
        protocol=protocol,
        transaction_id=txn or uuid.uuid4().hex,
        template=template,
        kind=RequestKind.NEW,
        requester=Requester(
            protocol,
            principal,
            "tls-client-cert",
            groups=frozenset({"web"}),
            verified_facts={"tls_client_cert_sha256": "cd" * 32},
        ),
        csr_der=b"\x30\x82" + os.urandom(200),
        spki_sha256=spki,
        state=RequestState.RECEIVED,
        created_at=now,
        updated_at=now,
    )


def certificate_record(request: RequestRecord, serial: str | None = None) -> CertificateRecord:
    nb = request.created_at
    return CertificateRecord(
        serial=serial or uuid.uuid4().hex[:20].lstrip("0"),
        request_id=request.id,
        subject="CN=www.example.test",
        sans=("dns:www.example.test", "ip:192.0.2.1"),
        template=request.template,
        template_major=2,
        requester=request.requester.principal,
        not_before=nb,
        not_after=nb + timedelta(days=90),
        status=CertificateStatus.VALID,
        der=b"\x30\x82" + os.urandom(400),
        spki_sha256=request.spki_sha256,
        issuer="CN=certgate test CA",
    )


async def received(store: SQLStore, clock: StepClock, **kw: str) -> RequestRecord:
    record, created = await store.create_request(request_record(clock, **kw))
    assert created
    return record


async def issued(store: SQLStore, clock: StepClock, **kw: str) -> CertificateRecord:
    request = await received(store, clock, **kw)
    certificate = certificate_record(request)
    await store.record_issued(request.id, certificate)
    return certificate
