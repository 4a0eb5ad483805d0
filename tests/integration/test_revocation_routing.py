"""Revocation goes to the CA connector that issued the certificate (issue #12 item 19), even
after its template was removed from the configuration."""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path

from cryptography import x509

from gateway.config import load_config
from gateway.model import (
    ConnectorOutcome,
    EnrollmentRequest,
    IssuancePlan,
    Issued,
    RevocationReason,
)
from gateway.ports import CAConnector
from gateway.server.wiring import build
from gateway.service import EnrollmentService, local_requester
from tests.helpers import TEMPLATES, make_csr, write_config


class RecordingCA:
    """The real local CA, noting which serials it was asked to revoke."""

    def __init__(self, inner: CAConnector) -> None:
        self.inner = inner
        self.name = inner.name
        self.revoked: list[int] = []

    async def start(self) -> None: ...
    async def close(self) -> None: ...

    async def submit(self, plan: IssuancePlan) -> ConnectorOutcome:
        return await self.inner.submit(plan)

    async def poll(self, ca_request_id: str) -> ConnectorOutcome:
        return await self.inner.poll(ca_request_id)

    async def revoke(self, serial: int, reason: RevocationReason, when: datetime) -> None:
        self.revoked.append(serial)
        await self.inner.revoke(serial, reason, when)

    async def ca_chain(self) -> tuple[x509.Certificate, ...]:
        return await self.inner.ca_chain()

    async def check(self) -> None:
        await self.inner.check()


def _templates(tmp: Path, *, with_legacy: bool) -> Path:
    """The shipped templates, plus ``legacy`` (routed to connector ``second``) if asked."""
    out = tmp / ("templates-with-legacy" if with_legacy else "templates")
    shutil.copytree(TEMPLATES, out)
    if with_legacy:
        text = (TEMPLATES / "tls-server.toml").read_text()
        text = text.replace('name = "tls-server"', 'name = "legacy"')
        text = re.sub(r'^oid = ".*"$', 'oid = "2.25.1234567890"', text, flags=re.M)
        text = text.replace('connector = "local"', 'connector = "second"')
        (out / "legacy.toml").write_text(text)
    return out


def _config(tmp: Path, templates: Path) -> Path:
    cfg = write_config(tmp, '[connectors.second]\ntype = "local"\n')
    cfg.write_text(cfg.read_text().replace(str(TEMPLATES), str(templates)))
    return cfg


async def test_revocation_after_template_removal_goes_to_the_issuing_connector(
    tmp_path: Path,
) -> None:
    issuing = await build(load_config(_config(tmp_path, _templates(tmp_path, with_legacy=True))))
    try:
        outcome = await issuing.service.enroll(
            EnrollmentRequest(
                csr=make_csr(dns=("old.example.test",)),
                template="legacy",
                requester=local_requester("alice"),
                transaction_id="legacy-1",
            )
        )
        assert isinstance(outcome, Issued)
        second_root = (await issuing.connectors["second"].ca_chain())[0]
        assert outcome.certificate.issuer == second_root.subject
    finally:
        await issuing.close()

    # The operator removes the template; the certificate stays in the inventory.
    later = await build(load_config(_config(tmp_path, _templates(tmp_path, with_legacy=False))))
    try:
        assert "legacy" not in later.policy.templates
        first, second = (
            RecordingCA(later.connectors["local"]),
            RecordingCA(later.connectors["second"]),
        )
        service = EnrollmentService(later.store, later.policy, {"local": first, "second": second})
        serial = outcome.certificate.serial_number
        await service.revoke(format(serial, "x"), RevocationReason.KEY_COMPROMISE, "cli:test")
        assert second.revoked == [serial] and first.revoked == []
    finally:
        await later.close()
