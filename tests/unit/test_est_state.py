"""EST state on a real SQLite store: derived transaction ids (retry vs. later enrollment),
one-time codes, password hashes; and the checks on client certificates."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from gateway.errors import BadRequest, Conflict, PolicyDenied
from gateway.model import (
    CertificateRecord,
    CertificateStatus,
    Requester,
    RequestKind,
    RequestRecord,
    RequestState,
    serial_hex,
)
from gateway.store import SQLStore, default_sqlite_url, open_store
from protocols.est.auth import check_own_certificate, principal_of
from protocols.est.messages import request_fingerprint_der
from protocols.est.settings import parse_settings
from protocols.est.state import EstState, code_hash, hash_password, verify_password
from protocols.est.tls import parse_forwarded_certificate, transport_facts
from protocols.est.transactions import find_transaction, transaction_key
from tests.pki_helpers import PrivateKey, certificate, ec_key

NOW = datetime(2030, 1, 1, tzinfo=UTC)


class Clock:
    """The EST state's clock; moving it moves the store's clock too."""

    @property
    def at(self) -> datetime:
        return CLOCK_AT[0]

    @at.setter
    def at(self, value: datetime) -> None:
        CLOCK_AT[0] = value

    def __call__(self) -> datetime:
        return CLOCK_AT[0]


CLOCK_AT = [NOW]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLStore]:
    CLOCK_AT[0] = NOW
    s = open_store(default_sqlite_url(tmp_path), clock=lambda: CLOCK_AT[0])
    await s.migrate()
    yield s
    await s.close()


def _record(txn: str, spki: str = "ab" * 32, kind: RequestKind = RequestKind.NEW) -> RequestRecord:
    return RequestRecord(
        id=f"id-{txn[-6:]}-{kind.value}",
        protocol="est",
        transaction_id=txn,
        template="device",
        kind=kind,
        requester=Requester("est", "alice", "basic"),
        csr_der=b"0",
        spki_sha256=spki,
        state=RequestState.PENDING,
        created_at=NOW,
        updated_at=NOW,
    )


async def _txn(store: SQLStore, state: EstState, **kw: object) -> object:
    args: dict[str, object] = {
        "label": "",
        "template": "device",
        "principal": "alice",
        "spki": "ab" * 32,
        "kind": RequestKind.NEW,
        "prior": None,
        "request": CSR_A,
        "retry_window": 300,
        "now": state.clock(),
    }
    args.update(kw)
    return await find_transaction(store, state, **args)  # type: ignore[arg-type]


KEY = transaction_key("", "device", "alice", "ab" * 32, RequestKind.NEW, None)
#: Request fingerprints of two different CSRs (protocols.est.messages.request_fingerprint).
CSR_A, CSR_B = "a1" * 32, "b2" * 32
A = f"{KEY}.{CSR_A[:32]}"


async def test_a_202_stays_open_until_its_answer_is_picked_up_plus_window(
    store: SQLStore,
) -> None:
    clock = Clock()
    state = EstState(store, clock)
    first = await _txn(store, state)
    assert (first.transaction_id, first.retry) == (f"{A}.0", False)  # type: ignore[attr-defined]
    stored, _ = await store.create_request(_record(f"{A}.0"))
    await state.mark_pending(f"{A}.0")
    retry = await _txn(store, state)
    assert (retry.transaction_id, retry.retry) == (f"{A}.0", True)  # type: ignore[attr-defined]
    await store.set_denied(stored.id, "policy-denied", "no", "manager")  # decided, not picked up
    clock.at += timedelta(days=3)
    assert (await _txn(store, state, now=clock.at)).retry  # type: ignore[attr-defined]
    await state.mark_delivered(f"{A}.0")
    clock.at += timedelta(seconds=299)
    assert (await _txn(store, state, now=clock.at)).retry  # type: ignore[attr-defined]
    clock.at += timedelta(seconds=2)
    later = await _txn(store, state, now=clock.at)
    assert (later.transaction_id, later.retry) == (f"{A}.1", False)  # type: ignore[attr-defined]


async def test_an_answer_given_at_once_is_repeated_only_within_the_window(
    store: SQLStore,
) -> None:
    clock = Clock()
    state = EstState(store, clock)
    stored, _ = await store.create_request(_record(f"{A}.0"))
    await store.set_denied(stored.id, "policy-denied", "no", "subject-rdn")
    clock.at += timedelta(seconds=10)
    assert (await _txn(store, state, now=clock.at)).retry  # type: ignore[attr-defined]
    clock.at += timedelta(seconds=300)
    assert not (await _txn(store, state, now=clock.at)).retry  # type: ignore[attr-defined]


async def test_renewal_of_another_certificate_is_another_transaction(store: SQLStore) -> None:
    state = EstState(store, Clock())
    key = transaction_key("", "device", "alice", "ab" * 32, RequestKind.RENEWAL, "01")
    await store.create_request(_record(f"{key}.{CSR_A[:32]}.0", kind=RequestKind.RENEWAL))
    assert (await _txn(store, state, kind=RequestKind.RENEWAL, prior="01")).retry  # type: ignore[attr-defined]
    other = await _txn(store, state, kind=RequestKind.RENEWAL, prior="02")
    assert not other.retry  # type: ignore[attr-defined]
    assert not (await _txn(store, state)).retry  # type: ignore[attr-defined]


async def test_another_csr_with_the_same_key_is_another_transaction(store: SQLStore) -> None:
    clock = Clock()
    state = EstState(store, clock)
    stored, _ = await store.create_request(_record(f"{A}.0"))
    await store.set_denied(stored.id, "policy-denied", "no", "subject-rdn")
    assert (await _txn(store, state)).retry  # type: ignore[attr-defined]
    other = await _txn(store, state, request=CSR_B)
    assert (other.transaction_id, other.retry) == (f"{KEY}.{CSR_B[:32]}.0", False)  # type: ignore[attr-defined]


async def test_another_csr_while_one_is_pending_is_a_conflict(store: SQLStore) -> None:
    state = EstState(store, Clock())
    stored, _ = await store.create_request(_record(f"{A}.0"))
    with pytest.raises(Conflict, match=stored.id):
        await _txn(store, state, request=CSR_B)
    assert (await _txn(store, state)).retry  # type: ignore[attr-defined]


async def test_a_request_from_before_fingerprinted_ids_is_found_by_its_stored_csr(
    store: SQLStore,
) -> None:
    """Ids written before the CSR fingerprint was part of them (``key.generation``): the CSR
    stored with the request decides, so a request pending across the upgrade is still found
    by the same CSR and a different CSR is not answered with it."""
    state = EstState(store, Clock())
    key = ec_key()
    same = _csr_der(key, "dev")
    legacy = replace(_record(f"{KEY}.0"), csr_der=same)
    stored, _ = await store.create_request(legacy)
    found = await _txn(store, state, request=request_fingerprint_der(_csr_der(key, "dev")))
    assert (found.transaction_id, found.retry) == (f"{KEY}.0", True)  # type: ignore[attr-defined]
    other = request_fingerprint_der(_csr_der(key, "other"))
    with pytest.raises(Conflict, match=stored.id):  # still pending
        await _txn(store, state, request=other)
    await store.set_denied(stored.id, "policy-denied", "no", "subject-rdn")
    fresh = await _txn(store, state, request=other)
    assert (fresh.transaction_id, fresh.retry) == (f"{KEY}.{other[:32]}.0", False)  # type: ignore[attr-defined]


def _csr_der(key: PrivateKey, cn: str) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)  # type: ignore[arg-type]


async def test_code_is_bound_once(store: SQLStore) -> None:
    state = EstState(store, Clock())
    code, record = await state.create_code("iot", "sensor-1", timedelta(hours=1))
    found = await state.get_code(code.lower())
    assert found is not None and found.identity == "sensor-1" and found.used_at is None
    assert code_hash(code) == record.code_hash and code not in record.code_hash
    assert await state.bind_code(found, "k1")
    assert not await state.bind_code(found, "k2")
    bound = await state.get_code(code)
    assert bound is not None and bound.spki_sha256 == "k1"


async def test_user_password_check(store: SQLStore) -> None:
    state = EstState(store, Clock())
    await state.add_user("bob", "pw-1", ["ops"], replace=False)
    assert (await state.check_user("bob", "pw-1")) is not None
    assert (await state.check_user("bob", "pw-2")) is None
    assert (await state.check_user("nobody", "pw-1")) is None


def test_password_hash_is_salted_and_verifies() -> None:
    a, b = hash_password("x"), hash_password("x")
    assert a != b and verify_password("x", a) and not verify_password("y", a)
    assert not verify_password("x", "garbage")


# --- client certificates ------------------------------------------------------------------


def _cert(subject: str, issuer_key: PrivateKey, issuer: str, *, days: int = 30,
          key: PrivateKey | None = None) -> x509.Certificate:  # fmt: skip
    """A certificate valid from a day before NOW for ``days`` days after it."""
    key = key or ec_key()
    start, end = NOW - timedelta(days=1), NOW + timedelta(days=days)
    return certificate(
        subject, key.public_key(), issuer_key, issuer=issuer, not_before=start, not_after=end
    )


def _inventory(cert: x509.Certificate, status: CertificateStatus) -> CertificateRecord:
    from cryptography.hazmat.primitives import serialization

    return CertificateRecord(
        serial=serial_hex(cert.serial_number), request_id=None, subject="", sans=(),
        template="device", template_major=100, requester="alice",
        not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc, status=status,
        der=cert.public_bytes(serialization.Encoding.DER), spki_sha256="", issuer="",
    )  # fmt: skip


@pytest.fixture
def own_ca() -> tuple[PrivateKey, x509.Certificate]:
    key = ec_key()
    return key, _cert("Issuing CA", key, "Issuing CA", days=3650, key=key)


async def test_own_certificate_checks(
    own_ca: tuple[PrivateKey, x509.Certificate],
) -> None:
    ca_key, ca = own_ca
    leaf = _cert("dev", ca_key, "Issuing CA")
    records = {serial_hex(leaf.serial_number): _inventory(leaf, CertificateStatus.VALID)}

    async def lookup(serial: str) -> CertificateRecord | None:
        return records.get(serial)

    assert (await check_own_certificate(leaf, (ca,), lookup, NOW)).requester == "alice"
    with pytest.raises(PolicyDenied, match="expired"):
        await check_own_certificate(leaf, (ca,), lookup, NOW + timedelta(days=31))
    with pytest.raises(PolicyDenied, match="not yet valid"):
        await check_own_certificate(leaf, (ca,), lookup, NOW - timedelta(days=2))
    stranger_key = ec_key()
    with pytest.raises(PolicyDenied, match="not issued by this CA"):
        await check_own_certificate(_cert("x", stranger_key, "Issuing CA"), (ca,), lookup, NOW)
    records[serial_hex(leaf.serial_number)] = _inventory(leaf, CertificateStatus.REVOKED)
    with pytest.raises(PolicyDenied, match="revoked"):
        await check_own_certificate(leaf, (ca,), lookup, NOW)
    records.clear()
    with pytest.raises(PolicyDenied, match="inventory"):
        await check_own_certificate(leaf, (ca,), lookup, NOW)
    assert principal_of(leaf) == "dev"


def _settings(proxies: list[str]) -> object:
    return parse_settings(
        {"trusted_proxies": proxies}, "<t>", "device", {"device": 1, "tls-server": 1}
    )


def test_forwarded_certificate_only_from_trusted_proxies(
    own_ca: tuple[PrivateKey, x509.Certificate],
) -> None:
    from urllib.parse import quote

    from cryptography.hazmat.primitives import serialization

    ca_key, _ = own_ca
    pem = _cert("dev", ca_key, "Issuing CA").public_bytes(serialization.Encoding.PEM).decode()
    header = quote(pem)
    trusted = transport_facts(None, "10.0.0.5", header, _settings(["10.0.0.0/8"]))  # type: ignore[arg-type]
    assert trusted.via == "proxy" and trusted.client_certificate is not None
    untrusted = transport_facts(None, "192.0.2.1", header, _settings(["10.0.0.0/8"]))  # type: ignore[arg-type]
    assert untrusted.via == "plain" and untrusted.client_certificate is None
    with pytest.raises(BadRequest):
        parse_forwarded_certificate("not%20a%20cert")


async def test_expired_or_foreign_codes_are_refused(store: SQLStore) -> None:
    from gateway.errors import Unauthorized
    from protocols.est.auth import authenticate
    from protocols.est.tls import TransportFacts

    clock = Clock()
    state = EstState(store, clock)
    settings = parse_settings(
        {"labels": {"iot": {"template": "device", "auth": ["basic"]}}},
        "<t>",
        "device",
        {"device": 1, "tls-server": 1},
    )
    label = settings.label("iot")
    assert label is not None
    code, _ = await state.create_code("iot", "sensor-9", timedelta(hours=1))
    other, _ = await state.create_code("", "sensor-9", timedelta(hours=1))

    async def login(user: str, password: str) -> object:
        import base64

        header = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return await authenticate(
            label=label,
            transport=TransportFacts("tls", "127.0.0.1"),
            authorization=header,
            own_chain=(),
            state=state,
            lookup=store.get_certificate,
            now=clock.at,
        )

    ok = await login("", code)
    assert ok.requester.principal == "sensor-9"  # type: ignore[attr-defined]
    assert (await login("sensor-9", code)).requester.auth_method == "enrollment-code"  # type: ignore[attr-defined]
    with pytest.raises(Unauthorized):
        await login("someone-else", code)
    with pytest.raises(Unauthorized):
        await login("", other)  # a code of another label
    clock.at += timedelta(hours=2)
    with pytest.raises(Unauthorized, match="expired"):
        await login("", code)
