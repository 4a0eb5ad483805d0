"""The issue's end-to-end scenario driven by a real EST client: curl (+ openssl for CSRs)
enrolls at gateway A's EST listener; A's label routes to a template on the ``ms_ces``
connector, which forwards over MS-WSTEP to gateway B's CES front-end (B's local CA issues).

Covers issue, B-side approval completed by A's poller, a denial on B reaching the EST client
as a 4xx, and B down -> EST 202 + Retry-After, then the certificate once B is back, with B's
inventory holding exactly one certificate per request.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.est_helpers import Gateway, curl, openssl_req, p7_to_pem, write_est_config
from tests.est_helpers import serving as est_serving
from tests.helpers import TEMPLATES, certgate, free_port, init_gateway, require_tool
from tests.wstep_helpers import PASSWORD, add_user, gateway_b_config, serving

pytestmark = pytest.mark.interop

PKCS10 = ("-H", "Content-Type: application/pkcs10")
ALICE = ("--user", "alice:correct horse")


def _a_template(src: str, name: str, oid: str, **replace: str) -> str:
    text = (TEMPLATES / f"{src}.toml").read_text()
    text = re.sub(r'(?m)^name = ".*"$', f'name = "{name}"', text)
    text = re.sub(r'(?m)^oid = ".*"$', f'oid = "{oid}"', text)
    text = re.sub(r'(?m)^connector = ".*"$', 'connector = "ces"', text)
    text = text.replace("[connector_params]\n", f'[connector_params]\nadcs_template = "{src}"\n')
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


class Setup:
    def __init__(self, tmp: Path) -> None:
        require_tool("curl")
        require_tool("openssl")
        self.tmp = tmp
        self.b_port, self.b_tls = free_port(), free_port()
        self.b_cfg = gateway_b_config(tmp / "b", port=self.b_port, tls_port=self.b_tls)
        add_user(self.b_cfg, "alice", principal="gateway-a")
        chain = tmp / "b-chain.pem"
        certgate("ca", "export", "-c", str(self.b_cfg), "-o", str(chain), check=True)
        self.a_dir = tmp / "a"
        self.a_dir.mkdir()
        self.est_port = free_port()
        ces = f"https://127.0.0.1:{self.b_tls}/wstep/CES"
        self.a_cfg = write_est_config(
            self.a_dir,
            est_port=self.est_port,
            est="""
            retry_window = "1h"
            [est.labels.ces]
            template = "ces-tls"
            auth = ["basic"]
            [est.labels.cesapproval]
            template = "ces-approval"
            auth = ["basic"]
            [est.labels.cesdenied]
            template = "ces-denied"
            auth = ["basic"]
            """,
            extra=f"""
            [connectors.ces]
            type = "ms_ces"
            url = "{ces}"
            username = "alice"
            password = "env:CES_PASSWORD"
            ca_bundle = "{tmp / "b" / "tls" / "tls.crt"}"
            issuer_chain = "{chain}"
            retry_after = "1s"
            timeout = "5s"
            """,
        )
        templates = self.a_dir / "templates"
        (templates / "ces-tls.toml").write_text(_a_template("tls-server", "ces-tls", "2.25.771"))
        (templates / "ces-approval.toml").write_text(
            _a_template("approval-required", "ces-approval", "2.25.772",
                        **{"manager_approval = true": "manager_approval = false"})
        )  # fmt: skip
        (templates / "ces-denied.toml").write_text(
            _a_template("tls-server", "ces-denied", "2.25.773",
                        **{"cn_must_be_san = true": "cn_must_be_san = false"})
        )  # fmt: skip
        init_gateway(self.a_cfg)
        certgate("est", "user", "add", "alice", "--password-env", "PW", "-c", str(self.a_cfg),
                 env={"PW": "correct horse"}, check=True)  # fmt: skip

    def b_certs(self) -> list[dict[str, object]]:
        out = certgate("certs", "list", "-c", str(self.b_cfg), "--json", check=True).stdout
        return json.loads(out)  # type: ignore[no-any-return]

    def b_json(self, *args: str) -> object:
        return json.loads(certgate(*args, "-c", str(self.b_cfg), "--json", check=True).stdout)


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    monkeypatch.setenv("CES_PASSWORD", PASSWORD)
    yield Setup(tmp_path)


def _until(gw: Gateway, path: str, csr: Path, status: int, timeout: float = 25) -> object:
    deadline = time.monotonic() + timeout
    while True:
        r = curl(gw, path, *ALICE, *PKCS10, data=csr)
        if r.status == status or time.monotonic() > deadline:
            return r
        time.sleep(0.5)


def test_est_client_enrolls_through_ces_pending_denied_and_b_down(setup: Setup) -> None:
    with serving(setup.b_cfg, setup.b_port), est_serving(setup.a_cfg, setup.est_port) as gw:
        # issued
        csr = openssl_req(gw.tmp, "e1", "/CN=e1.example", san="DNS:e1.example")
        r = curl(gw, "/ces/simpleenroll", *ALICE, *PKCS10, data=csr)
        assert r.status == 200, r.body
        leaf = x509.load_pem_x509_certificates(p7_to_pem(gw.tmp, r.body, "e1").read_bytes())[0]
        assert [c["serial"] for c in setup.b_certs()] == [format(leaf.serial_number, "x")]

        # denied on B -> a 4xx for the EST client, nothing issued on B
        csr = openssl_req(gw.tmp, "d1", "/CN=not-a-san", san="DNS:d1.example")
        r = curl(gw, "/cesdenied/simpleenroll", *ALICE, *PKCS10, data=csr)
        assert 400 <= r.status < 500, (r.status, r.body)
        assert len(setup.b_certs()) == 1

        # pending on B: 202 + Retry-After, approved with B's CLI, A's poller completes it
        csr = openssl_req(gw.tmp, "p1", "/CN=p1", san="DNS:p1.example")
        r = curl(gw, "/cesapproval/simpleenroll", *ALICE, *PKCS10, data=csr)
        assert r.status == 202 and r.header("retry-after"), (r.status, r.body)
        pending = setup.b_json("requests", "list", "--state", "pending")
        assert isinstance(pending, list) and len(pending) == 1
        setup.b_json("requests", "approve", pending[0]["id"])
        r = _until(gw, "/cesapproval/simpleenroll", csr, 200)
        assert r.status == 200, (r.status, r.body)  # type: ignore[attr-defined]
        assert len(setup.b_certs()) == 2

    # B down: the EST client is told to come back later; A completes once B is back
    with est_serving(setup.a_cfg, setup.est_port) as gw:
        csr = openssl_req(gw.tmp, "o1", "/CN=o1.example", san="DNS:o1.example")
        r = curl(gw, "/ces/simpleenroll", *ALICE, *PKCS10, data=csr)
        assert r.status in {202, 503} and r.header("retry-after"), (r.status, r.body)
        with serving(setup.b_cfg, setup.b_port):
            r = _until(gw, "/ces/simpleenroll", csr, 200)
            assert r.status == 200, (r.status, r.body)  # type: ignore[attr-defined]
            time.sleep(2)  # further poller rounds must not issue again
            assert len(setup.b_certs()) == 3
