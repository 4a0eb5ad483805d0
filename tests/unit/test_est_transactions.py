"""EST's derived transactions on a real SQLite store (protocols.est.transactions): the id is
the requester identity (key) and a generation, the service's attempts and digest decide what is
a repeat; the retry window opens a new generation; ids stored by earlier versions are found."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from gateway.errors import Conflict, NotFound
from gateway.model import AttemptHead, Requester, RequestKind, RequestRecord, RequestState
from gateway.service import MAX_ATTEMPTS, request_digest
from gateway.service.retries import record_of
from gateway.store import SQLStore, default_sqlite_url, open_store
from protocols.est.state import EstState
from protocols.est.transactions import Transaction, find_transaction, transaction_key
from tests.pki_helpers import ec_key

NOW = datetime(2030, 1, 1, tzinfo=UTC)
CLOCK_AT = [NOW]
KEY = transaction_key("", "device", "alice", "ab" * 32, RequestKind.NEW, None)


def _now() -> datetime:
    return CLOCK_AT[0]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLStore]:
    CLOCK_AT[0] = NOW
    s = open_store(default_sqlite_url(tmp_path), clock=_now)
    await s.migrate()
    yield s
    await s.close()


@pytest.fixture
def state(store: SQLStore) -> EstState:
    return EstState(store, _now)


_KEY = ec_key()


def _csr(cn: str) -> bytes:
    """A CSR for ``cn`` with the one test key, signed afresh (ECDSA: new bytes each time)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    return builder.sign(_KEY, hashes.SHA256()).public_bytes(serialization.Encoding.DER)  # type: ignore[arg-type]


async def _stored(
    store: SQLStore, txn: str, cn: str, kind: RequestKind = RequestKind.NEW
) -> RequestRecord:
    """A pending request for ``cn`` stored under transaction key ``txn``."""
    record = RequestRecord(
        id=f"id-{len(await store.list_requests())}",
        protocol="est",
        transaction_id=txn,
        template="device",
        kind=kind,
        requester=Requester("est", "alice", "basic"),
        csr_der=_csr(cn),
        spki_sha256="ab" * 32,
        state=RequestState.PENDING,
        created_at=_now(),
        updated_at=_now(),
    )
    stored, created = await store.create_request(record)
    assert created
    return stored


async def _decide(store: SQLStore, stored: RequestRecord) -> None:
    await store.set_denied(stored.id, "policy-denied", "no", "subject-rdn")


async def _txn(store: SQLStore, state: EstState, cn: str, **kw: object) -> Transaction:
    args: dict[str, object] = {
        "label": "",
        "template": "device",
        "principal": "alice",
        "spki": "ab" * 32,
        "kind": RequestKind.NEW,
        "prior": None,
        "digest": request_digest(_csr(cn)),
        "retry_window": 300,
        "now": _now(),
    }
    args.update(kw)
    return await find_transaction(store, state, **args)  # type: ignore[arg-type]


async def test_a_new_request_opens_generation_0(store: SQLStore, state: EstState) -> None:
    assert await _txn(store, state, "dev") == Transaction(f"{KEY}.0", retry=False)


async def test_a_202_stays_open_until_its_answer_is_picked_up_plus_window(
    store: SQLStore, state: EstState
) -> None:
    stored = await _stored(store, f"{KEY}.0", "dev")
    await state.mark_pending(f"{KEY}.0")
    retry = await _txn(store, state, "dev")
    assert retry == Transaction(f"{KEY}.0", True, stored.id, f"{KEY}.0")
    await _decide(store, stored)  # decided, not picked up
    CLOCK_AT[0] += timedelta(days=3)
    assert (await _txn(store, state, "dev")).retry
    await state.mark_delivered(f"{KEY}.0")
    CLOCK_AT[0] += timedelta(seconds=299)
    assert (await _txn(store, state, "dev")).retry
    CLOCK_AT[0] += timedelta(seconds=2)
    # the same CSR later is a later enrollment: the next generation (a new transaction)
    assert await _txn(store, state, "dev") == Transaction(f"{KEY}.1", retry=False)


async def test_an_answer_given_at_once_is_repeated_only_within_the_window(
    store: SQLStore, state: EstState
) -> None:
    await _decide(store, await _stored(store, f"{KEY}.0", "dev"))
    CLOCK_AT[0] += timedelta(seconds=10)
    assert (await _txn(store, state, "dev")).retry
    CLOCK_AT[0] += timedelta(seconds=300)
    assert not (await _txn(store, state, "dev")).retry


async def test_renewal_of_another_certificate_is_another_transaction(
    store: SQLStore, state: EstState
) -> None:
    key = transaction_key("", "device", "alice", "ab" * 32, RequestKind.RENEWAL, "01")
    await _stored(store, f"{key}.0", "dev", RequestKind.RENEWAL)
    assert (await _txn(store, state, "dev", kind=RequestKind.RENEWAL, prior="01")).retry
    other = await _txn(store, state, "dev", kind=RequestKind.RENEWAL, prior="02")
    assert not other.retry and other.transaction_id.endswith(".0")
    assert not (await _txn(store, state, "dev")).retry


async def test_another_csr_is_the_next_attempt_and_each_repeat_finds_its_own(
    store: SQLStore, state: EstState
) -> None:
    first = await _stored(store, f"{KEY}.0", "first")
    await _decide(store, first)
    # judged afresh by the service under the same transaction, stored as KEY.0#2 at once
    assert await _txn(store, state, "second") == Transaction(
        f"{KEY}.0", retry=False, store_as=f"{KEY}.0#2"
    )
    second = await _stored(store, f"{KEY}.0#2", "second")
    assert await _txn(store, state, "second") == Transaction(
        f"{KEY}.0", True, second.id, f"{KEY}.0#2"
    )
    assert (await _txn(store, state, "first")).request_id == first.id


async def test_another_csr_while_one_is_pending_is_a_conflict(
    store: SQLStore, state: EstState
) -> None:
    stored = await _stored(store, f"{KEY}.0", "first")
    with pytest.raises(Conflict, match=stored.id) as raised:
        await _txn(store, state, "second")
    assert "RFC 7030" in raised.value.detail and KEY not in raised.value.detail
    assert (await _txn(store, state, "first")).retry
    # the same CSR, closed, does not open a new generation past a waiting other CSR either
    await _decide(store, stored)
    CLOCK_AT[0] += timedelta(hours=1)
    waiting = await _stored(store, f"{KEY}.0#2", "second")
    with pytest.raises(Conflict, match=waiting.id):
        await _txn(store, state, "first")


async def test_a_repeat_in_the_generation_before_is_still_answered(
    store: SQLStore, state: EstState
) -> None:
    """CN=a closes and is sent again (generation 1), while CN=b, answered a minute ago in
    generation 0, is retried: its answer is sent again, not a second certificate."""
    await _decide(store, await _stored(store, f"{KEY}.0", "a"))
    CLOCK_AT[0] += timedelta(minutes=10)
    b = await _stored(store, f"{KEY}.0#2", "b")
    await _decide(store, b)
    CLOCK_AT[0] += timedelta(minutes=1)
    assert await _txn(store, state, "a") == Transaction(f"{KEY}.1", retry=False)
    await _decide(store, await _stored(store, f"{KEY}.1", "a"))
    assert await _txn(store, state, "b") == Transaction(f"{KEY}.0", True, b.id, f"{KEY}.0#2")
    CLOCK_AT[0] += timedelta(minutes=5)
    assert await _txn(store, state, "b") == Transaction(
        f"{KEY}.1", retry=False, store_as=f"{KEY}.1#2"
    )


async def test_generations_are_found_however_many_and_a_full_one_opens_the_next(
    store: SQLStore, state: EstState
) -> None:
    for generation in range(6):
        await _decide(store, await _stored(store, f"{KEY}.{generation}", "dev"))
    assert await _txn(store, state, "other") == Transaction(
        f"{KEY}.5", retry=False, store_as=f"{KEY}.5#2"
    )
    for attempt in range(2, MAX_ATTEMPTS + 1):
        await _decide(store, await _stored(store, f"{KEY}.5#{attempt}", f"n{attempt}"))
    assert await _txn(store, state, "other") == Transaction(f"{KEY}.6", retry=False)
    assert (await _txn(store, state, "n16")).attempt == f"{KEY}.5#16"


class _Counting:
    """The store, with the lookups a transaction search makes written down."""

    def __init__(self, store: SQLStore) -> None:
        self.store, self.calls = store, []  # type: list[str]

    async def find_request(self, protocol: str, transaction_id: str) -> RequestRecord | None:
        self.calls.append("find_request")
        return await self.store.find_request(protocol, transaction_id)

    async def find_attempts(self, protocol: str, ids: Sequence[str]) -> dict[str, AttemptHead]:
        self.calls.append("find_attempts")
        return await self.store.find_attempts(protocol, ids)


async def test_a_key_in_its_first_generation_is_read_in_one_query(
    store: SQLStore, state: EstState
) -> None:
    """A key enrolling again (a device keeping its key, a driver's key pool) costs one lookup
    until its first generation's attempts are used up; then the next generation opens."""
    counting = _Counting(store)
    assert await _txn(counting, state, "n1") == Transaction(f"{KEY}.0", retry=False)  # type: ignore[arg-type]
    assert counting.calls == ["find_attempts"]
    for attempt in range(1, MAX_ATTEMPTS + 1):
        key = f"{KEY}.0" if attempt == 1 else f"{KEY}.0#{attempt}"
        counting.calls.clear()
        assert await _txn(counting, state, f"n{attempt}") == Transaction(  # type: ignore[arg-type]
            f"{KEY}.0", retry=False, store_as=None if attempt == 1 else key
        )
        assert counting.calls == ["find_attempts"]
        await _decide(store, await _stored(store, key, f"n{attempt}"))
    assert await _txn(store, state, "n17") == Transaction(f"{KEY}.1", retry=False)
    assert (await _txn(store, state, "n3")).attempt == f"{KEY}.0#3"  # within the window


async def test_a_first_form_id_is_attempt_1_of_its_generation(
    store: SQLStore, state: EstState
) -> None:
    """The first EST ids (``key.generation``, one request each) are this form: the CSR stored
    with the request decides, so one pending across the upgrade is found by the same CSR and a
    different CSR is not answered with it."""
    stored = await _stored(store, f"{KEY}.0", "dev")
    found = await _txn(store, state, "dev")
    assert (found.transaction_id, found.retry, found.request_id) == (f"{KEY}.0", True, stored.id)
    with pytest.raises(Conflict, match=stored.id):  # still pending
        await _txn(store, state, "other")
    await _decide(store, stored)
    assert await _txn(store, state, "other") == Transaction(
        f"{KEY}.0", retry=False, store_as=f"{KEY}.0#2"
    )


async def test_a_request_of_the_previous_id_form_is_still_answered(
    store: SQLStore, state: EstState
) -> None:
    """``key.<fingerprint[:32]>.<generation>`` (the previous version): a pending approval from
    before the upgrade is found by its CSR (re-signed), and answered until it closes."""
    legacy = f"{KEY}.{request_digest(_csr('dev'))[:32]}"
    await _decide(store, await _stored(store, f"{legacy}.0", "dev"))
    pending = await _stored(store, f"{legacy}.1", "dev")
    await state.mark_pending(f"{legacy}.1")
    assert await _txn(store, state, "dev") == Transaction(
        f"{legacy}.1", True, pending.id, f"{legacy}.1"
    )
    await _decide(store, pending)
    await state.mark_delivered(f"{legacy}.1")
    assert (await _txn(store, state, "dev")).retry
    CLOCK_AT[0] += timedelta(minutes=6)
    assert await _txn(store, state, "dev") == Transaction(f"{KEY}.0", retry=False)


async def test_a_request_of_the_previous_form_is_found_after_new_ones(
    store: SQLStore, state: EstState
) -> None:
    legacy = f"{KEY}.{request_digest(_csr('old'))[:32]}.0"
    pending = await _stored(store, legacy, "old")
    await _decide(store, await _stored(store, f"{KEY}.0", "new"))  # not blocked by it
    found = await _txn(store, state, "old")
    assert (found.transaction_id, found.request_id) == (legacy, pending.id)


async def test_a_head_is_read_whole_only_when_asked(store: SQLStore) -> None:
    """retries.record_of: a head becomes its whole stored record (what a repeat is answered
    from); a whole record passes through; a head whose key now holds another request is
    NotFound, never another request's record."""
    stored = await _stored(store, f"{KEY}.0", "dev")
    head = (await store.find_attempts("est", (f"{KEY}.0",)))[f"{KEY}.0"]
    assert (head.id, head.csr_der, head.state) == (stored.id, stored.csr_der, stored.state)
    assert await record_of(store, "est", head) == stored
    assert await record_of(store, "est", stored) is stored
    with pytest.raises(NotFound, match="other-id"):
        await record_of(store, "est", head._replace(id="other-id"))
