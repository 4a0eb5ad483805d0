"""End to end over loopback: gateway A's templates route to the ``ms_ces`` connector, which
speaks MS-WSTEP over HTTPS to gateway B's CES front-end (B's local CA issues).

Both gateways are real ``certgate serve`` processes; A is driven with its real CLI
(``certgate enroll``), its poller completes pending requests, and B's CLI approves.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from pathlib import Path

import pytest
from cryptography import x509

from backends.ms_ces import MSCESConnector
from gateway.codecs.ms.wstrust import TokenResponse, parse_reply
from gateway.model import ConnectorOutcome, ConnectorPending
from gateway.ports import ConnectorContext
from tests.helpers import (
    TEMPLATES,
    certgate,
    csr_pem,
    free_port,
    init_gateway,
    make_csr,
    write_config,
)
from tests.wstep_helpers import PASSWORD, add_user, gateway_b_config, post, rst, serving


def _a_template(src: str, name: str, oid_suffix: int, adcs: str, **replace: str) -> str:
    text = (TEMPLATES / f"{src}.toml").read_text()
    text = re.sub(r'(?m)^name = ".*"$', f'name = "{name}"', text)
    text = re.sub(r'(?m)^oid = ".*"$', f'oid = "2.25.99{oid_suffix}"', text)
    text = re.sub(r'(?m)^connector = ".*"$', 'connector = "ces"', text)
    text = text.replace("[connector_params]\n", f'[connector_params]\nadcs_template = "{adcs}"\n')
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


class _NoJournal:
    async def get(self, request_id: str) -> bytes | None:
        return None

    async def put(self, request_id: str, certificate_der: bytes) -> bytes:
        return certificate_der


class TwoGateways:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.b_port, self.b_tls = free_port(), free_port()
        self.b_cfg = gateway_b_config(tmp / "b", port=self.b_port, tls_port=self.b_tls)
        add_user(self.b_cfg, "alice", principal="gateway-a")
        templates = tmp / "a-templates"
        templates.mkdir()
        (templates / "tls-server.toml").write_text((TEMPLATES / "tls-server.toml").read_text())
        (templates / "ces-tls.toml").write_text(
            _a_template("tls-server", "ces-tls", 1, "tls-server")
        )
        (templates / "ces-approval.toml").write_text(
            _a_template(
                "approval-required",
                "ces-approval",
                2,
                "approval-required",
                **{"manager_approval = true": "manager_approval = false"},
            )
        )
        # A lets a CN that is not a SAN through; B's tls-server (cn_must_be_san) refuses it.
        (templates / "ces-denied.toml").write_text(
            _a_template(
                "tls-server",
                "ces-denied",
                3,
                "tls-server",
                **{"cn_must_be_san = true": "cn_must_be_san = false"},
            )
        )
        self.a_port = free_port()
        chain = tmp / "b-chain.pem"
        certgate("ca", "export", "-c", str(self.b_cfg), "-o", str(chain), check=True)
        ces = f"https://127.0.0.1:{self.b_tls}/wstep"
        self.b_ces = f"{ces}/CES"
        self.b_cafile = tmp / "b" / "tls" / "tls.crt"
        extra = f"""
            [connectors.ces]
            type = "ms_ces"
            url = "{ces}/CES"
            policy_url = "{ces}/CEP"
            auth = "username"
            username = "alice"
            password = "env:CES_PASSWORD"
            ca_bundle = "{tmp / "b" / "tls" / "tls.crt"}"
            issuer_chain = "{chain}"
            retry_after = "1s"
            timeout = "5s"
            """
        self.ces_settings = {
            "url": f"{ces}/CES",
            "username": "alice",
            "password": "env:CES_PASSWORD",
            "ca_bundle": str(self.b_cafile),
            "issuer_chain": str(chain),
            "retry_after": "1s",
            "timeout": "5s",
        }
        (tmp / "a").mkdir()
        self.a_cfg = write_config(tmp / "a", extra, port=self.a_port)
        text = self.a_cfg.read_text().replace(str(TEMPLATES), str(templates))
        self.a_cfg.write_text(text)
        self.env = {"CES_PASSWORD": PASSWORD}

    async def connector_poll(self, ca_request_id: str) -> ConnectorOutcome:
        """A's connector, in this process, polling B for ``ca_request_id``."""
        os.environ["CES_PASSWORD"] = PASSWORD
        try:
            conn = MSCESConnector(
                ConnectorContext("ces", self.ces_settings, self.tmp, _NoJournal(), "t.toml")
            )
        finally:
            del os.environ["CES_PASSWORD"]
        await conn.start()
        try:
            return await conn.poll(ca_request_id)
        finally:
            await conn.close()

    def a(self, *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
        proc = certgate(*args, "-c", str(self.a_cfg), "--json", env=self.env)
        return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}

    def b(self, *args: str) -> tuple[int, object]:
        proc = certgate(*args, "-c", str(self.b_cfg), "--json")
        assert proc.returncode == 0, proc.stderr
        return proc.returncode, json.loads(proc.stdout)

    def enroll(self, template: str, csr: x509.CertificateSigningRequest) -> tuple[int, dict]:  # type: ignore[type-arg]
        path = self.tmp / f"{template}-{time.monotonic_ns()}.csr"
        path.write_bytes(csr_pem(csr))
        return self.a("enroll", "--template", template, "--csr", str(path))

    def b_certificates(self) -> list[dict]:  # type: ignore[type-arg]
        _, certs = self.b("certs", "list")
        assert isinstance(certs, list)
        return certs

    def wait_a_state(self, request_id: str, state: str, timeout: float = 20) -> dict:  # type: ignore[type-arg]
        deadline = time.monotonic() + timeout
        shown: dict = {}  # type: ignore[type-arg]
        while time.monotonic() < deadline:
            _, shown = self.a("requests", "show", request_id)
            if shown.get("state") == state:
                return shown
            time.sleep(0.5)
        raise AssertionError(f"request {request_id} stayed {shown.get('state')}: {shown}")


@pytest.fixture
def gateways(tmp_path: Path) -> TwoGateways:
    return TwoGateways(tmp_path)


def test_a_issues_through_b_and_the_certificate_chains_to_b(gateways: TwoGateways) -> None:
    with (
        serving(gateways.b_cfg, gateways.b_port),
        serving(gateways.a_cfg, gateways.a_port, env=gateways.env),
    ):
        csr = make_csr(cn="a.example", dns=("a.example",))
        code, out = gateways.enroll("ces-tls", csr)
        assert code == 0, out
        chain = x509.load_pem_x509_certificates(out["chain"].encode())
        leaf = chain[0]
        assert leaf.public_key() == csr.public_key()
        b_certs = gateways.b_certificates()
        assert [c["serial"] for c in b_certs] == [out["serial"]]
        # B issued under its own template named by adcs_template, and A keeps the inventory.
        assert b_certs[0]["template"] == "tls-server"
        assert leaf.issuer == chain[1].subject
        _, a_cert = gateways.a("certs", "show", out["serial"])
        assert a_cert["template"] == "ces-tls"


def test_pending_on_b_is_approved_by_b_cli_then_a_poller_completes(gateways: TwoGateways) -> None:
    with (
        serving(gateways.b_cfg, gateways.b_port),
        serving(gateways.a_cfg, gateways.a_port, env=gateways.env),
    ):
        code, out = gateways.enroll("ces-approval", make_csr(cn="client-1", dns=("c1.example",)))
        assert code == 3 and out["reason"] == "ca", out
        a_id = out["request_id"]
        # A recorded B's CES RequestID, a number as AD CS sends (its database row id) ...
        _, a_pending = gateways.a("requests", "show", a_id)
        number = a_pending["ca_request_id"]
        assert number.isdigit() and 0 < int(number) < 2**32, a_pending
        # ... and that number is what B answers QueryTokenStatus for: still under submission.
        status, body = post(gateways.b_ces, rst(request_id=number), cafile=gateways.b_cafile)
        still = parse_reply(body)
        assert status == 200 and isinstance(still, TokenResponse), body[:300]
        assert still.request_id == number and not still.issued and still.reference
        _, b_pending = gateways.b("requests", "list", "--state", "pending")
        assert isinstance(b_pending, list) and len(b_pending) == 1
        assert gateways.b_certificates() == []
        # A request recorded by an older certgate holds B's UUID: the connector polls it as is.
        legacy = b_pending[0]["id"]
        assert asyncio.run(gateways.connector_poll(legacy)) == ConnectorPending(legacy, 1)
        gateways.b("requests", "approve", b_pending[0]["id"])
        shown = gateways.wait_a_state(a_id, "issued")  # A's poller: QueryTokenStatus <number>
        assert shown["certificate_serial"] == gateways.b_certificates()[0]["serial"]
        assert shown["ca_request_id"] == number
        assert "BEGIN CERTIFICATE" in shown["chain"]


def test_denial_on_b_reaches_a_as_a_ca_denial(gateways: TwoGateways) -> None:
    init_gateway(gateways.a_cfg, env=gateways.env)  # A's CLI enrolls before A ever served
    with serving(gateways.b_cfg, gateways.b_port):
        csr = make_csr(cn="not-a-san", dns=("a.example",))
        code, out = gateways.enroll("ces-denied", csr)
        assert code == 4, out
        assert out["code"] == "ca-denied" and out["rule"] == "ca"
        assert "CERTSRV_E_BAD_REQUESTSUBJECT" in out["detail"] and "cn-in-sans" in out["detail"]
        assert gateways.b_certificates() == []


def test_b_down_goes_pending_then_completes_once_b_returns(gateways: TwoGateways) -> None:
    with serving(gateways.a_cfg, gateways.a_port, env=gateways.env):
        code, out = gateways.enroll("ces-tls", make_csr(cn="b.example", dns=("b.example",)))
        assert code == 3 and out["reason"] == "ca", out
        _, shown = gateways.a("requests", "show", out["request_id"])
        assert shown["state"] == "pending" and shown["pending_reason"] == "ca"
        time.sleep(1.5)  # poller rounds while B is down leave it pending
        _, shown = gateways.a("requests", "show", out["request_id"])
        assert shown["state"] == "pending"
        with serving(gateways.b_cfg, gateways.b_port):
            shown = gateways.wait_a_state(out["request_id"], "issued")
            certs = gateways.b_certificates()
            assert [c["serial"] for c in certs] == [shown["certificate_serial"]]
            time.sleep(2.5)  # more poller rounds must not issue again
            assert len(gateways.b_certificates()) == 1
