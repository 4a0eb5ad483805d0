"""``certgate serve`` on a site from ``certgate init DIR`` (issue #15 items 1, 2): the banner's
client commands, run verbatim by a shell, enroll against it (curl+openssl EST, certbot ACME
over HTTPS, micromdm scepclient over the plain device listener); the plain listener serves
only device paths; ``--workers 2`` serves every listener in every worker. Real processes: this
is about what a serving process prints and what real clients make of it."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from gateway.cli import main
from tests.gateway_process import gateway_process
from tests.helpers import free_port, require_tool


@dataclass
class Site:
    dir: Path
    port: int
    plain: int
    est: int
    banner: str

    @property
    def root(self) -> Path:
        return self.dir / "data" / "root-ca.pem"

    def command(self, label: str) -> str:
        """The banner line's command, as an operator would copy it."""
        prefix = f"    {label}"
        (line,) = [ln for ln in self.banner.splitlines() if ln.startswith(prefix + " ")]
        return line[len(prefix) :].strip()


def make_site(tmp: Path) -> tuple[Path, list[str]]:
    site = tmp / "site"
    port, plain, est, http01 = free_port(), free_port(), free_port(), free_port()
    ports = ["--port", str(port), "--plain-port", str(plain), "--est-port", str(est)]
    assert main(["init", str(site), *ports]) == 0
    cfg = site / "certgate.toml"
    text = cfg.read_text()
    assert "http01_port = 5002" in text
    cfg.write_text(text.replace("http01_port = 5002", f"http01_port = {http01}"))
    return site, [str(port), str(plain), str(est)]


def _https_ok(url: str, root: Path) -> bool:
    ctx = ssl.create_default_context(cafile=str(root)) if root.exists() else None
    if ctx is None:
        return False
    try:
        with urllib.request.urlopen(url, timeout=1, context=ctx):
            return True
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


@contextmanager
def serving(site_dir: Path, ports: list[str], *args: str) -> Iterator[Site]:
    port, plain, est = (int(p) for p in ports)
    root = site_dir / "data" / "root-ca.pem"
    log = site_dir / "serve.log"
    with gateway_process(
        site_dir / "certgate.toml",
        *args,
        port=port,  # the site's own port, named again
        log=log,
        ready=lambda p: (
            _https_ok(f"https://localhost:{p}/healthz", root)
            and "data directory" in log.read_text()
        ),
    ) as gateway:
        yield Site(site_dir, port, plain, est, gateway.output())


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    site_dir, ports = make_site(tmp_path_factory.mktemp("site"))
    with serving(site_dir, ports) as s:
        yield s


def _shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # certbot is a Python package: the venv's bin directory is where it is installed
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )


def _leaf(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def test_banner_names_listeners_trust_anchors_and_fingerprints(site: Site) -> None:
    root = x509.load_pem_x509_certificate(site.root.read_bytes())
    shown = root.fingerprint(hashes.SHA256()).hex(":").upper()
    text = site.banner
    assert f"certgate listening on https://127.0.0.1:{site.port}" in text
    assert f"plain HTTP      http://127.0.0.1:{site.plain}" in text
    assert f"est             https://127.0.0.1:{site.est}" in text
    assert f"root CA file    {site.root}" in text
    assert f"root CA SHA-256 {shown}" in text
    ra = x509.load_pem_x509_certificate((site.dir / "data" / "scep" / "ra.crt").read_bytes())
    assert f"SCEP RA SHA-256 {ra.fingerprint(hashes.SHA256()).hex(':').upper()} (ra)" in text
    for url in (
        f"ACME            https://localhost:{site.port}/acme/directory",
        f"EST             https://localhost:{site.est}/.well-known/est/",
        f"SCEP            http://localhost:{site.plain}/scep/devices\n",
        f"SCEP            http://localhost:{site.plain}/scep/legacy (single DES",
        f"CEP             https://localhost:{site.port}/wstep/CEP",
        f"admin API       https://localhost:{site.port}/api/v1/ (certgate admin token create)",
        f"console         https://localhost:{site.port}/console/",
        f"OCSP            http://localhost:{site.plain}/ocsp",
    ):
        assert url in text, url
    secrets = [p.read_text().strip() for p in (site.dir / "secrets").iterdir()]
    assert not any(s in text for s in secrets)  # files are named, never their content


@pytest.mark.interop
def test_banner_est_command_enrolls_verbatim(site: Site, tmp_path: Path) -> None:
    require_tool("curl")
    require_tool("openssl")
    proc = _shell(site.command("curl+openssl"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    cert = _leaf(tmp_path / "device.pem")
    assert cert.subject.rfc4514_string() == "CN=est-device"
    assert cert.issuer.rfc4514_string() == "CN=certgate Issuing CA"


@pytest.mark.interop
def test_banner_certbot_command_gets_a_certificate_over_https(site: Site, tmp_path: Path) -> None:
    command = site.command("certbot")
    assert command.startswith(f"REQUESTS_CA_BUNDLE={site.root} certbot ")
    assert f"--server https://localhost:{site.port}/acme/directory" in command
    proc = _shell(command, tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (cert_path,) = (tmp_path / "certbot" / "live").glob("*/cert.pem")
    sans = _leaf(cert_path).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert [str(ip) for ip in sans.value.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


@pytest.mark.interop
def test_banner_scepclient_command_enrolls_over_the_plain_listener(
    site: Site, tmp_path: Path
) -> None:
    require_tool("scepclient")
    command = site.command("scepclient")
    # scepclient 2.1 speaks single DES and SHA-1: the command uses the legacy endpoint
    assert f"-server-url http://localhost:{site.plain}/scep/legacy" in command
    assert "secrets/scep-legacy-challenge" in command
    proc = _shell(command, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _leaf(tmp_path / "scep-device.pem").subject.rfc4514_string().startswith("CN=scep-device")


def _plain_get(site: Site, path: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{site.plain}{path}", timeout=5) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def test_plain_listener_serves_device_paths_only(site: Site) -> None:
    status, _, body = _plain_get(site, "/ca/crl")
    assert status == 200
    x509.load_der_x509_crl(body)
    status, _, body = _plain_get(site, "/scep/devices?operation=GetCACaps")
    assert status == 200 and b"SHA-256" in body
    assert _plain_get(site, "/healthz")[0] == 200
    for path in ("/acme/directory", "/wstep/CEP", "/.well-known/est/cacerts", "/metrics"):
        status, kind, body = _plain_get(site, path)
        assert status == 404 and kind.startswith("text/plain"), path
        assert f"use https://localhost:{site.port}{path}" in body.decode(), body


def test_issued_certificates_point_aia_and_crl_at_the_plain_listener(site: Site) -> None:
    cert = _leaf(site.dir / "data" / "tls" / "server.pem")
    cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    urls = [n.value for dp in cdp for n in dp.full_name or []]
    assert urls == [f"http://localhost:{site.plain}/ca/crl"]


def test_workers_serve_every_listener(tmp_path: Path) -> None:
    site_dir, ports = make_site(tmp_path)
    with serving(site_dir, ports, "--workers", "2") as s:
        assert "(2 workers)" in s.banner and "curl+openssl" in s.banner
        ctx = ssl.create_default_context(cafile=str(s.root))
        for _ in range(10):
            with urllib.request.urlopen(
                f"https://localhost:{s.port}/acme/directory", timeout=5, context=ctx
            ) as r:
                assert r.status == 200
            assert _plain_get(s, "/ca/crl")[0] == 200


def test_ces_enrolls_over_https_with_the_bootstrap_account(site: Site) -> None:
    from gateway.codecs.ms.wstrust import TokenResponse, parse_reply
    from tests.helpers import csr_pem, make_csr
    from tests.wstep_helpers import get_policies, post, rst

    password = (site.dir / "secrets" / "ces-bootstrap.password").read_text().strip()
    base = f"https://localhost:{site.port}/wstep"
    status, body = post(f"{base}/CEP", get_policies("ces-bootstrap", password), cafile=site.root)
    assert status == 200 and f"{base}/CES".encode() in body
    csr = make_csr(cn="ces.example.test", dns=("ces.example.test",))
    der = x509.load_pem_x509_csr(csr_pem(csr)).public_bytes(serialization.Encoding.DER)
    status, body = post(
        f"{base}/CES", rst(der, username="ces-bootstrap", password=password), cafile=site.root
    )
    reply = parse_reply(body)
    assert status == 200 and isinstance(reply, TokenResponse) and reply.issued, body[:500]
    assert reply.certificate is not None
    cert = x509.load_der_x509_certificate(reply.certificate)
    assert cert.subject.rfc4514_string() == "CN=ces.example.test"
