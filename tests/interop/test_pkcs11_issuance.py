"""A local CA whose keys are in a SoftHSM2 token issues over EST (curl + openssl) and ACME
(lego), from one real ``certgate serve`` (issue #17 item 2): the certificates and the CRL
verify with openssl against the CA chain, and the data directory holds no CA private key."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.acme_helpers import ChallTestSrv, acme_config, challtestsrv
from tests.est_helpers import Gateway, curl, openssl_req, p7_to_pem
from tests.gateway_process import gateway_process, healthy
from tests.helpers import certgate, free_port, http_ok, init_gateway, openssl, require_tool
from tests.softhsm_helpers import SoftToken, soft_token

pytestmark = pytest.mark.interop

PKCS10 = ("-H", "Content-Type: application/pkcs10")
ALICE = ("--user", "alice:correct horse")


@dataclass
class Site:
    tmp: Path
    token: SoftToken
    est: Gateway
    port: int
    http01: int
    dns: ChallTestSrv

    @property
    def ca_dir(self) -> Path:
        return self.tmp / "data" / "ca"

    def lego(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [
            require_tool("lego"),
            "--server", f"http://127.0.0.1:{self.port}/acme/directory",
            "--accept-tos", "-m", "ops@example.com", "--path", str(self.tmp / "lego"),
            "--http", "--http.port", f"127.0.0.1:{self.http01}",
            *args,
        ]  # fmt: skip
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    for tool in ("curl", "openssl", "lego"):
        require_tool(tool)
    tmp = tmp_path_factory.mktemp("pkcs11")
    token = soft_token(tmp)
    port, est_port, http01 = free_port(), free_port(), free_port()
    with challtestsrv() as dns:
        cfg = acme_config(
            tmp,
            f'dns_resolver = "127.0.0.1:{dns.dns_port}"\nhttp01_port = {http01}\n'
            '[est]\nenabled = true\nhost = "127.0.0.1"\n'
            f'port = {est_port}\ndefault_template = "device"\n'
            'server_names = ["localhost", "127.0.0.1"]\n',
            port=port,
            external_url=f"http://127.0.0.1:{port}",
        )
        text = cfg.read_text().replace(
            'type = "local"\n', 'type = "local"\n' + token.connector_keys(), 1
        )
        cfg.write_text(text)
        env = {**token.env, "CERTGATE_TESTING": "1"}
        init_gateway(cfg, env=env)
        certgate(
            "est", "user", "add", "alice", "--password-env", "PW", "-c", str(cfg),
            env={**env, "PW": "correct horse"}, check=True,
        )  # fmt: skip
        with gateway_process(
            cfg,
            port=port,
            env=env,
            ready=lambda p: healthy(p) and http_ok(f"http://127.0.0.1:{p}/acme/directory"),
        ):
            yield Site(tmp, token, Gateway(cfg, port, est_port, tmp), port, http01, dns)


def _verify_leaf(site: Site, pem: Path) -> None:
    done = openssl(
        "verify", "-CAfile", str(site.ca_dir / "root.pem"),
        "-untrusted", str(site.ca_dir / "issuing.pem"), str(pem),
    )  # fmt: skip
    assert done.returncode == 0 and b": OK" in done.stdout, done.stdout + done.stderr


def test_est_enrollment_is_signed_by_the_token_key(site: Site) -> None:
    csr = openssl_req(site.tmp, "est-device", "/CN=est-device")
    reply = curl(site.est, "/simpleenroll", *ALICE, *PKCS10, data=csr)
    assert reply.status == 200, reply.body
    _verify_leaf(site, p7_to_pem(site.tmp, reply.body, "est-device"))


def test_acme_lego_certificate_verifies_and_its_revocation_is_in_the_signed_crl(
    site: Site,
) -> None:
    done = site.lego("-d", "web.example.test", "run")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    pem = site.tmp / "lego/certificates/web.example.test.crt"
    leaf = x509.load_pem_x509_certificates(pem.read_bytes())[0]
    leaf_file = site.tmp / "lego-leaf.pem"
    leaf_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    _verify_leaf(site, leaf_file)
    revoked = site.lego("-d", "web.example.test", "revoke")
    assert revoked.returncode == 0, revoked.stderr[-4000:]
    crl_file = site.tmp / "ca.crl"
    done = subprocess.run(
        [require_tool("curl"), "-sSf", "-o", str(crl_file), f"http://127.0.0.1:{site.port}/ca/crl"],
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    checked = openssl(
        "crl", "-inform", "DER", "-in", str(crl_file),
        "-CAfile", str(site.ca_dir / "issuing.pem"), "-noout",
    )  # fmt: skip
    assert checked.returncode == 0 and b"verify OK" in checked.stderr + checked.stdout, checked
    crl = x509.load_der_x509_crl(crl_file.read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None


def test_no_file_in_the_data_directory_holds_the_ca_key(site: Site) -> None:
    # The certificates, and the OCSP responder's certificate (its key is in the token too).
    names = sorted(p.name for p in site.ca_dir.iterdir())
    assert names == [".ocsp.pem.lock", "chain.pem", "issuing.pem", "ocsp.pem", "root.pem"]
    assert b"PRIVATE KEY" not in (site.ca_dir / "ocsp.pem").read_bytes()
    ca_keys = {
        cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        for cert in x509.load_pem_x509_certificates((site.ca_dir / "chain.pem").read_bytes())
    }
    for path in (site.tmp / "data").rglob("*"):
        if not path.is_file() or b"PRIVATE KEY" not in path.read_bytes():
            continue
        # Other keys live there (the EST listener's TLS key): none of them is a CA's.
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), None)
        except TypeError:
            continue  # encrypted: a key the gateway made itself (the SCEP RA key)
        spki = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert spki not in ca_keys, path
