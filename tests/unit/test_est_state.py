"""EST state on a real SQLite store: one-time codes, password hashes; and the checks on client
certificates. Derived transaction ids (retry vs. later enrollment) are in
test_est_transactions.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from gateway.errors import BadRequest, PolicyDenied
from gateway.model import (
    CertificateRecord,
    CertificateStatus,
    serial_hex,
)
from gateway.store import SQLStore, default_sqlite_url, open_store
from protocols.est.auth import check_own_certificate, principal_of
from protocols.est.settings import parse_settings
from protocols.est.state import EstState, code_hash, hash_password, verify_password
from protocols.est.tls import parse_forwarded_certificate, transport_facts
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


def test_shared_requester_equals_a_fresh_one() -> None:
    # authenticate() hands out one Requester per identity (requester_of); the plain path
    # builds a new one per request
    from types import MappingProxyType

    from gateway.model import Requester
    from protocols.est.auth import requester_of

    groups = frozenset({"ops", "iot"})
    facts = (("basic_user", "alice"), ("transport", "tls"))
    shared = requester_of("alice", "basic", groups, facts)
    fresh = Requester("est", "alice", "basic", groups, MappingProxyType(dict(facts)))
    assert shared == fresh
    assert shared.json_text == fresh.json_text
    assert requester_of("alice", "basic", frozenset(groups), tuple(facts)) is shared
    assert requester_of("alice", "basic", groups, (("basic_user", "bob"),)) != shared
