"""Revocation goes to the CA connector that issued the certificate (issue #12 item 19), even
after its template was removed from the configuration."""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from cryptography import x509

from gateway.config import load_config
from gateway.errors import ConfigError
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
        service = EnrollmentService(
            later.store,
            later.policy,
            {"local": first, "second": second},
            default_connector="local",
        )
        serial = outcome.certificate.serial_number
        await service.revoke(format(serial, "x"), RevocationReason.KEY_COMPROMISE, "cli:test")
        assert second.revoked == [serial] and first.revoked == []
    finally:
        await later.close()


async def test_revocation_goes_to_the_connector_the_request_recorded_not_the_default(
    tmp_path: Path,
) -> None:
    """The issuing connector is read from the request, even while its template still routes
    there and although another connector is the default."""
    components = await build(load_config(_config(tmp_path, _templates(tmp_path, with_legacy=True))))
    try:
        first, second = (
            RecordingCA(components.connectors["local"]),
            RecordingCA(components.connectors["second"]),
        )
        service = EnrollmentService(
            components.store,
            components.policy,
            {"local": first, "second": second},
            default_connector="local",
        )
        outcome = await service.enroll(
            EnrollmentRequest(
                csr=make_csr(dns=("routed.example.test",)),
                template="legacy",
                requester=local_requester("alice"),
                transaction_id="routed-1",
            )
        )
        assert isinstance(outcome, Issued)
        stored = await components.store.find_request("cli", "routed-1")
        assert stored is not None and stored.connector == "second"
        serial = outcome.certificate.serial_number
        await service.revoke(format(serial, "x"), RevocationReason.SUPERSEDED, "cli:test")
        assert second.revoked == [serial] and first.revoked == []
    finally:
        await components.close()


async def test_several_connectors_need_a_named_default(tmp_path: Path) -> None:
    """No "first one wins": with several connectors the default is named, in one line."""
    components = await build(load_config(_config(tmp_path, _templates(tmp_path, with_legacy=True))))
    try:
        connectors = dict(components.connectors)
        with pytest.raises(ConfigError) as refused:
            EnrollmentService(components.store, components.policy, connectors)
        assert "2 connectors (local, second) and none named the default" in str(refused.value)
        assert "\n" not in str(refused.value)
        with pytest.raises(ConfigError, match="no connector 'third'"):
            EnrollmentService(
                components.store, components.policy, connectors, default_connector="third"
            )
        # The composition root names the default template's connector.
        assert components.service.default_connector == "local"
        only = EnrollmentService(
            components.store, components.policy, {"second": connectors["second"]}
        )
        assert only.default_connector == "second"
        second_chain = await connectors["second"].ca_chain()
        assert await only.ca_chain() == second_chain
    finally:
        await components.close()
