"""Renewal windows: which inventory certificates are due (``certgate certs due``, ACME ARI)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.model import CertificateRecord, CertificateStatus
from gateway.policy import renewal_window
from gateway.service.core import ServiceCore


@dataclass(frozen=True)
class DueCertificate:
    """A certificate whose renewal window is open (``certgate certs due``, ACME ARI)."""

    record: CertificateRecord
    window_start: datetime
    window_end: datetime
    reason: str


class Renewal:
    def __init__(self, core: ServiceCore) -> None:
        self._core = core

    def renewal_of(self, record: CertificateRecord, now: datetime | None = None) -> DueCertificate:
        """The AD CS autoenrollment renewal window of an inventory certificate: it opens at
        :func:`renewal_window`, or at once (``now``) when the template was superseded or its
        major version bumped since issuance."""
        policy = self._core.policy
        template = policy.templates.get(record.template)
        if template is None:
            return DueCertificate(record, record.not_before, record.not_after, "template removed")
        start, end = renewal_window(record.not_before, record.not_after, template)
        now = now or self._core.clock.now()
        if policy.superseded_by(record.template) is not None:
            return DueCertificate(record, min(start, now), end, "template superseded")
        if record.template_major < template.major_version:
            return DueCertificate(record, min(start, now), end, "template major version bumped")
        return DueCertificate(record, start, end, "renewal window")

    async def due_certificates(self) -> list[DueCertificate]:
        """Valid, unexpired, not yet superseded certificates whose renewal window is open."""
        now = self._core.clock.now()
        due: list[DueCertificate] = []
        valid = await self._core.store.list_certificates(CertificateStatus.VALID, limit=100_000)
        for record in valid:
            if record.superseded_by or record.not_after <= now:
                continue
            if record.template not in self._core.policy.templates:
                continue
            window = self.renewal_of(record, now)
            if window.window_start <= now:
                due.append(window)
        return due
