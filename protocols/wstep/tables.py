"""The CES front-end's own table: username/password accounts (WS-Security UsernameToken).

Created by migration ``wstep_0001_users`` (branch ``wstep``). Passwords are stored only as
scrypt hashes (:mod:`protocols.wstep.users`).
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.store.tables import JSONType, UTCDateTime, metadata

wstep_users = sa.Table(
    "wstep_users",
    metadata,
    sa.Column("username", sa.String(255), primary_key=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("principal", sa.String(1024), nullable=False),
    sa.Column("groups", JSONType, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)
