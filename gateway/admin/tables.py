"""The admin API's tables in the gateway database (migration ``admin_0001_tokens``).

``admin_tokens``: API tokens (``Authorization: Bearer cg_...``). Only a SHA-256 of the token is
kept: a token is 256 random bits, so an unsalted digest is as strong as the token and lets the
gateway find the row by it (:mod:`gateway.admin.tokens`).
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.store import UTCDateTime, metadata

admin_tokens = sa.Table(
    "admin_tokens",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("token_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(1024), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=True),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    sa.Column("last_used_at", UTCDateTime(), nullable=True),
    sa.UniqueConstraint("token_sha256"),
)
