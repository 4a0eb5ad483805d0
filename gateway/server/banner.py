"""The ``certgate serve`` start banner: per protocol where it listens and one client command
that works against it as printed, plus the root CA file and fingerprints.

The commands are built from the configuration as loaded (the front-ends' raw tables), so they
name the URLs, ports and secret files this gateway really uses. A site written by ``certgate
init DIR`` keeps its generated secrets in ``DIR/secrets/`` under the names below; the banner
refers to those files (``"$(cat FILE)"``), never to the secrets themselves.

Nothing here imports the web stack: ``certgate init`` prints the same commands.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.config import DEFAULTS, Config

if TYPE_CHECKING:
    from cryptography import x509

#: Where ``certgate init DIR`` keeps generated secrets, relative to the site's certgate.toml.
SECRETS_DIR = "secrets"
SCEP_CHALLENGE_FILE = "scep-challenge"
SCEP_LEGACY_CHALLENGE_FILE = "scep-legacy-challenge"
EST_USER = "est-bootstrap"
EST_PASSWORD_FILE = "est-bootstrap.password"  # noqa: S105 (a file name)
WSTEP_USER = "ces-bootstrap"
WSTEP_PASSWORD_FILE = "ces-bootstrap.password"  # noqa: S105 (a file name)
#: The root CA certificate (PEM) written into the data directory at every start.
ROOT_CA_FILE = "root-ca.pem"

Line = tuple[str, str]


def write_root(data_dir: Path, chain: Sequence[x509.Certificate]) -> Path:
    """``<data dir>/root-ca.pem``: the root CA certificate for clients' trust stores (the
    banner's commands point at it), rewritten at every start; a CA chain is public."""
    from gateway.pkix import pem_chain

    path = data_dir / ROOT_CA_FILE
    if chain:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pem_chain(chain[-1:]))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    return path


def _config_dir(config: Config) -> Path | None:
    return None if config.file == DEFAULTS else Path(config.file).resolve().parent


def _secret_ref(config: Config, reference: object) -> str | None:
    """A shell expression reading a ``file:``/``env:`` secret, or None."""
    if not isinstance(reference, str):
        return None
    kind, _, target = reference.partition(":")
    if kind == "env" and target:
        return f'"${target}"'
    if kind == "file" and target:
        path = Path(target)
        base = _config_dir(config) or Path.cwd()
        return f'"$(cat {shlex.quote(str(path if path.is_absolute() else base / path))})"'
    return None


def _site_secret(config: Config, name: str) -> Path | None:
    base = _config_dir(config)
    path = base / SECRETS_DIR / name if base else None
    return path if path is not None and path.is_file() else None


def _host(host: str) -> str:
    shown = {"0.0.0.0": "localhost", "::": "localhost", "": "localhost"}.get(host, host)  # noqa: S104
    return f"[{shown}]" if ":" in shown else shown


def _enabled(config: Config, name: str) -> Mapping[str, Any] | None:
    table = config.protocols.get(name, {})
    return table if table.get("enabled") is True else None


def acme_lines(config: Config, root: Path) -> list[Line]:
    """certbot, which (unlike lego 4.9) asks for an IP identifier (RFC 8738): 127.0.0.1 is
    the one name a client on the gateway's host can prove over http-01 with no DNS."""
    acme = _enabled(config, "acme")
    if acme is None:
        return []
    directory = f"{config.server.external_url.rstrip('/')}/acme/directory"
    port = acme.get("http01_port", 80)
    trust = f"REQUESTS_CA_BUNDLE={shlex.quote(str(root))} " if directory.startswith("https") else ""
    command = (
        f"{trust}certbot certonly --standalone --non-interactive --agree-tos "
        f"--register-unsafely-without-email --server {directory} --ip-address 127.0.0.1 "
        f"--http-01-port {port} --config-dir ./certbot --work-dir ./certbot "
        "--logs-dir ./certbot"
    )
    return [("ACME", directory), ("  certbot", command)]


def est_lines(config: Config, root: Path) -> list[Line]:
    est = _enabled(config, "est")
    if est is None:
        return []
    names = est.get("server_names") or ["localhost"]
    host = names[0] if isinstance(names, list) and names else _host(str(est.get("host", "")))
    base = f"https://{_host(str(host))}:{est.get('port', 8443)}/.well-known/est"
    password = _site_secret(config, EST_PASSWORD_FILE)
    user = f'{EST_USER}:"$(cat {shlex.quote(str(password))})"' if password else "USER:PASSWORD"
    command = (
        "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
        "-keyout device.key -subj /CN=est-device -outform DER | base64 | "
        f"curl -sSf --cacert {shlex.quote(str(root))} -u {user} "
        "-H 'Content-Type: application/pkcs10' --data-binary @- "
        f"{base}/simpleenroll | base64 -di | "
        "openssl pkcs7 -inform DER -print_certs -out device.pem"
    )
    if not password:
        command += "  # USER: certgate est user add"
    return [("EST", f"{base}/"), ("  curl+openssl", command)]


def scep_lines(config: Config, ra_fingerprints: Sequence[str]) -> list[Line]:
    """Every endpoint's URL, and a micromdm scepclient command. scepclient 2.1 encrypts with
    single DES and signs with SHA-1, so the command targets the first endpoint that accepts
    that (``legacy_des = true``), else the first endpoint."""
    scep = _enabled(config, "scep")
    if scep is None:
        return []
    endpoints = scep.get("endpoints")
    if not isinstance(endpoints, Mapping) or not endpoints:
        return [("SCEP", f"{config.server.device_url}/scep/<endpoint> (no endpoint configured)")]
    lines: list[Line] = []
    for name, endpoint in endpoints.items():
        legacy = isinstance(endpoint, Mapping) and endpoint.get("legacy_des") is True
        note = " (single DES, SHA-1: legacy clients)" if legacy else ""
        lines.append(("SCEP", f"{config.server.device_url}/scep/{name}{note}"))
    name, endpoint = next(
        ((n, e) for n, e in endpoints.items() if isinstance(e, Mapping) and e.get("legacy_des")),
        next(iter(endpoints.items())),
    )
    args = ["scepclient", "-server-url", f"{config.server.device_url}/scep/{name}"]
    challenge = endpoint.get("challenge", "static") if isinstance(endpoint, Mapping) else None
    secret = (
        _secret_ref(config, endpoint.get("challenge_password")) if challenge == "static" else None
    )
    if challenge == "otp":
        secret = "OTP"  # noqa: S105 (a placeholder)
    if secret:
        args += ["-challenge", secret]
    args += ["-private-key", "scep-device.key", "-certificate", "scep-device.pem"]
    args += ["-cn", "scep-device"]
    if ra_fingerprints:
        args += ["-ca-fingerprint", ra_fingerprints[0]]
    command = " ".join(args)
    if challenge == "otp":
        command += f"  # OTP: certgate scep otp create --endpoint {name}"
    return [*lines, ("  scepclient", command)]


def wstep_lines(config: Config) -> list[Line]:
    wstep = _enabled(config, "wstep")
    if wstep is None:
        return []
    path = str(wstep.get("path", "/wstep")).rstrip("/")
    base = f"{config.server.external_url.rstrip('/')}{path}"
    password = _site_secret(config, WSTEP_PASSWORD_FILE)
    who = (
        f"user {WSTEP_USER}, password in {password}"
        if password
        else "a user from `certgate wstep user add`"
    )
    note = (
        f"Windows: Get-Certificate -Url {base}/CEP -Template tls-server "
        "-SubjectName CN=host.example.test -DnsName host.example.test "
        f"-Credential (Get-Credential) -CertStoreLocation Cert:\\CurrentUser\\My ({who})"
    )
    return [("CEP", f"{base}/CEP"), ("CES", f"{base}/CES"), ("  client", note)]


def ra_hex(front_end_lines: Sequence[Line]) -> list[str]:
    """Bare hex SHA-256 of the SCEP RA certificates shown by the front-end (``scepclient
    -ca-fingerprint`` takes this form), the combined RA first."""
    return [
        value.split()[0].replace(":", "").lower()
        for label, value in front_end_lines
        if label.startswith("SCEP RA")
    ]


def client_lines(config: Config, root: Path, front_end_lines: Sequence[Line]) -> list[Line]:
    """Every enabled protocol's address and client command, in a fixed order."""
    return [
        *acme_lines(config, root),
        *est_lines(config, root),
        *scep_lines(config, ra_hex(front_end_lines)),
        *wstep_lines(config),
    ]
