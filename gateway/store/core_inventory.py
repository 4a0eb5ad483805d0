"""Certificate inventory, revocations and the local CA's issuance journal in SQLAlchemy Core.

Part of :class:`gateway.store.repository.CoreQueries`. Hot statements are built once at import
(SQLAlchemy caches their compiled form); bodies never read the clock (``now`` comes from the
caller, so a retried body writes the same facts).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.errors import Conflict, NotFound
from gateway.model import CertificateRecord, CertificateStatus, RevocationReason
from gateway.store.core_audit import SYSTEM_ACTOR, AuditQueries
from gateway.store.rows import certificate_from_row
from gateway.store.tables import ca_journal, certificates

_CERT = certificates.c
_SELECT_CERT = sa.select(certificates)
_SELECT_CERT_BY_SERIAL = _SELECT_CERT.where(_CERT.serial == sa.bindparam("s"))
_REVOKE = (
    sa.update(certificates)
    .where(_CERT.serial == sa.bindparam("s"), _CERT.status == CertificateStatus.VALID.value)
    .returning(*certificates.c)
)
# A plain INSERT: a second put for one request id raises IntegrityError (see SQLJournal.put).
_SELECT_JOURNAL = sa.select(ca_journal.c.certificate_der).where(
    ca_journal.c.request_id == sa.bindparam("rid")
)


class InventoryQueries(AuditQueries):
    """Certificate, revocation and journal bodies."""

    def get_certificate(self, conn: Connection, serial: str) -> CertificateRecord | None:
        row = conn.execute(_SELECT_CERT_BY_SERIAL, {"s": serial}).first()
        return None if row is None else certificate_from_row(row)

    def list_certificates(
        self, conn: Connection, status: CertificateStatus | None, limit: int
    ) -> list[CertificateRecord]:
        """Most recently issued (``not_before``) first."""
        stmt = _SELECT_CERT.order_by(_CERT.not_before.desc(), _CERT.serial).limit(limit)
        if status is not None:
            stmt = stmt.where(_CERT.status == status.value)
        return [certificate_from_row(row) for row in conn.execute(stmt)]

    def revoke_certificate(
        self,
        conn: Connection,
        serial: str,
        reason: RevocationReason,
        when: datetime,
        now: datetime,
    ) -> CertificateRecord:
        """valid -> revoked and its audit event; ``NotFound`` for an unknown serial,
        ``Conflict`` when it is already revoked."""
        params = {
            "s": serial,
            "status": CertificateStatus.REVOKED.value,
            "revoked_at": when,
            "revocation_reason": int(reason),
        }
        row = conn.execute(_REVOKE, params).first()
        if row is None:
            if conn.execute(_SELECT_CERT_BY_SERIAL, {"s": serial}).first() is None:
                raise NotFound(f"no certificate with serial {serial}")
            raise Conflict(f"certificate {serial} is already revoked")
        detail = {"reason": reason.name.lower(), "reason_code": int(reason), "at": when.isoformat()}
        self.append_audit(
            conn,
            now,
            "certificate.revoked",
            SYSTEM_ACTOR,
            request_id=row.request_id,
            serial=serial,
            detail=detail,
        )
        return certificate_from_row(row)

    def revoked_certificates(self, conn: Connection) -> list[CertificateRecord]:
        """Oldest revocation first (CRL order)."""
        stmt = _SELECT_CERT.where(_CERT.status == CertificateStatus.REVOKED.value).order_by(
            _CERT.revoked_at, _CERT.serial
        )
        return [certificate_from_row(row) for row in conn.execute(stmt)]

    # -- issuance journal ------------------------------------------------------------------

    def journal_get(self, conn: Connection, request_id: str) -> bytes | None:
        der = conn.execute(_SELECT_JOURNAL, {"rid": request_id}).scalar_one_or_none()
        return None if der is None else bytes(der)

    def journal_put(self, conn: Connection, request_id: str, der: bytes, now: datetime) -> bytes:
        """Insert; a second put for the same id raises ``IntegrityError`` (the caller then
        reads the certificate that was recorded first)."""
        values = {"request_id": request_id, "certificate_der": der, "created_at": now}
        self.insert_row(conn, ca_journal, values)
        return der
