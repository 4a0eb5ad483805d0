"""The OCSP tests' site: a gateway from the real app factory under aiohttp's test server (a
real loopback port), its CA files for ``openssl ocsp``, and openssl run without blocking the
event loop (tests/integration/test_ocsp.py, test_ocsp_edges.py)."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.config import load_config
from gateway.model import EnrollmentRequest, Issued
from gateway.server.app import components_of, create_app
from gateway.service import local_requester
from tests.helpers import TEMPLATES, make_csr

Client = Callable[..., Awaitable[Any]]
SITE = "http://pki.example.test"


def ocsp_config(tmp: Path, extra: str = "", *, store: str = "") -> Path:
    cfg = tmp / "certgate.toml"
    cfg.write_text(
        textwrap.dedent(
            f"""
            [server]
            external_url = "{SITE}"
            access_log = false
            [data]
            dir = "{tmp / "data"}"
            [policy]
            templates_dir = "{TEMPLATES}"
            [poller]
            enabled = false
            [connectors.local]
            type = "local"
            """
        )
        + textwrap.dedent(store)
        + textwrap.dedent(extra)
    )
    return cfg


@dataclass
class Site:
    cfg: Path
    tmp: Path
    app: Any
    client: Any

    @property
    def url(self) -> str:
        return str(self.client.make_url("/ocsp"))

    def path(self, name: str) -> Path:
        return self.tmp / name

    async def issue(self, name: str) -> x509.Certificate:
        outcome = await components_of(self.app).service.enroll(
            EnrollmentRequest(
                csr=make_csr(cn=name, dns=(name,)),
                template="tls-server",
                requester=local_requester("alice"),
                transaction_id=f"ocsp-{name}",
            )
        )
        assert isinstance(outcome, Issued), outcome
        (self.tmp / f"{name}.pem").write_bytes(outcome.certificate.public_bytes(Encoding.PEM))
        return outcome.certificate

    async def write_chain(self) -> None:
        chain = await components_of(self.app).service.ca_chain()
        self.path("issuing.pem").write_bytes(chain[0].public_bytes(Encoding.PEM))
        self.path("root.pem").write_bytes(chain[-1].public_bytes(Encoding.PEM))


async def start_site(tmp: Path, aiohttp_client: Client, extra: str = "") -> Site:
    cfg = ocsp_config(tmp, extra)
    app = await create_app(load_config(cfg))
    client = await aiohttp_client(app)
    site = Site(cfg, tmp, app, client)
    await site.write_chain()
    return site


async def openssl(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "openssl", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    return out.decode("utf-8", "replace")
