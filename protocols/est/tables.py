"""EST protocol state, kept in the gateway database (migration ``est_0001_state``).

``est_users``: HTTP Basic accounts (RFC 7030 §3.2.3) with salted scrypt hashes.
``est_codes``: one-time enrollment codes; only a SHA-256 of the (high-entropy) code is kept.
``est_deliveries``: transactions that answered 202 and whether their final answer has reached
the client since, so that a retry of a 202 (RFC 7030 §4.2.3) is recognised but a later genuine
enrollment is not.
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.store import JSONType, UTCDateTime, metadata

est_users = sa.Table(
    "est_users",
    metadata,
    sa.Column("username", sa.String(255), primary_key=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("groups", JSONType, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

est_codes = sa.Table(
    "est_codes",
    metadata,
    sa.Column("code_hash", sa.String(64), primary_key=True),
    sa.Column("label", sa.String(64), nullable=False),
    sa.Column("identity", sa.String(255), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    # Bound to the first public key it enrolled; retries of that enrollment may reuse it.
    sa.Column("used_at", UTCDateTime(), nullable=True),
    sa.Column("spki_sha256", sa.String(64), nullable=True),
)

#: A row is written only when a transaction answers 202 (``pending_at``) and again when its final
#: answer reaches the client (``delivered_at``): the hot path (answered at once) writes nothing.
est_deliveries = sa.Table(
    "est_deliveries",
    metadata,
    sa.Column("transaction_id", sa.String(255), primary_key=True),
    sa.Column("pending_at", UTCDateTime(), nullable=False),
    sa.Column("delivered_at", UTCDateTime(), nullable=True),
)
