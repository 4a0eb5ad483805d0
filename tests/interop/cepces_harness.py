"""Drive openSUSE cepces (the certmonger helper ``cepces-submit``) the way certmonger does, and
record what it sends.

cepces is in no package registry: ``tests/interop/cepces_setup.sh`` makes a source tree and a
venv for its dependencies; ``CEPCES_SRC`` points at the tree and ``CEPCES_PYTHON`` at the
venv's python. ``bin/cepces-submit`` runs from the tree (``PYTHONPATH=SRC/src``), so the probe
tests exactly the checkout it was given.

How cepces 0.3.17 behaves (read from its source, not assumed):

* configuration: ``cepces.conf`` in the working directory (after ``/etc/cepces/cepces.conf``,
  which a machine without cepces installed does not have); ``[global] type = Policy`` asks the
  CEP URL ``endpoint`` for GetPolicies and picks the CES URI whose clientAuthentication matches
  ``auth`` (lowest priority first); ``cas`` is the TLS trust bundle for both.
* operations (``CERTMONGER_OPERATION``) and exit codes (``cepces/certmonger/core.py``): 0 issued
  (certificate PEM on stdout), 1 wait, 2 rejected (a SOAP fault, its text on stdout), 3 connect
  error, 4 under-configured (also what any uncaught exception ends as, with a traceback on
  stderr), 5 wait with a delay (stdout: poll interval, then the cookie ``<RequestID>,<URI>``),
  6 unsupported operation.
* it reads a fault only from an HTTP 500 answer; any other non-2xx is an ``HTTPError``.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

import pytest
from aiohttp import ClientSession, TCPConnector, web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

CEPCES_TAG = "v0.3.17"
# cepces/certmonger/core.py Result
ISSUED, WAIT, REJECTED, CONNECTERROR, UNDERCONFIGURED, WAITMORE, UNSUPPORTED = 0, 1, 2, 3, 4, 5, 6
# Microsoft "certificate template name" extension (szOID_ENROLL_CERTTYPE_EXTENSION), a BMPString:
# what certmonger puts into its CSR for ``getcert request -T NAME``; cepces sends no template.
TEMPLATE_NAME_OID = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2")


@dataclass(frozen=True)
class Cepces:
    """A cepces source tree and the python that has its dependencies."""

    src: Path
    python: Path

    @property
    def submit(self) -> Path:
        return self.src / "bin" / "cepces-submit"

    def wrapper(self, workdir: Path) -> Path:
        """An executable for ``getcert add-ca -e``: certmonger runs helpers without a shell
        and with a scrubbed environment, so the working directory (where ``cepces.conf`` is)
        and PYTHONPATH are baked in."""
        script = workdir / "cepces-submit"
        script.write_text(
            "#!/bin/sh\n"
            f"cd '{workdir}' || exit 4\n"
            f"PYTHONPATH='{self.src / 'src'}' '{self.python}' '{self.submit}' \"$@\""
            " 2>>stderr.log\n"
            "rc=$?\n"
            # What certmonger asked for and got, in order (no secrets: ids, URLs, exit codes).
            'echo "$CERTMONGER_OPERATION ${CERTMONGER_CA_COOKIE:-} -> $rc" >> operations.log\n'
            "exit $rc\n"
        )
        script.chmod(0o700)
        return script


def locate_cepces() -> Cepces:
    """The cepces under test, or a skip: cepces cannot be installed by CI, so this probe is
    skipped without ``CEPCES_SRC`` even under CERTGATE_REQUIRE_PEERS=1 (issue #13)."""
    src = os.environ.get("CEPCES_SRC")
    if not src:
        pytest.skip(
            "CEPCES_SRC not set: cepces (github openSUSE/cepces "
            f"{CEPCES_TAG}) is in no package registry; run tests/interop/cepces_setup.sh and "
            "set CEPCES_SRC and CEPCES_PYTHON (skipped even under CERTGATE_REQUIRE_PEERS)"
        )
    tree = Path(src).resolve()
    if not (tree / "bin" / "cepces-submit").is_file():
        pytest.fail(f"CEPCES_SRC={src}: no bin/cepces-submit there")
    python = Path(os.environ.get("CEPCES_PYTHON") or tree / ".venv" / "bin" / "python")
    if not python.exists():
        pytest.fail(
            f"no python with cepces' dependencies at {python}: set CEPCES_PYTHON "
            "(tests/interop/cepces_setup.sh makes a venv)"
        )
    probe = subprocess.run(
        [str(python), "-c", "import cepces, requests_gssapi; print(cepces.__version__)"],
        env={"PYTHONPATH": str(tree / "src"), "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if probe.returncode != 0:
        pytest.fail(f"{python} cannot import cepces from {tree}: {probe.stderr[-500:]}")
    return Cepces(tree, python)


@dataclass(frozen=True)
class Auth:
    """One of cepces' authentication settings."""

    kind: str  # "Certificate" or "UsernamePassword"
    certfile: Path | None = None
    keyfile: Path | None = None
    username: str | None = None
    password: str | None = None


def write_conf(
    workdir: Path,
    *,
    endpoint: str,
    auth: Auth,
    cas: Path,
    endpoint_type: str = "Policy",
    poll_interval: int = 2,
) -> Path:
    """``workdir/cepces.conf`` as an administrator writes it (conf/cepces.conf.dist keys).
    ``$`` is cepces' interpolation character, so it is doubled in values."""
    workdir.mkdir(parents=True, exist_ok=True)
    lines = [
        "[global]",
        f"type={endpoint_type}",
        f"auth={auth.kind}",
        f"endpoint={endpoint}",
        f"cas={cas}",
        f"poll_interval={poll_interval}",
    ]
    if auth.kind == "Certificate":
        lines += ["[certificate]", f"certfile={auth.certfile}", f"keyfile={auth.keyfile}"]
    elif auth.kind == "UsernamePassword":
        assert auth.username and auth.password is not None
        lines += [
            "[usernamepassword]",
            f"username={auth.username}",
            "password=" + auth.password.replace("$", "$$"),
        ]
    conf = workdir / "cepces.conf"
    conf.touch(mode=0o600)
    conf.write_text("\n".join(lines) + "\n")
    return conf


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err[-4000:]}"

    @property
    def cookie(self) -> tuple[int, str, str]:
        """(poll interval, RequestID, reference URI) of a WAITMORE answer."""
        lines = self.out.strip().splitlines()
        assert len(lines) == 2, self
        request_id, reference = lines[1].split(",", 1)
        return int(lines[0]), request_id, reference


SUBMIT_TIMEOUT = 60


def run_submit(cepces: Cepces, workdir: Path, operation: str, **variables: str) -> Outcome:
    """``cepces-submit`` with ``CERTMONGER_OPERATION=operation`` and ``CERTMONGER_<NAME>``
    for each keyword (``csr=...`` -> ``CERTMONGER_CSR``), in ``workdir``, with an environment
    as bare as certmonger's."""
    return run_submit_argv(cepces, workdir, (), operation, variables)


def run_submit_argv(
    cepces: Cepces,
    workdir: Path,
    argv: Sequence[str],
    operation: str,
    variables: Mapping[str, str],
) -> Outcome:
    """:func:`run_submit` with command-line options (``--server``, ``--auth`` ...)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "PYTHONPATH": str(cepces.src / "src"),
        "CERTMONGER_OPERATION": operation,
    }
    env.update({f"CERTMONGER_{k.upper()}": v for k, v in variables.items()})
    proc = subprocess.run(
        [str(cepces.python), str(cepces.submit), *argv],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBMIT_TIMEOUT,
    )
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def certmonger_csr(cn: str, template: str, key: rsa.RSAPrivateKey | None = None) -> str:
    """A PEM CSR shaped like certmonger 0.79's for ``getcert request -N CN=<cn> -T <template>``
    (checked against one it made): RSA-2048, the subject, basicConstraints CA:FALSE (critical),
    subjectKeyIdentifier and the template-name extension (a BMPString)."""
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bmp = template.encode("utf-16-be")
    value = bytes([0x1E, len(bmp)]) + bmp  # BMPString, short form (names < 128 bytes)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.UnrecognizedExtension(TEMPLATE_NAME_OID, value), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(Encoding.PEM).decode()


def pem_certificates(text: str) -> list[x509.Certificate]:
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", text, re.S)
    return [x509.load_pem_x509_certificate(b.encode()) for b in blocks]


@dataclass
class Exchange:
    """One recorded SOAP request and the gateway's answer."""

    path: str
    request: bytes
    status: int
    response: bytes


@dataclass
class RecordingProxy:
    """A TLS-terminating forwarder in front of the gateway's TLS listener that records every
    request body and answer. Absolute URLs of the upstream in the answers (GetPolicies CES
    URIs, pending references) are rewritten to the proxy, so cepces keeps talking through it.
    A client certificate cepces presents is presented upstream with its key from ``client_keys``
    (the proxy cannot otherwise prove it)."""

    upstream: str
    server_cert: Path
    server_key: Path
    trust: Path
    client_keys: Mapping[bytes, tuple[Path, Path]] = field(default_factory=dict)
    exchanges: list[Exchange] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def start(self) -> str:
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self.url

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(self.server_cert, self.server_key)
        if self.client_keys:
            server.verify_mode = ssl.CERT_OPTIONAL
            for cert_file, _ in self.client_keys.values():
                server.load_verify_locations(cafile=str(cert_file))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server)
        await site.start()
        port = self._runner.addresses[0][1]
        return f"https://127.0.0.1:{port}"

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        client = ssl.create_default_context(cafile=str(self.trust))
        peer = request.transport.get_extra_info("ssl_object") if request.transport else None
        der = peer.getpeercert(binary_form=True) if peer is not None else None
        if der and der in self.client_keys:
            client.load_cert_chain(*map(str, self.client_keys[der]))
        headers = {"Content-Type": request.headers.get("Content-Type", "")}
        async with ClientSession(connector=TCPConnector(ssl=client)) as session:
            async with session.request(
                request.method, self.upstream + request.path_qs, data=body, headers=headers
            ) as answer:
                data = await answer.read()
                status, content_type = answer.status, answer.headers.get("Content-Type", "")
        data = data.replace(self.upstream.encode(), self.url.encode())
        self.exchanges.append(Exchange(request.path, body, status, data))
        return web.Response(body=data, status=status, headers={"Content-Type": content_type})


# --- vectors: what cepces sent, without anything host- or secret-specific -------------------

VECTOR_HOST = "https://certgate.example.test"
_PASSWORD = re.compile(rb"(<(\w+:)?Password\b[^>]*>)(.*?)(</(\w+:)?Password>)", re.S)
_NONCE = re.compile(rb"(<(\w+:)?Nonce\b[^>]*>)(.*?)(</(\w+:)?Nonce>)", re.S)
# The Nonce cepces sends is MD5(username:password:created): it would let anyone with the
# vector test password guesses, so it is replaced as well (by 16 zero bytes, base64).
ZERO_NONCE = b"AAAAAAAAAAAAAAAAAAAAAA=="


def sanitize(body: bytes, base_url: str, placeholder: bytes) -> bytes:
    """``body`` with ``base_url`` -> :data:`VECTOR_HOST`, the password -> ``placeholder`` and
    the password-derived nonce -> :data:`ZERO_NONCE`; nothing else changes (the byte layout,
    prefixes and order stay cepces')."""
    body = body.replace(base_url.encode(), VECTOR_HOST.encode())
    body = _PASSWORD.sub(lambda m: m.group(1) + placeholder + m.group(4), body)
    return _NONCE.sub(lambda m: m.group(1) + ZERO_NONCE + m.group(4), body)


# Values that differ on every run (ids, times, the CSR of a fresh key, a poll's request id).
_VOLATILE = {"MessageID", "Created", "BinarySecurityToken", "RequestID"}


def wire_shape(body: bytes) -> list[tuple[str, tuple[tuple[str, str], ...], str]]:
    """Every element in document order as (tag, attributes, text), volatile texts as ``*``:
    two captures with the same shape are the same message."""
    shape = []
    for element in ElementTree.fromstring(body).iter():
        local = element.tag.rsplit("}", 1)[-1]
        text = (element.text or "").strip()
        if local in _VOLATILE and text:
            text = "*"
        shape.append((element.tag, tuple(sorted(element.attrib.items())), text))
    return shape
