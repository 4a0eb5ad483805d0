"""The ACME state repository: nonces, accounts, EAB keys, rate counters, orders,
authorizations and challenges, as one interface with three implementations.

* :class:`protocols.acme.repository_core.CoreAcmeRepository`: SQLAlchemy Core, the plain path
  on both backends;
* :class:`protocols.acme.repository_sqlite.SQLiteAcmeRepository`: the per-request statements on
  the raw SQLite cursor (through :mod:`gateway.store.raw`), Core for the rest;
* :class:`protocols.acme.repository_postgres.PostgresAcmeRepository`: the per-request statements
  on asyncpg, each POST's nonce and its write (or POST-as-GET read) as one statement, Core for
  the rest. Its methods are coroutines on the asyncpg connection (driver bodies, see
  :func:`gateway.store.engine.driver_body`) that only the PostgreSQL engine runs, and its
  ``with_nonce`` runs only its own bodies.

:func:`open_repository` picks one once, when the ACME front-end (or an ACME CLI command) opens
its state, by the store's SQL dialect; no method looks at the dialect again.

Every method is a transaction body: it receives the ``Connection`` that ``store.read`` /
``store.write`` opened as its first argument, so bound methods are passed to them
(``store.read(repo.get_order, order_id)``) and several calls can share one transaction. Bodies
take no clock and draw no randomness (a write body may run twice when SQLite is busy):
callers pass ``now`` and ids. The implementations store the same rows, byte for byte on
SQLite (``tests/contract/test_acme_store_paths.py``; on PostgreSQL
``tests/contract/test_acme_store_postgres.py``), and give the same answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy.engine import Connection

from gateway.store.raw import returning_supported
from protocols.acme.ratelimit import Limit, OverLimit
from protocols.acme.records import Account, Authz, Challenge, NewAuthz, Order
from protocols.acme.repository_core import CoreAcmeRepository
from protocols.acme.repository_postgres import PostgresAcmeRepository
from protocols.acme.repository_sqlite import SQLiteAcmeRepository


class AcmeRepository(Protocol):
    """ACME state in the gateway database (tables: :mod:`protocols.acme.tables`)."""

    # --- nonces (RFC 8555 §6.5) ------------------------------------------------------------

    def issue_nonce(
        self, conn: Connection, value: str, expires: datetime, purge_before: datetime | None
    ) -> None:
        """Record ``value`` as a nonce valid until ``expires`` (§6.5); with ``purge_before``,
        also forget the nonces that expired before it."""

    def purge_nonces(self, conn: Connection, now: datetime) -> int:
        """Forget the nonces that expired unused before ``now``; returns how many."""

    def with_nonce(
        self,
        conn: Connection,
        used: str | None,
        fresh: str,
        expires: datetime,
        now: datetime,
        body: Callable[..., Any],
        args: Sequence[Any],
        kw: dict[str, Any],
        expect: Account | None = None,
    ) -> tuple[bool, Any]:
        """Take ``used`` (a nonce is accepted once, on any instance: only one DELETE removes
        its row; an expired one is not taken), record ``fresh`` either way, and run
        ``body(conn, *args, **kw)`` only if ``used`` was taken, all in this transaction
        (§6.5, §6.5.1). Returns ``(taken, body's answer or None)``.

        ``expect``: the signer's account as the caller last read it (a cached copy); then
        ``used`` is taken, and ``body`` run, only if :meth:`get_account` of its id equals it
        in this transaction, and ``(False, None)`` when it does not, as for a bad nonce (the
        caller reads the account again and retries, which tells the two apart)."""

    # --- accounts (RFC 8555 §7.3) ----------------------------------------------------------

    def get_account(self, conn: Connection, account_id: str) -> Account | None:
        """The account at ``kid`` (§6.2), with its external account binding (principal,
        templates, domains of its EAB key, §7.3.4), or ``None``."""

    def account_by_thumbprint(self, conn: Connection, thumbprint: str) -> Account | None:
        """The account holding the key with this RFC 7638 thumbprint (one account per key),
        with its EAB binding, or ``None``."""

    def create_account(
        self,
        conn: Connection,
        account_id: str,
        thumbprint: str,
        jwk: dict[str, Any],
        contact: list[str],
        eab_kid: str | None,
        now: datetime,
        tos_agreed: str | None = None,
        limit: Limit | None = None,
    ) -> tuple[Account, bool] | OverLimit:
        """Insert a ``valid`` account, or return the account already holding this key with
        ``False`` (§7.3.1). Only a creation counts against ``limit`` (new accounts per client
        address); over it, nothing is written and :class:`OverLimit` returned."""

    def update_account(
        self,
        conn: Connection,
        account_id: str,
        contact: list[str] | None,
        status: str | None,
        tos_agreed: str | None = None,
    ) -> Account | None:
        """Set the given fields of a ``valid`` account (contact §7.3.2, deactivation §7.3.6,
        terms agreed to §7.3.3); a non-valid account is left alone. Returns the account as
        now stored (``None`` if unknown)."""

    def change_key(
        self,
        conn: Connection,
        account_id: str,
        old_thumbprint: str,
        thumbprint: str,
        jwk: dict[str, Any],
    ) -> Account | None:
        """Roll the account's key over from ``old_thumbprint`` (§7.3.5). If another account
        already holds the new key, change nothing and return that account (-> 409)."""

    def revoke_account(self, conn: Connection, account_id: str) -> bool:
        """``valid`` -> ``revoked`` by the server operator (§7.1.6); False if not valid."""

    def list_accounts(self, conn: Connection) -> list[dict[str, Any]]:
        """Every account (id, status, contact, eab_kid, created_at), oldest first."""

    # --- external account binding keys (RFC 8555 §7.3.4) -----------------------------------

    def get_eab_key(self, conn: Connection, kid: str) -> dict[str, Any] | None:
        """The EAB key ``kid``, every column decoded (secret included), or ``None``."""

    def put_eab_key(
        self,
        conn: Connection,
        kid: str,
        principal: str,
        templates: list[str],
        domains: list[str],
        secret: bytes,
        now: datetime,
    ) -> None:
        """Store a new EAB key (an existing ``kid`` is an ``IntegrityError``)."""

    def list_eab_keys(self, conn: Connection) -> list[dict[str, Any]]:
        """Every EAB key without its secret, oldest first."""

    def delete_eab_key(self, conn: Connection, kid: str) -> bool:
        """Delete the EAB key ``kid``; False if there was none."""

    # --- shared rate counters (RFC 8555 §6.6) -----------------------------------------------

    def count_hit(self, conn: Connection, limit: Limit) -> bool:
        """Count one hit of ``limit.key`` in window ``limit.slot`` (a new window starts at 1)
        in one statement, so concurrent instances never lose one; False once the window's
        count exceeds ``limit.limit`` (refused hits count too)."""

    # --- orders (RFC 8555 §7.1.3, §7.4) -----------------------------------------------------

    def create_order(
        self,
        conn: Connection,
        order: Order,
        new_authzs: Sequence[NewAuthz],
        now: datetime,
        limit: Limit | None = None,
    ) -> Order | OverLimit:
        """Count the order against ``limit`` (new orders per account), then insert it with
        its new authorizations and their ``pending`` challenges; over the limit, nothing is
        written and :class:`OverLimit` returned."""

    def get_order(self, conn: Connection, order_id: str) -> tuple[Order, list[Authz]] | None:
        """The order with its authorizations (without their challenges), or ``None``."""

    def orders_of(self, conn: Connection, account_id: str) -> list[str]:
        """The ids of the account's orders, oldest first (§7.1.2.1)."""

    def set_order(
        self, conn: Connection, /, order_id: str, expect: str | None, **values: Any
    ) -> bool:
        """Set ``values`` (column -> value) on the order if its status is still ``expect``
        (any status when ``None``); False if no row matched. An unknown column raises
        ``sqlalchemy.exc.CompileError``."""

    def older_awaiting_core(self, conn: Connection, order: Order) -> list[Order]:
        """The account's orders for the same template created before ``order`` that are
        still ``processing`` with a core request (pending approval or at the CA)."""

    def set_order_and_older(
        self, conn: Connection, /, order: Order, expect: str | None, **values: Any
    ) -> list[Order]:
        """:meth:`set_order` of ``order`` then :meth:`older_awaiting_core` of it, in one
        transaction (finalize records the core's answer and finds the twins to supersede)."""

    def order_replacing(self, conn: Connection, cert_id: str) -> list[Order]:
        """The orders whose ``replaces`` is this ARI certificate id (RFC 9773 §5)."""

    def order_for_certificate(self, conn: Connection, serial: str) -> Order | None:
        """The order that issued the certificate with this serial (download §7.4.2,
        revocation §7.6), or ``None``."""

    # --- authorizations and challenges (RFC 8555 §7.1.4, §7.1.5, §7.5) ---------------------

    def reusable_authzs(
        self,
        conn: Connection,
        account_id: str,
        wanted: Sequence[tuple[str, str, bool]],
        now: datetime,
    ) -> list[str | None]:
        """For each (type, value, wildcard): the id of a ``valid`` authorization of the
        account that has not expired at ``now``, or ``None``."""

    def get_authzs(
        self, conn: Connection, ids: Sequence[str], *, with_challenges: bool
    ) -> list[Authz]:
        """The authorizations with these ids that exist, in the order of ``ids``; with
        ``with_challenges``, each with its challenges ordered by type."""

    def set_authz_status(
        self, conn: Connection, authz_id: str, status: str, allowed: Sequence[str]
    ) -> bool:
        """Set the authorization's status if it is one of ``allowed`` (deactivation,
        §7.5.2); False if not."""

    def valid_identifiers(
        self, conn: Connection, account_id: str, now: datetime
    ) -> set[tuple[str, str]]:
        """(type, value) pairs the account holds valid, unexpired authorizations for
        (revocation by an authorized account, §7.6)."""

    def get_challenge(self, conn: Connection, challenge_id: str) -> tuple[Challenge, Authz] | None:
        """The challenge with its authorization (without the authorization's challenges),
        or ``None``."""

    def start_challenge(self, conn: Connection, challenge_id: str, lease_until: datetime) -> bool:
        """``pending`` -> ``processing`` (§7.5.1) with a validation lease until
        ``lease_until``; False if it was not pending."""

    def finish_challenge(
        self,
        conn: Connection,
        challenge_id: str,
        authz_id: str,
        ok: bool,
        error: dict[str, Any] | None,
        now: datetime,
        valid_until: datetime,
    ) -> None:
        """``processing`` -> ``valid`` (validated at ``now``) or ``invalid`` (with ``error``,
        a problem document, §7.1.5), and the authorization with it if still ``pending``
        (valid until ``valid_until``). Nothing happens if the challenge is not processing."""

    def accept_challenge(
        self,
        conn: Connection,
        challenge_id: str,
        authz_id: str,
        now: datetime,
        valid_until: datetime,
    ) -> bool:
        """``[testing] acme_always_valid``: ``pending`` -> ``valid`` in one transaction,
        the authorization with it; False if the challenge was not pending."""

    def claim_stale_challenges(
        self, conn: Connection, now: datetime, lease_until: datetime
    ) -> list[str]:
        """Claim (new lease, one more attempt) up to 50 challenges left ``processing`` with
        a lease expired before ``now`` (a crashed or stopped instance); their ids."""


def open_repository(
    dialect: str, *, raw_sqlite: bool = True, fast_postgres: bool = True
) -> AcmeRepository:
    """The repository for a store of this SQL dialect (``store.dialect_name``): the raw
    SQLite one when the SQLite library has ``RETURNING`` (3.35, needed for the nonce) and
    ``raw_sqlite`` is not switched off, the asyncpg one on PostgreSQL unless
    ``fast_postgres`` is switched off, else SQLAlchemy Core."""
    if dialect == "sqlite" and raw_sqlite and returning_supported():
        return SQLiteAcmeRepository()
    if dialect == "postgresql" and fast_postgres:
        # its driver bodies are coroutines that only the PostgreSQL engine runs (awaits)
        return cast(AcmeRepository, PostgresAcmeRepository())
    return CoreAcmeRepository()
