"""Against a real gateway B (``certgate serve`` with the wstep front-end):

* ``certgate templates import --xcep`` on gateway A round-trips B's templates through MS-XCEP;
* the CES endpoint on B's TLS listener authenticates a client certificate B issued, mapping it
  to the principal it was issued to;
* the connector's ``certgate-request-id`` makes a resubmission that reaches B return the first
  outcome even when A's journal lost it (B's inventory holds one certificate).
"""

from __future__ import annotations

import json
import ssl
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.codecs.ms.wstrust import EnrollmentFault, TokenResponse, parse_reply
from gateway.model import Issued
from gateway.policy import load_template, load_templates
from gateway.ports import ConnectorContext
from tests.helpers import (
    TEMPLATES,
    certgate,
    ec_key,
    free_port,
    init_gateway,
    make_csr,
    write_config,
)
from tests.wstep_helpers import (
    PASSWORD,
    SOAP_HEADERS,
    add_user,
    gateway_b_config,
    post,
    rst,
    serving,
)


def _a_config(tmp: Path, b_tls: int) -> Path:
    (tmp / "a").mkdir()
    chain = tmp / "b-chain.pem"
    ces = f"https://127.0.0.1:{b_tls}/wstep"
    return write_config(
        tmp / "a",
        f"""
        [connectors.ces]
        type = "ms_ces"
        url = "{ces}/CES"
        policy_url = "{ces}/CEP"
        username = "alice"
        password = "env:CES_PASSWORD"
        ca_bundle = "{tmp / "b" / "tls" / "tls.crt"}"
        issuer_chain = "{chain}"
        """,
    )


def test_templates_import_round_trips_b_templates(tmp_path: Path) -> None:
    b_port, b_tls = free_port(), free_port()
    b_cfg = gateway_b_config(tmp_path / "b", port=b_port, tls_port=b_tls)
    add_user(b_cfg, "alice")
    certgate("ca", "export", "-c", str(b_cfg), "-o", str(tmp_path / "b-chain.pem"), check=True)
    a_cfg = _a_config(tmp_path, b_tls)
    out = tmp_path / "imported"
    env = {"CES_PASSWORD": PASSWORD}
    url = f"https://127.0.0.1:{b_tls}/wstep/CEP"
    with serving(b_cfg, b_port):
        init_gateway(a_cfg, env=env)
        args = ("templates", "import", "--xcep", url, "--connector", "ces", "--out", str(out))
        proc = certgate(*args, "-c", str(a_cfg), "--json", env=env)
        assert proc.returncode == 0, proc.stderr
        again = certgate(*args, "-c", str(a_cfg), env=env)
        assert again.returncode != 0 and "--force" in again.stderr
    report = {item["name"]: item for item in json.loads(proc.stdout)}
    originals = load_templates(TEMPLATES)
    assert set(report) == {n for n, t in originals.items() if "*" in t.permissions.enroll}
    for name, item in report.items():
        imported = load_template(out / f"{name}.toml")
        original = originals[name]
        assert imported.connector == "ces"
        assert imported.connector_params == {"adcs_template": name}
        for attr in (
            "oid",
            "validity",
            "renewal_period",
            "major_version",
            "minor_version",
            "schema_version",
            "supersedes",
            "display_name",
        ):
            assert getattr(imported, attr) == getattr(original, attr), (name, attr)
        assert imported.key_usage.ekus == original.key_usage.ekus
        assert imported.key_usage.usages == original.key_usage.usages
        assert imported.key_usage.critical == original.key_usage.critical
        assert imported.issuance.manager_approval == original.issuance.manager_approval
        assert imported.issuance.renewal_skips_approval == original.issuance.renewal_skips_approval
        assert (
            imported.key_policy.require_same_key_renewal
            == original.key_policy.require_same_key_renewal
        )
        if "rsa" in {a.value for a in original.key_policy.algorithms}:
            assert imported.key_policy.min_rsa_bits == original.key_policy.min_rsa_bits
        assert imported.subject.source.value in {"request", "requester"}
        # What CEP cannot carry is listed, never silently dropped; nobody may enroll yet.
        assert any("enrollment permissions" in u for u in item["unmapped"])
        assert imported.permissions.enroll == ()


def _tls_post(
    url: str, body: bytes, cafile: Path, cert: Path | None, key: Path | None
) -> tuple[int, bytes]:
    context = ssl.create_default_context(cafile=str(cafile))
    if cert is not None and key is not None:
        context.load_cert_chain(str(cert), str(key))
    request = urllib.request.Request(url, data=body, headers=SOAP_HEADERS, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_client_certificate_issued_by_b_authenticates_as_its_owner(tmp_path: Path) -> None:
    b_port, b_tls = free_port(), free_port()
    b_cfg = gateway_b_config(tmp_path / "b", port=b_port, tls_port=b_tls)
    add_user(b_cfg, "alice", principal="gateway-a")
    cafile = tmp_path / "b" / "tls" / "tls.crt"
    with serving(b_cfg, b_port):
        key = ec_key()
        csr = make_csr(key, cn="device-1", dns=("device-1.example",))
        url = f"https://127.0.0.1:{b_tls}/wstep/CES"
        # The password goes over TLS only (B refuses a UsernameToken over plain HTTP).
        status, body = post(
            url, rst(csr.public_bytes(Encoding.DER), template="device"), cafile=cafile
        )
        reply = parse_reply(body)
        assert status == 200 and isinstance(reply, TokenResponse) and reply.certificate
        cert_path, key_path = tmp_path / "client.crt", tmp_path / "client.key"
        cert_path.write_bytes(
            x509.load_der_x509_certificate(reply.certificate).public_bytes(Encoding.PEM)
        )
        key_path.write_bytes(
            key.private_bytes(
                Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        second = make_csr(cn="device-1", dns=("device-1.example",)).public_bytes(Encoding.DER)
        no_password = rst(second, template="device", username=None, password=None)
        status, body = _tls_post(url, no_password, cafile, cert_path, key_path)
        issued = parse_reply(body)
        assert status == 200 and isinstance(issued, TokenResponse) and issued.issued
        status, body = _tls_post(url, no_password, cafile, None, None)
        refused = parse_reply(body)
        # WCF's (and so AD CS's) status for every SOAP fault, which clients read the fault from
        assert status == 500 and isinstance(refused, EnrollmentFault)
        assert issued.request_id.isdigit()  # AD CS-style number, not certgate's request id
        serial = format(x509.load_der_x509_certificate(issued.certificate).serial_number, "x")
        _, cert = certgate_json(b_cfg, "certs", "show", serial)
        _, shown = certgate_json(b_cfg, "requests", "show", cert["request_id"])
        assert shown["requester"]["principal"] == "gateway-a"
        assert shown["requester"]["auth_method"] == "tls-client-cert"


def certgate_json(cfg: Path, *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    proc = certgate(*args, "-c", str(cfg), "--json")
    assert proc.returncode == 0, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


async def test_resubmission_reaching_b_returns_the_first_certificate(tmp_path: Path) -> None:
    from backends.ms_ces import MSCESConnector
    from tests.ces_fixtures import MemoryJournal, plan

    b_port, b_tls = free_port(), free_port()
    b_cfg = gateway_b_config(tmp_path / "b", port=b_port, tls_port=b_tls)
    add_user(b_cfg, "alice")
    certgate("ca", "export", "-c", str(b_cfg), "-o", str(tmp_path / "b-chain.pem"), check=True)
    settings = {
        "url": f"https://127.0.0.1:{b_tls}/wstep/CES",
        "username": "alice",
        "password": "env:CES_PASSWORD",
        "ca_bundle": str(tmp_path / "b" / "tls" / "tls.crt"),
        "issuer_chain": str(tmp_path / "b-chain.pem"),
    }
    import os

    os.environ["CES_PASSWORD"] = PASSWORD
    try:
        with serving(b_cfg, b_port):
            outcomes = []
            p = plan("crash-window", adcs="tls-server")
            for _ in range(2):  # two connectors, two empty journals: as if A crashed in between
                conn = MSCESConnector(
                    ConnectorContext("ces", settings, tmp_path, MemoryJournal(), "t.toml")
                )
                await conn.start()
                try:
                    outcomes.append(await conn.submit(p))
                finally:
                    await conn.close()
            _, certs = certgate_json(b_cfg, "certs", "list")
    finally:
        del os.environ["CES_PASSWORD"]
    assert all(isinstance(o, Issued) for o in outcomes)
    assert outcomes[0].certificate == outcomes[1].certificate  # type: ignore[union-attr]
    assert len(certs) == 1  # type: ignore[arg-type]
