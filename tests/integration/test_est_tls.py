"""EST transport behaviour against a real ``certgate serve``: tls-unique proof-of-possession
linking on TLS 1.2 and 1.3 (RFC 7030 §3.5), a client certificate forwarded by a trusted proxy,
and random bodies to every POST operation (never a 500).

Python's ``ssl`` is the client here: curl cannot put tls-unique into a CSR.
"""

from __future__ import annotations

import base64
import http.client
import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import AttributeOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.est_helpers import Gateway, est_gateway

AUTH = "Basic " + base64.b64encode(b"bob:hunter22").decode()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("est-tls")
    with est_gateway(
        tmp,
        est="""
        trusted_proxies = ["127.0.0.1/32"]
        [est.labels.pop]
        template = "device"
        require_pop_link = true
        [est.labels.renew]
        template = "est-device"
        [est.labels.ra]
        template = "est-ra"
        [est.labels.fleet]
        template = "est-fleet"
        groups = ["fleet"]
        [est.labels.closed]
        template = "est-fleet"
        """,
        user="bob",
        password="hunter22",
    ) as gateway:
        yield gateway


def connect(
    gw: Gateway, *, tls: ssl.TLSVersion | None = None, cert: tuple[Path, Path] | None = None
) -> http.client.HTTPSConnection:
    ctx = ssl.create_default_context(cafile=str(gw.ca_file))
    if tls is not None:
        ctx.minimum_version = ctx.maximum_version = tls
    if cert is not None:
        ctx.load_cert_chain(*cert)
    conn = http.client.HTTPSConnection("127.0.0.1", gw.est_port, context=ctx, timeout=30)
    conn.connect()
    return conn


def csr_b64(
    cn: str, *, password: bytes | None = None, key: ec.EllipticCurvePrivateKey | None = None
) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    if password is not None:
        builder = builder.add_attribute(AttributeOID.CHALLENGE_PASSWORD, password)
    csr = builder.sign(key or ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    return base64.b64encode(csr.public_bytes(serialization.Encoding.DER))


def post(
    conn: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    conn.request(
        "POST",
        f"/.well-known/est{path}",
        body=body,
        headers={"Content-Type": "application/pkcs10", "Authorization": AUTH, **(headers or {})},
    )
    response = conn.getresponse()
    return response.status, response.read()


def tls_unique(conn: http.client.HTTPSConnection) -> bytes:
    sock = conn.sock
    assert isinstance(sock, ssl.SSLSocket)
    binding = sock.get_channel_binding("tls-unique")
    assert binding is not None
    return binding


def test_tls12_csr_linked_to_this_session_is_issued(gw: Gateway) -> None:
    conn = connect(gw, tls=ssl.TLSVersion.TLSv1_2)
    link = base64.b64encode(tls_unique(conn))
    status, body = post(conn, "/pop/simpleenroll", csr_b64("linked", password=link))
    assert status == 200, body


def test_tls12_csr_linked_to_another_session_is_403(gw: Gateway) -> None:
    other = connect(gw, tls=ssl.TLSVersion.TLSv1_2)
    stale = base64.b64encode(tls_unique(other))
    other.close()
    conn = connect(gw, tls=ssl.TLSVersion.TLSv1_2)
    status, body = post(conn, "/pop/simpleenroll", csr_b64("stale", password=stale))
    assert status == 403 and b"tls-unique" in body


def test_tls12_mismatched_link_is_403_even_where_not_required(gw: Gateway) -> None:
    conn = connect(gw, tls=ssl.TLSVersion.TLSv1_2)
    status, body = post(conn, "/simpleenroll", csr_b64("wrong-link", password=b"bm9wZQ=="))
    assert status == 403 and b"tls-unique" in body


def test_tls12_missing_link_is_403_where_required(gw: Gateway) -> None:
    conn = connect(gw, tls=ssl.TLSVersion.TLSv1_2)
    status, body = post(conn, "/pop/simpleenroll", csr_b64("unlinked"))
    assert status == 403 and b"challengePassword" in body


def test_tls13_client_is_not_refused_for_lacking_the_link(gw: Gateway) -> None:
    conn = connect(gw, tls=ssl.TLSVersion.TLSv1_3)
    assert conn.sock is not None and conn.sock.version() == "TLSv1.3"  # type: ignore[attr-defined]
    status, body = post(conn, "/pop/simpleenroll", csr_b64("modern"))
    assert status == 200, body


def _enroll_pem(
    gw: Gateway, cn: str, key: ec.EllipticCurvePrivateKey, label: str = "renew"
) -> bytes:
    conn = connect(gw)
    status, body = post(conn, f"/{label}/simpleenroll", csr_b64(cn, key=key))
    assert status == 200, body
    der = base64.b64decode(b"".join(body.split()))
    return pkcs7.load_der_pkcs7_certificates(der)[0].public_bytes(serialization.Encoding.PEM)


def _pem_files(tmp: Path, cert_pem: bytes, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    (tmp / "c.pem").write_bytes(cert_pem)
    (tmp / "k.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return tmp / "c.pem", tmp / "k.pem"


def test_registration_authority_is_exempt_from_the_pop_link(gw: Gateway, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    ra = _pem_files(tmp_path, _enroll_pem(gw, "ra-1", key, label="ra"), key)
    conn = connect(gw, tls=ssl.TLSVersion.TLSv1_2, cert=ra)
    # The device linked its CSR to its own session with the RA, not to the RA's with us.
    status, body = post(conn, "/pop/simpleenroll", csr_b64("via-ra", password=b"ZGV2aWNl"))
    assert status == 200, body


def test_ordinary_client_certificate_is_not_an_ra(gw: Gateway, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    device = _pem_files(tmp_path, _enroll_pem(gw, "not-ra", key), key)
    conn = connect(gw, tls=ssl.TLSVersion.TLSv1_2, cert=device)
    status, body = post(conn, "/pop/simpleenroll", csr_b64("not-via-ra", password=b"ZGV2aWNl"))
    assert status == 403 and b"tls-unique" in body


def test_template_permissions_see_the_est_requester(gw: Gateway) -> None:
    conn = connect(gw)
    status, body = post(conn, "/fleet/simpleenroll", csr_b64("fleet-member"))
    assert status == 200, body  # the label puts bob in group "fleet"
    status, body = post(conn, "/closed/simpleenroll", csr_b64("outsider"))
    assert status == 403 and b"enroll-permission" in body and b"bob" in body


def test_concurrent_identical_requests_issue_once(gw: Gateway) -> None:
    body = csr_b64("twins")
    conns = [connect(gw) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda c: post(c, "/simpleenroll", body), conns))
    assert [status for status, _ in replies] == [200] * 4, replies
    serials = {
        pkcs7.load_der_pkcs7_certificates(base64.b64decode(b"".join(r.split())))[0].serial_number
        for _, r in replies
    }
    assert len(serials) == 1


def test_trusted_proxy_forwards_the_client_certificate(gw: Gateway) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = _enroll_pem(gw, "behind-proxy", key)
    conn = http.client.HTTPConnection("127.0.0.1", gw.http_port, timeout=30)
    status, body = post(
        conn,
        "/renew/simplereenroll",
        csr_b64("behind-proxy", key=key),
        {"X-SSL-Client-Cert": quote(pem.decode()), "Authorization": ""},
    )
    assert status == 200, body


def test_forwarded_header_is_ignored_when_a_tls_client_certificate_is_present(
    gw: Gateway, tmp_path: Path
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = _enroll_pem(gw, "real-cert", key)
    other_pem = _enroll_pem(gw, "claimed-cert", ec.generate_private_key(ec.SECP256R1()))
    (tmp_path / "c.pem").write_bytes(pem)
    (tmp_path / "k.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    conn = connect(gw, cert=(tmp_path / "c.pem", tmp_path / "k.pem"))
    # Claims another certificate in the header; the TLS one wins, so the names do not match.
    status, body = post(
        conn,
        "/renew/simplereenroll",
        csr_b64("claimed-cert"),
        {"X-SSL-Client-Cert": quote(other_pem.decode())},
    )
    assert status == 403 and b"subject" in body


@pytest.fixture(scope="module")
def keepalive(
    gw: Gateway, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[http.client.HTTPSConnection]:
    """A keep-alive connection with a client certificate of this CA (so /simplereenroll reads
    its body too) and Basic credentials."""
    tmp = tmp_path_factory.mktemp("keepalive")
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp / "c.pem").write_bytes(_enroll_pem(gw, "fuzzer", key))
    (tmp / "k.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    conn = connect(gw, cert=(tmp / "c.pem", tmp / "k.pem"))
    yield conn
    conn.close()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    operation=st.sampled_from(["simpleenroll", "simplereenroll", "serverkeygen", "fullcmc",
                               "pop/simpleenroll", "renew/simplereenroll",
                               "renew/serverkeygen"]),
    body=st.one_of(
        st.binary(max_size=2048),
        st.binary(max_size=1024).map(base64.b64encode),
        st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \r\n",
                max_size=800).map(str.encode),
    ),
    content_type=st.sampled_from(["application/pkcs10", "application/PKCS10; a=b", "text/plain",
                                  ""]),
)  # fmt: skip
def test_random_bodies_never_produce_a_500(
    keepalive: http.client.HTTPSConnection, operation: str, body: bytes, content_type: str
) -> None:
    status, reply = post(keepalive, f"/{operation}", body, {"Content-Type": content_type})
    assert 400 <= status < 500 or status == 501, (status, reply)
    assert reply.endswith(b"\n") and b"Traceback" not in reply
