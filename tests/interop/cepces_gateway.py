"""The gateway the cepces interop tests run against (test_wstep_cepces*.py): local CA, the wstep
front-end on HTTP and on a TLS listener, a password account and a client certificate the
gateway issued (the module-scoped ``gateway`` fixture), and checks of what it issued."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from tests.helpers import certgate, free_port, make_csr
from tests.interop.cepces_harness import (
    Auth,
    Cepces,
    locate_cepces,
    pem_certificates,
    write_conf,
)
from tests.pki_helpers import write_key
from tests.wstep_helpers import PASSWORD, add_user, gateway_b_config, serving

USER = "linux-host"


@dataclass
class Gateway:
    cfg: Path
    port: int
    tls_port: int
    work: Path
    tls_cert: Path
    client_cert: Path
    client_key: Path
    cepces: Cepces

    @property
    def cep_url(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}/wstep/CEP"

    @property
    def ces_url(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}/wstep/CES"

    def auth(self, kind: str, password: str = PASSWORD) -> Auth:
        if kind == "Certificate":
            return Auth(kind, certfile=self.client_cert, keyfile=self.client_key)
        return Auth(kind, username=USER, password=password)

    def client(self, name: str, kind: str, **conf: object) -> Path:
        """A working directory with a cepces.conf for ``kind`` authentication."""
        workdir = self.work / "clients" / name
        options = {"endpoint": self.cep_url, "cas": self.tls_cert, **conf}
        auth = options.pop("auth", None) or self.auth(kind)
        write_conf(workdir, auth=auth, **options)  # type: ignore[arg-type]
        return workdir

    def cli(self, *args: str) -> str:
        proc = certgate(*args, "-c", str(self.cfg), check=True)
        return proc.stdout

    def chain(self) -> list[x509.Certificate]:
        """The gateway's CA chain (issuing CA first), as ``certgate ca export`` writes it."""
        out = self.work / "ca-chain.pem"
        self.cli("ca", "export", "--out", str(out))
        return pem_certificates(out.read_text())


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    cepces = locate_cepces()
    tmp = tmp_path_factory.mktemp("cepces")
    port, tls_port = free_port(), free_port()
    cfg = gateway_b_config(tmp, port=port, tls_port=tls_port)
    add_user(cfg, USER, principal=USER)
    # The Certificate endpoint's client: a device certificate this gateway issued.
    key = ec.generate_private_key(ec.SECP256R1())
    csr = tmp / "client.csr"
    csr.write_bytes(make_csr(key, cn="cepces-client").public_bytes(Encoding.PEM))
    client_cert = tmp / "client-chain.pem"
    certgate(
        "enroll", "-c", str(cfg), "--template", "device", "--csr", str(csr),
        "--principal", "cepces-client", "--out", str(client_cert), check=True,
    )  # fmt: skip
    client_key = write_key(tmp / "client.key", key)
    with serving(cfg, port):
        yield Gateway(
            cfg, port, tls_port, tmp, tmp / "tls" / "tls.crt", client_cert, client_key, cepces
        )


def _issued_by_gateway(gateway: Gateway, pem: str, csr_pem: str) -> x509.Certificate:
    """The one certificate in ``pem``: for the CSR's key, signed by the gateway's issuing CA."""
    certs = pem_certificates(pem)
    assert len(certs) == 1, pem
    cert = certs[0]
    issuing = gateway.chain()[0]
    cert.verify_directly_issued_by(issuing)
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    assert cert.public_key() == csr.public_key()
    return cert


def _pending(gateway: Gateway) -> list[dict[str, object]]:
    listed: list[dict[str, object]] = json.loads(
        gateway.cli("requests", "list", "--state", "pending", "--json")
    )
    return listed
