"""The EST gateway of the curl + openssl interop tests (test_est_curl*.py): the module-scoped
``gw`` fixture (a real ``certgate serve`` with the labels those tests use, an EST user
alice and a manufacturer CA for bootstrap), and enrollment over curl with Basic auth."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.est_helpers import (
    Gateway,
    curl,
    est_gateway,
    openssl_req,
    p7_to_pem,
)
from tests.helpers import certgate, require_tool
from tests.pki_helpers import make_ca

PKCS10 = ("-H", "Content-Type: application/pkcs10")


ALICE = ("--user", "alice:correct horse")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    require_tool("curl")
    require_tool("openssl")
    tmp = tmp_path_factory.mktemp("est")
    boot_path, boot_key, boot_cert = make_ca(tmp, "manufacturer-ca")
    with est_gateway(
        tmp,
        est=f"""
        retry_window = "3s"
        max_body_bytes = 4096
        [est.labels.approval]
        template = "approval-required"
        [est.labels.renew]
        template = "est-device"
        [est.labels.codes]
        template = "device"
        auth = ["basic"]
        [est.labels.bootstrap]
        template = "device"
        auth = ["tls-client-cert"]
        trust_anchors = ["{boot_path}"]
        [est.labels.pop]
        template = "device"
        require_pop_link = true
        [est.labels.noattrs]
        template = "device"
        csrattrs = false
        """,
        user="alice",
        password="correct horse",
    ) as gateway:
        gateway.boot = (boot_key, boot_cert)  # type: ignore[attr-defined]
        yield gateway


def _cli_json(gw: Gateway, *args: str) -> Any:
    return json.loads(certgate(*args, "-c", str(gw.cfg), "--json", check=True).stdout)


def _cert(pem: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(pem.read_bytes())[0]


def _enroll(
    gw: Gateway, name: str, *, label: str = "", san: str = "", key: Path | None = None
) -> tuple[Path, Path]:
    """Enroll CN=name with Basic auth; returns (certificate PEM, key)."""
    csr = openssl_req(gw.tmp, name, f"/CN={name}", san=san, key=key)
    r = curl(gw, f"{label}/simpleenroll", *ALICE, *PKCS10, data=csr)
    assert r.status == 200, r.body
    return p7_to_pem(gw.tmp, r.body, name), key or gw.tmp / f"{name}.key"
