"""Helpers for the CES/CEP tests: TLS material, gateway configs, SOAP envelopes, real
``certgate serve`` processes."""

from __future__ import annotations

import ssl
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.codecs.ms.wstrust import (
    ACTION_RST,
    REQUEST_ISSUE,
    REQUEST_QUERY,
    VALUE_PKCS10,
    TokenRequest,
    build_envelope,
    build_request_body,
)
from gateway.codecs.ms.xcep import ACTION_GET_POLICIES, build_get_policies_body
from tests.gateway_process import gateway_process
from tests.helpers import (
    REPO,
    certgate,
    init_gateway,
    write_config,
)
from tests.pki_helpers import self_signed, write_cert, write_key

VECTORS = REPO / "tests" / "vectors" / "ms"
PASSWORD = "correct horse battery"


def tls_files(directory: Path) -> tuple[Path, Path]:
    """A self-signed TLS server certificate for 127.0.0.1/localhost (it is its own trust root)."""
    key, cert = self_signed("ces.test", ca=True, sans=("localhost", "127.0.0.1"))
    directory.mkdir(parents=True, exist_ok=True)
    return write_cert(directory / "tls.crt", cert), write_key(directory / "tls.key", key)


def gateway_b_config(tmp: Path, *, port: int, tls_port: int, templates: Path | None = None) -> Path:
    """Gateway B: local CA + the wstep front-end on HTTP and on a TLS listener, initialized
    (``certgate init``) so that operator commands can act on it before it serves."""
    cert, key = tls_files(tmp / "tls")
    cfg = write_config(
        tmp,
        f"""
        [wstep]
        enabled = true
        [wstep.tls]
        host = "127.0.0.1"
        port = {tls_port}
        certificate = "{cert}"
        key = "{key}"
        """,
        port=port,
    )
    if templates is not None:
        cfg.write_text(cfg.read_text().replace(str(REPO / "conf" / "templates"), str(templates)))
    init_gateway(cfg)
    return cfg


def add_user(cfg: Path, username: str, *, principal: str | None = None) -> None:
    args = ["wstep", "user", "add", username, "-c", str(cfg), "--password-env", "WSTEP_PW"]
    if principal:
        args += ["--principal", principal]
    certgate(*args, env={"WSTEP_PW": PASSWORD}, check=True)


def rst(
    token: bytes | None = None,
    *,
    template: str | None = "tls-server",
    username: str | None = "alice",
    password: str | None = PASSWORD,
    request_id: str | None = None,
    value_type: str = VALUE_PKCS10,
    extra_context: dict[str, str] | None = None,
) -> bytes:
    """A RequestSecurityToken envelope: Issue with ``token``, else QueryTokenStatus."""
    context = {"CertificateTemplate": template} if template else {}
    context.update(extra_context or {})
    request = (
        TokenRequest(REQUEST_ISSUE, token=token, value_type=value_type, context=context)
        if token is not None
        else TokenRequest(REQUEST_QUERY, request_id=request_id)
    )
    return build_envelope(
        ACTION_RST,
        build_request_body(request),
        message_id=f"urn:uuid:{uuid.uuid4()}",
        username=username,
        password=password,
    )


def get_policies(username: str | None = "alice", password: str | None = PASSWORD) -> bytes:
    return build_envelope(
        ACTION_GET_POLICIES,
        build_get_policies_body(),
        message_id=f"urn:uuid:{uuid.uuid4()}",
        username=username,
        password=password,
    )


SOAP_HEADERS = {"Content-Type": "application/soap+xml; charset=utf-8"}


def post(
    url: str, body: bytes, *, cafile: Path | None = None, timeout: float = 30
) -> tuple[int, bytes]:
    context = ssl.create_default_context(cafile=str(cafile)) if cafile else None
    req = urllib.request.Request(url, data=body, headers=SOAP_HEADERS, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@contextmanager
def serving(
    cfg: Path, port: int, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """A real ``certgate serve`` on ``port`` (:func:`tests.gateway_process.gateway_process`);
    stopped (SIGTERM, then kill) on exit."""
    with gateway_process(cfg, port=port, env=env) as gateway:
        yield gateway.proc
