# ruff: noqa: F811  (pytest fixtures imported from tests.contract.acme_store_cases)
"""The ACME repository's two implementations (``protocols.acme.repository``): SQLAlchemy Core
(``CoreAcmeRepository``: PostgreSQL, and SQLite as the plain path) and raw SQLite
(``SQLiteAcmeRepository``: the per-request statements on the driver's cursor).

Each behaviour test below runs on raw SQLite, Core on SQLite and Core on PostgreSQL (see
conftest.py for the backends); the replay of one scripted session on all three, whose answers
and stored rows must agree, is test_acme_store_paths.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from gateway.store import SQLStore
from protocols.acme import state
from protocols.acme.ratelimit import Limit, OverLimit
from protocols.acme.repository import AcmeRepository
from tests.contract.acme_store_cases import (  # noqa: F401
    ALL_IMPLEMENTATIONS,
    JWK,
    impl,
    new_authz,
    order_of,
    repo,
    seed,
)
from tests.contract.conftest import StepClock

# --- behaviour, on both backends ---------------------------------------------------------------


@ALL_IMPLEMENTATIONS
async def test_a_nonce_is_taken_once_and_a_fresh_one_issued(
    store: SQLStore, repo: AcmeRepository, clock: StepClock
) -> None:
    t0 = clock.now()
    later = t0 + timedelta(minutes=5)
    await store.write(repo.issue_nonce, "n-1", later, None)
    first = await store.write(repo.with_nonce, "n-1", "n-2", later, t0, state.nothing, (), {})
    replay = await store.write(repo.with_nonce, "n-1", "n-3", later, t0, state.nothing, (), {})
    chained = await store.write(repo.with_nonce, "n-3", "n-4", later, t0, state.nothing, (), {})
    assert (first, replay, chained) == ((True, None), (False, None), (True, None))


@ALL_IMPLEMENTATIONS
async def test_an_expired_nonce_is_refused_and_the_body_not_run(
    store: SQLStore, repo: AcmeRepository, clock: StepClock
) -> None:
    t0 = clock.now()
    await seed(store, repo, t0)
    await store.write(repo.issue_nonce, "n-old", t0, None)
    got = await store.write(
        repo.with_nonce, "n-old", "n-new", t0 + timedelta(minutes=5), t0,
        repo.set_order, ("ord-1", "pending"), {"status": "processing"},
    )  # fmt: skip
    assert got == (False, None)
    order = await store.read(repo.get_order, "ord-1")
    assert order is not None and order[0].status == "pending"


@ALL_IMPLEMENTATIONS
async def test_account_reads_carry_the_eab_binding(
    store: SQLStore, repo: AcmeRepository, clock: StepClock
) -> None:
    await seed(store, repo, clock.now())
    by_id = await store.read(repo.get_account, "acct-1")
    by_key = await store.read(repo.account_by_thumbprint, "thumb-1")
    assert by_id is not None and by_id == by_key
    assert (by_id.principal, by_id.eab_templates, by_id.jwk) == (
        "ops@example.test", ("tls-server",), JWK,
    )  # fmt: skip
    assert await store.read(repo.get_account, "acct-none") is None


@ALL_IMPLEMENTATIONS
async def test_get_authzs_follows_the_order_of_ids_and_skips_unknown_ones(
    store: SQLStore, repo: AcmeRepository, clock: StepClock
) -> None:
    await seed(store, repo, clock.now())
    many = await store.read(repo.get_authzs, ["az-2", "az-none", "az-1"], with_challenges=True)
    one = await store.read(repo.get_authzs, ["az-1"], with_challenges=True)
    assert [a.id for a in many] == ["az-2", "az-1"] and many[1] == one[0]
    assert [c.type for c in one[0].challenges] == ["dns-01", "http-01", "tls-alpn-01"]
    assert one[0].wildcard is True and many[0].wildcard is False
    assert await store.read(repo.get_authzs, ["az-none"], with_challenges=True) == []


@ALL_IMPLEMENTATIONS
async def test_a_challenge_is_started_once_and_finished_only_while_processing(
    store: SQLStore, repo: AcmeRepository, clock: StepClock
) -> None:
    t0 = clock.now()
    await seed(store, repo, t0)
    lease, until = t0 + timedelta(seconds=30), t0 + timedelta(days=30)
    finish = repo.finish_challenge
    await store.write(finish, "az-1-http-01", "az-1", True, None, t0, until)  # not processing
    assert await store.write(repo.start_challenge, "az-1-http-01", lease)
    assert not await store.write(repo.start_challenge, "az-1-http-01", lease)
    await store.write(finish, "az-1-http-01", "az-1", True, None, t0, until)
    found = await store.read(repo.get_challenge, "az-1-http-01")
    assert found is not None
    challenge, authz = found
    assert (challenge.status, challenge.validated_at) == ("valid", t0)
    assert (authz.status, authz.expires_at) == ("valid", until)
    assert await store.read(repo.get_challenge, "nope") is None


@ALL_IMPLEMENTATIONS
async def test_set_order_only_moves_an_order_in_the_expected_state(
    store: SQLStore, repo: AcmeRepository, clock: StepClock
) -> None:
    await seed(store, repo, clock.now())
    move = repo.set_order
    assert await store.write(move, "ord-1", "pending", status="processing")
    assert not await store.write(move, "ord-1", "pending", status="processing")
    assert await store.write(move, "ord-1", "processing", status="valid", certificate_serial="0a")
    found = await store.read(repo.order_for_certificate, "0a")
    assert found is not None and (found.id, found.status) == ("ord-1", "valid")
    assert await store.read(repo.order_for_certificate, "0b") is None


@ALL_IMPLEMENTATIONS
async def test_only_valid_unexpired_authorizations_are_reused(
    store: SQLStore, repo: AcmeRepository, clock: StepClock
) -> None:
    t0 = clock.now()
    await seed(store, repo, t0)
    wanted = [("dns", "pre.example.test", False), ("dns", "pre.example.test", True)]
    wanted += [("dns", "example.test", True)]  # az-1 is only pending
    reuse = repo.reusable_authzs
    assert await store.read(reuse, "acct-1", wanted, t0) == ["az-3", None, None]
    assert await store.read(reuse, "acct-2", wanted, t0) == [None, None, None]
    assert await store.read(reuse, "acct-1", wanted, t0 + timedelta(days=31)) == [None] * 3


@ALL_IMPLEMENTATIONS
async def test_older_awaiting_core_lists_only_older_processing_orders_of_the_account_and_template(
    store: SQLStore, repo: AcmeRepository, clock: StepClock
) -> None:
    """Candidates for supersession (protocols.acme.supersede): older, same account and
    template, ``processing`` with a core request; never the order itself or a newer one."""
    t0 = clock.now()
    await seed(store, repo, t0)
    made: dict[str, state.Order] = {}
    for i, (oid, account, template) in enumerate(
        [
            ("o-old", "acct-1", "tls-server"),
            ("o-other-template", "acct-1", "approval"),
            ("o-other-account", "acct-2", "tls-server"),
            ("o-not-processing", "acct-1", "tls-server"),
            ("o-new", "acct-1", "tls-server"),
            ("o-newest", "acct-1", "tls-server"),
        ]
    ):
        at = t0 + timedelta(seconds=i)
        made[oid] = order_of(oid, account, [], at, template=template)
        await store.write(repo.create_order, made[oid], [], at)
        if oid != "o-not-processing":
            await store.write(
                repo.set_order, oid, "pending", status="processing", request_id=f"r-{oid}"
            )
    older = await store.read(repo.older_awaiting_core, made["o-new"])
    assert [o.id for o in older] == ["o-old"] and older[0].request_id == "r-o-old"
    assert await store.read(repo.older_awaiting_core, made["o-old"]) == []
    newest = await store.read(repo.older_awaiting_core, made["o-newest"])
    assert sorted(o.id for o in newest) == ["o-new", "o-old"]
    # finalize's form: the order's outcome recorded and its older twins read in one transaction
    got = await store.write(
        repo.set_order_and_older, made["o-new"], "processing", status="valid",
        certificate_serial="0c",
    )  # fmt: skip
    assert got == older
    recorded = await store.read(repo.order_for_certificate, "0c")
    assert recorded is not None and (recorded.id, recorded.status) == ("o-new", "valid")
    # the update only while the status is as expected; the twins are read either way
    again = await store.write(
        repo.set_order_and_older, made["o-new"], "processing", status="invalid"
    )
    assert again == older
    still = await store.read(repo.order_for_certificate, "0c")
    assert still is not None and still.status == "valid"


@ALL_IMPLEMENTATIONS
async def test_naive_datetimes_are_refused_by_the_acme_bodies(
    store: SQLStore, repo: AcmeRepository
) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive"):
        await store.write(repo.issue_nonce, "n-naive", datetime(2030, 1, 1), None)


@ALL_IMPLEMENTATIONS
async def test_creations_over_a_shared_limit_write_nothing(
    store: SQLStore, repo: AcmeRepository, clock: StepClock
) -> None:
    """RFC 8555 §6.6: newAccount and newOrder count against shared limits in their own
    transaction; over the limit nothing is written, and an existing account is not a hit."""
    t0 = clock.now()
    per_ip = Limit("ip:192.0.2.7", 1, 3600, 5)
    made = await store.write(repo.create_account, "a-1", "t-1", JWK, [], None, t0, None, per_ip)
    again = await store.write(repo.create_account, "a-1b", "t-1", JWK, [], None, t0, None, per_ip)
    over = await store.write(repo.create_account, "a-2", "t-2", JWK, [], None, t0, None, per_ip)
    assert not isinstance(made, OverLimit) and made[1] is True
    assert not isinstance(again, OverLimit) and (again[0].id, again[1]) == ("a-1", False)
    assert over == OverLimit(per_ip)
    assert await store.read(repo.get_account, "a-2") is None
    per_account = Limit("acct:a-1", 1, 3600, 5)
    first = order_of("o-1", "a-1", [], t0)
    assert await store.write(repo.create_order, first, [], t0, per_account) == first
    refused = order_of("o-2", "a-1", ["az-9"], t0)
    fresh = [new_authz("az-9", "nine.example.test", t0 + timedelta(days=1))]
    got = await store.write(repo.create_order, refused, fresh, t0, per_account)
    assert got == OverLimit(per_account)
    assert await store.read(repo.get_order, "o-2") is None
    assert await store.read(repo.get_authzs, ["az-9"], with_challenges=True) == []
    assert await store.read(repo.orders_of, "a-1") == ["o-1"]


@ALL_IMPLEMENTATIONS
async def test_a_nonce_expecting_an_account_is_taken_only_while_the_account_reads_the_same(
    store: SQLStore, repo: AcmeRepository, clock: StepClock
) -> None:
    """``with_nonce(..., expect=copy)`` (a cached account,
    ``protocols.acme.account_cache.AccountCache``): with the account as copied, the nonce is
    taken and the body runs; once the account was updated, its key changed, it was deactivated
    or its EAB key deleted, nothing is taken or written (``(False, None)``), and the nonce is
    still there for the caller's second pass. Each kind of body: nothing, a read, a folded
    write and a write in its own transaction."""
    t0 = clock.now()
    later = t0 + timedelta(minutes=5)
    await seed(store, repo, t0)
    bound = await store.read(repo.get_account, "acct-1")
    unbound = await store.read(repo.get_account, "acct-2")
    assert bound is not None and bound.principal is not None and unbound is not None

    async def post(nonce: str, expect: state.Account | None, body: object, *args: object,
                   **kw: object) -> tuple[bool, object]:  # fmt: skip
        await store.write(repo.issue_nonce, nonce, later, None)
        return await store.write(
            repo.with_nonce, nonce, f"{nonce}-next", later, t0, body, args, kw, expect
        )

    # unchanged: taken, and the body answers as without ``expect``
    assert await post("n-1", bound, state.nothing) == (True, None)
    read = await post("n-2", bound, repo.get_order, "ord-2")
    assert read[0] is True and read[1] == await store.read(repo.get_order, "ord-2")
    assert await post("n-3", unbound, repo.update_account, "acct-2", ["mailto:b@x"], None, None)
    changed = await store.read(repo.get_account, "acct-2")
    assert changed is not None and changed.contact == ["mailto:b@x"]

    # ``unbound`` is now stale (its contact changed): nothing taken, nothing written
    stale = await post("n-4", unbound, repo.set_order, "ord-1", "pending", status="processing")
    assert stale == (False, None)
    assert await post("n-5", unbound, repo.get_order, "ord-1") == (False, None)
    assert await post("n-6", unbound, state.nothing) == (False, None)
    assert await post("n-7", unbound, repo.update_account, "acct-2", None, "deactivated", None) == (
        False, None,
    )  # fmt: skip
    order = await store.read(repo.get_order, "ord-1")
    assert order is not None and order[0].status == "pending"
    assert await store.read(repo.get_account, "acct-2") == changed
    # the nonce was left for the second pass, which reads the account again
    assert await store.write(
        repo.with_nonce, "n-4", "n-4b", later, t0, state.nothing, (), {}, changed
    ) == (True, None)

    # a new key, a deactivation, a deleted EAB key: each makes the copy stale
    assert await post("n-8", changed, repo.change_key, "acct-2", "thumb-2", "thumb-2b", JWK) == (
        True, None,
    )  # fmt: skip
    assert await post("n-9", changed, state.nothing) == (False, None)
    rekeyed = await store.read(repo.get_account, "acct-2")
    assert await store.write(repo.update_account, "acct-2", None, "deactivated", None)
    assert await post("n-10", rekeyed, state.nothing) == (False, None)
    assert await store.write(repo.delete_eab_key, "kid-1")
    assert await post("n-11", bound, repo.get_order, "ord-2") == (False, None)
    unbound_now = await store.read(repo.get_account, "acct-1")
    assert unbound_now is not None and unbound_now.principal is None
    assert await post("n-12", unbound_now, state.nothing) == (True, None)
