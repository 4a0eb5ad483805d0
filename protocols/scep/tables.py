"""SCEP protocol state on the shared database: one-time challenge passwords (NDES-style).

Only a SHA-256 of each password is stored (RFC 8894 §7.3: store it hashed); a password is
consumed by the first PKCSReq that presents it, and ``used_by`` remembers that transaction so a
client retrying the same transaction is not refused (RFC 8894 §3.2.1.1).
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.store import UTCDateTime, metadata

scep_otps = sa.Table(
    "scep_otps",
    metadata,
    sa.Column("password_sha256", sa.String(64), primary_key=True),
    sa.Column("endpoint", sa.String(64), nullable=False),
    sa.Column("identity", sa.String(1024), nullable=True),
    sa.Column("created_by", sa.String(1024), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Column("used_at", UTCDateTime(), nullable=True),
    sa.Column("used_by", sa.String(255), nullable=True),
)
