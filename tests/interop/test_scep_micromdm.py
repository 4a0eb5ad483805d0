"""The Debian ``scep`` package's micromdm ``scepclient`` (2.1) against ``certgate serve``, and
the same client against micromdm's own ``scepserver`` (in a private network namespace).

scepclient 2.1 encrypts with single DES and signs with SHA-1, so it uses endpoints with the
legacy switch; it encrypts to every certificate GetCACert returns unless ``-ca-fingerprint``
selects one (it would panic on the EC CA certificate), so it is given the RA certificate's
SHA-256 fingerprint, as its README says to do for NDES.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.helpers import certgate, require_tool
from tests.scep_helpers import STATIC_PASSWORD, scep_config, serving

pytestmark = pytest.mark.interop

ENDPOINTS = """
[scep.endpoints.legacy]
template = "scep-device"
challenge = "static"
challenge_password = "file:static.txt"
legacy_des = true

[scep.endpoints.otp]
template = "scep-device"
challenge = "otp"
legacy_des = true

[scep.endpoints.modern]
template = "scep-device"
challenge = "static"
challenge_password = "file:static.txt"
"""


def _ra_fingerprint(data_dir: Path) -> str:
    cert = x509.load_pem_x509_certificate((data_dir / "scep" / "ra.crt").read_bytes())
    from cryptography.hazmat.primitives import hashes

    return cert.fingerprint(hashes.SHA256()).hex()


class Gateway:
    def __init__(self, cfg: Path, port: int, work: Path) -> None:
        self.cfg, self.port, self.work = cfg, port, work
        self.fingerprint = _ra_fingerprint(cfg.parent / "data")

    def client(
        self, name: str, endpoint: str, *, challenge: str | None = None, cn: str | None = None
    ) -> tuple[subprocess.CompletedProcess[str], Path]:
        """Run scepclient with key and certificate under ``work/name``."""
        exe = require_tool("scepclient")
        home = self.work / name
        home.mkdir(exist_ok=True)
        args = [
            exe,
            "-server-url",
            f"http://127.0.0.1:{self.port}/scep/{endpoint}",
            "-private-key",
            str(home / "key.pem"),
            "-certificate",
            str(home / "cert.pem"),
            "-cn",
            cn or name,
            "-ca-fingerprint",
            self.fingerprint,
        ]
        if challenge is not None:
            args += ["-challenge", challenge]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
        return proc, home / "cert.pem"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    require_tool("scepclient")
    tmp = tmp_path_factory.mktemp("scep-interop")
    cfg = scep_config(tmp, ENDPOINTS)
    with serving(cfg) as port:
        yield Gateway(cfg, port, tmp)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_scepclient_enrolls_with_static_challenge(gateway: Gateway) -> None:
    proc, cert_path = gateway.client("static1", "legacy", challenge=STATIC_PASSWORD)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cert = _cert(cert_path)
    assert cert.subject.rfc4514_string().startswith("CN=static1")
    assert cert.issuer.rfc4514_string() == "CN=certgate Issuing CA"


def test_scepclient_enrolls_with_one_time_challenge_once_only(gateway: Gateway) -> None:
    created = certgate(
        "scep",
        "otp",
        "create",
        "--endpoint",
        "otp",
        "--identity",
        "dev-otp",
        "--json",
        "-c",
        str(gateway.cfg),
        check=True,
    )
    password = json.loads(created.stdout)["password"]
    proc, cert_path = gateway.client("otp1", "otp", challenge=password)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _cert(cert_path).subject.rfc4514_string().startswith("CN=otp1")
    reuse, reused_path = gateway.client("otp2", "otp", challenge=password)
    assert reuse.returncode != 0
    assert "badRequest" in reuse.stdout + reuse.stderr
    assert not reused_path.exists()


def test_scepclient_renews_with_its_existing_certificate(gateway: Gateway) -> None:
    proc, cert_path = gateway.client("renew1", "legacy", challenge=STATIC_PASSWORD)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first = _cert(cert_path)
    renewal, cert_path = gateway.client("renew1", "legacy")  # no challenge: RenewalReq
    assert renewal.returncode == 0, renewal.stdout + renewal.stderr
    second = _cert(cert_path)
    assert second.serial_number != first.serial_number
    listed = certgate("requests", "list", "--json", "-c", str(gateway.cfg), check=True)
    renewals = [
        r
        for r in json.loads(listed.stdout)
        if r["kind"] == "renewal" and r["prior_serial"] == format(first.serial_number, "x")
    ]
    assert len(renewals) == 1 and renewals[0]["requester"]["auth_method"] == "certificate"
    assert second.public_key() == first.public_key()
    assert second.subject == first.subject


def test_scepclient_cannot_renew_its_certificate_into_another_name(gateway: Gateway) -> None:
    # Issue #12 item 1: a certificate may only renew itself (same subject and SANs).
    proc, cert_path = gateway.client("renew2", "legacy", challenge=STATIC_PASSWORD)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first = _cert(cert_path)
    (gateway.work / "renew2" / "csr.pem").unlink()  # scepclient reuses its CSR file
    # RenewalReq signed by the certificate, CSR for another CN, no challenge: not a renewal.
    # scepclient derives the transactionID from its key, so certgate answers with what that
    # transaction already issued: the client's own certificate, nothing new.
    gateway.client("renew2", "legacy", cn="someone-else")
    assert _cert(cert_path) == first
    listed = certgate("certs", "list", "--json", "-c", str(gateway.cfg), check=True)
    assert not [c for c in json.loads(listed.stdout) if "someone-else" in c["subject"]]
    requests = certgate("requests", "list", "--json", "-c", str(gateway.cfg), check=True)
    assert not [
        r
        for r in json.loads(requests.stdout)
        if r["kind"] == "renewal" and r["prior_serial"] == format(first.serial_number, "x")
    ]


def test_scepclient_keeping_its_key_enrolls_past_one_transactions_attempts(
    gateway: Gateway,
) -> None:
    """scepclient derives its transactionID from its key, so every enrollment with one key is
    one SCEP transaction, each new CSR its next attempt. Past the transaction's 16 attempts the
    next CSR opens its next generation; it used to be refused for good (found with the
    benchmark's key pool, issue #18)."""
    from gateway.service import MAX_ATTEMPTS

    home, serials = gateway.work / "fixedkey", set()
    rounds = MAX_ATTEMPTS + 2
    for n in range(rounds):
        for leftover in ("csr.pem", "cert.pem"):  # a new CSR, and a PKCSReq, not a renewal
            (home / leftover).unlink(missing_ok=True)
        cn = f"fixedkey-{n}"
        proc, cert_path = gateway.client("fixedkey", "legacy", challenge=STATIC_PASSWORD, cn=cn)
        assert proc.returncode == 0, (n, proc.stdout + proc.stderr)
        cert = _cert(cert_path)
        assert cert.subject.rfc4514_string().startswith(f"CN={cn}")
        serials.add(cert.serial_number)
    assert len(serials) == rounds
    listed = certgate("requests", "list", "--json", "-c", str(gateway.cfg), check=True)
    issued = {format(serial, "x") for serial in serials}
    mine = [r for r in json.loads(listed.stdout) if r["certificate_serial"] in issued]
    stems = {r["transaction_id"].split("#")[0] for r in mine}
    assert len(mine) == rounds and len(stems) == 1  # one transactionID throughout
    assert {r["transaction_id"].removeprefix(next(iter(stems))) for r in mine} >= {"#16", "#g1"}


def test_scepclient_is_refused_with_a_wrong_challenge(gateway: Gateway) -> None:
    proc, cert_path = gateway.client("wrong1", "legacy", challenge="not-the-password")
    assert proc.returncode != 0
    assert "failInfo: badRequest" in proc.stdout + proc.stderr
    assert not cert_path.exists()


def test_default_endpoint_refuses_scepclient_single_des_with_badalg(gateway: Gateway) -> None:
    proc, cert_path = gateway.client("des1", "modern", challenge=STATIC_PASSWORD)
    assert proc.returncode != 0
    assert "failInfo: badAlg" in proc.stdout + proc.stderr
    assert not cert_path.exists()


def test_same_client_succeeds_against_micromdm_server_and_certgate(
    gateway: Gateway, tmp_path: Path
) -> None:
    client = require_tool("scepclient")
    server = require_tool("scepserver")
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip for a private network namespace")
    depot = tmp_path / "depot"
    subprocess.run(
        [server, "ca", "-init", "-depot", str(depot), "-key-password", "pw", "-keySize", "2048"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    (tmp_path / "cl").mkdir()
    script = f"""
ip link set lo up
"{server}" -depot "{depot}" -port 18777 -capass pw -challenge secret -allowrenew 0 \
  > "{tmp_path}/server.log" 2>&1 &
SP=$!
for i in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/18777) 2>/dev/null && break; sleep 0.1; done
"{client}" -server-url http://127.0.0.1:18777/scep -challenge secret \
  -private-key "{tmp_path}/cl/key.pem" -certificate "{tmp_path}/cl/cert.pem" -cn side-by-side
RC=$?
kill $SP
wait $SP 2>/dev/null
exit $RC
"""
    proc = subprocess.run(
        ["unshare", "-n", "bash", "-c", script], capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0 and "unshare" in proc.stderr and "ermission" in proc.stderr:
        if os.environ.get("CERTGATE_REQUIRE_PEERS") == "1":
            pytest.fail(f"cannot create a network namespace: {proc.stderr}")
        pytest.skip(f"cannot create a network namespace: {proc.stderr}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    micromdm_cert = _cert(tmp_path / "cl" / "cert.pem")
    assert "side-by-side" in micromdm_cert.subject.rfc4514_string()
    ours, cert_path = gateway.client("side-by-side", "legacy", challenge=STATIC_PASSWORD)
    assert ours.returncode == 0, ours.stdout + ours.stderr
    assert _cert(cert_path).subject == micromdm_cert.subject
