"""A site written by ``certgate init DIR`` and real clients against it, for the tests that run
certgate the way an operator installs it (a fresh wheel, the container image).

The secrets are read from the files ``init`` generated (``DIR/secrets/``), the trust from
what the gateway publishes, the ports from the site's own certgate.toml: nothing here knows
more about the site than an operator reading it would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from tests.est_helpers import Gateway, curl, openssl_req, p7_to_pem
from tests.helpers import free_port


def free_port_options() -> list[str]:
    """``certgate init`` options giving every listener a free port (tests run side by side)."""
    return [
        "--port", str(free_port()),
        "--plain-port", str(free_port()),
        "--est-port", str(free_port()),
    ]  # fmt: skip


@dataclass(frozen=True)
class Site:
    """A site directory as ``certgate init DIR`` wrote it."""

    dir: Path

    @property
    def config(self) -> Path:
        return self.dir / "certgate.toml"

    def toml(self) -> dict:
        with self.config.open("rb") as fh:
            return tomllib.load(fh)

    @property
    def port(self) -> int:
        return int(self.toml()["server"]["port"])

    @property
    def plain_port(self) -> int:
        return int(self.toml()["server"]["plain"]["port"])

    @property
    def est_port(self) -> int:
        return int(self.toml()["est"]["port"])

    @property
    def data(self) -> Path:
        return self.dir / str(self.toml()["data"]["dir"])

    def secret(self, name: str) -> str:
        return (self.dir / "secrets" / name).read_text().strip()


def sudo_tools(*packages: str) -> None:
    """Install Debian packages when a program is missing and we are root (as ./dev test
    installs its peers); otherwise leave it to require_tool to skip or fail."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-qq", *packages]
    if subprocess.run(cmd, capture_output=True, env=env, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env, timeout=600)
        subprocess.run(cmd, capture_output=True, env=env, timeout=600)


def est_enroll(site: Site, work: Path, name: str, *, host: str = "127.0.0.1") -> x509.Certificate:
    """``/simpleenroll`` with curl + openssl as the EST bootstrap user ``init`` created; the
    trust is the CA chain the plain listener publishes. Returns the issued certificate."""
    work.mkdir(parents=True, exist_ok=True)
    gw = Gateway(site.config, site.plain_port, site.est_port, work)
    csr = openssl_req(work, name, f"/CN={name}")
    password = site.secret("est-bootstrap.password")
    reply = curl(
        gw,
        "/simpleenroll",
        "--user", f"est-bootstrap:{password}",
        "-H", "Content-Type: application/pkcs10",
        data=csr,
    )  # fmt: skip
    assert reply.status == 200, (reply.status, reply.body[:400])
    pem = p7_to_pem(work, reply.body, name)
    cert = x509.load_pem_x509_certificates(pem.read_bytes())[0]
    assert cert.subject.rfc4514_string() == f"CN={name}"
    return cert


def chains_to_site_root(cert: x509.Certificate, site: Site, work: Path) -> bool:
    """The certificate was signed by the issuing CA the gateway publishes, which was signed by
    the root CA in the site's data directory (signatures checked)."""
    root = x509.load_pem_x509_certificate((site.data / "root-ca.pem").read_bytes())
    published = x509.load_pem_x509_certificates((work / "ca-chain.pem").read_bytes())
    issuing = next(c for c in published if c.subject == cert.issuer)
    try:
        cert.verify_directly_issued_by(issuing)
        issuing.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def banner_command(banner: str, label: str) -> str:
    """The client command the ``certgate serve`` banner prints under ``label`` (``certbot``,
    ``curl+openssl``, ``scepclient``...), as an operator would copy it."""
    prefix = f"    {label} "
    lines = [ln for ln in banner.splitlines() if ln.startswith(prefix)]
    assert len(lines) == 1, f"banner has {len(lines)} '{label}' lines:\n{banner}"
    return lines[0][len(prefix) :].strip()
