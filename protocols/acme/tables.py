"""ACME protocol state in the gateway database (migrations ``acme_0001_state``,
``acme_0002_terms_rate_limits``).

Everything another gateway instance needs lives here: nonces (single use across instances),
accounts, orders, authorizations, challenges (with a validation lease so a restarted or other
instance re-validates a challenge left ``processing``), external account binding keys and
the rate-limit counters every instance shares.
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.store import JSONType, UTCDateTime, metadata

#: RFC 8555 §6.5: issued on every response, deleted when used (DELETE ... RETURNING). Without
#: a rowid on SQLite (migration ``acme_0005``): the row lives in its key's index.
acme_nonces = sa.Table(
    "acme_nonces",
    metadata,
    sa.Column("value", sa.String(64), primary_key=True),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Index(None, "expires_at"),
    sqlite_with_rowid=False,
)

#: RFC 8555 §7.1.2. ``key_thumbprint`` (RFC 7638) is unique: one account per key.
#: ``tos_agreed``: the terms-of-service URL the account last agreed to (RFC 8555 §7.3.3).
acme_accounts = sa.Table(
    "acme_accounts",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("key_thumbprint", sa.String(64), nullable=False, unique=True),
    sa.Column("jwk", JSONType, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("contact", JSONType, nullable=False),
    sa.Column("eab_kid", sa.String(64), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("tos_agreed", sa.String(1024), nullable=True),
)

#: External account binding keys (RFC 8555 §7.3.4); the HMAC key is encrypted (AES-GCM).
acme_eab_keys = sa.Table(
    "acme_eab_keys",
    metadata,
    sa.Column("kid", sa.String(64), primary_key=True),
    sa.Column("principal", sa.String(1024), nullable=False),
    sa.Column("templates", JSONType, nullable=False),
    sa.Column("domains", JSONType, nullable=False),
    sa.Column("secret", sa.LargeBinary(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

#: RFC 8555 §7.1.3. ``status`` is stored only once it no longer follows from the
#: authorizations: "pending" means "derive pending/ready/invalid from them".
acme_orders = sa.Table(
    "acme_orders",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("account_id", sa.String(36), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("template", sa.String(255), nullable=False),
    sa.Column("profile", sa.String(255), nullable=True),
    sa.Column("identifiers", JSONType, nullable=False),
    sa.Column("authz_ids", JSONType, nullable=False),
    sa.Column("not_before", UTCDateTime(), nullable=True),
    sa.Column("not_after", UTCDateTime(), nullable=True),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Column("error", JSONType, nullable=True),
    sa.Column("replaces", sa.String(255), nullable=True),
    sa.Column("finalize_attempt", sa.Integer(), nullable=False),
    sa.Column("request_id", sa.String(36), nullable=True),
    sa.Column("certificate_serial", sa.String(64), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index(None, "account_id"),
    sa.Index(None, "replaces"),
    # Certificate download and revocation find the order by serial (acme_0003).
    sa.Index(None, "certificate_serial"),
    # Finalize's supersession check reads an account's orders in processing (acme_0004).
    sa.Index(None, "account_id", "status"),
)

#: RFC 8555 §7.1.4. Valid ones are reused for the same account and identifier until expiry.
acme_authorizations = sa.Table(
    "acme_authorizations",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("account_id", sa.String(36), nullable=False),
    sa.Column("type", sa.String(8), nullable=False),
    sa.Column("value", sa.String(255), nullable=False),
    sa.Column("wildcard", sa.Boolean(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index(None, "account_id", "type", "value"),
)

#: RFC 8555 §7.1.5. ``lease_until``: while ``processing``, the instance validating it; an
#: expired lease lets any instance pick the validation up again.
acme_challenges = sa.Table(
    "acme_challenges",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("authz_id", sa.String(36), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("token", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("validated_at", UTCDateTime(), nullable=True),
    sa.Column("error", JSONType, nullable=True),
    sa.Column("lease_until", UTCDateTime(), nullable=True),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Index(None, "authz_id"),
    sa.Index(None, "status", "lease_until"),
)

#: Fixed-window counters shared by every instance (RFC 8555 §6.6 rateLimited): one row per
#: limited key (``new-order:<account>``, ``new-account:<client ip>``); ``slot`` is the window
#: number (Unix time // window), and a row from an older window restarts at 1.
acme_rate_counters = sa.Table(
    "acme_rate_counters",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("slot", sa.BigInteger(), nullable=False),
    sa.Column("count", sa.Integer(), nullable=False),
)
