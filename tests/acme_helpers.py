"""A small ACME client (JWS signing with cryptography) and gateway configs for ACME tests."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from protocols.acme.messages import b64e
from tests.helpers import TEMPLATES, make_csr

EXTERNAL = "https://acme.test"


def acme_config(
    tmp: Path,
    acme: str = "",
    *,
    port: int = 0,
    external_url: str = EXTERNAL,
    templates: Path = TEMPLATES,
    testing: str = "",
    store_url: str = "",
) -> Path:
    """A gateway config with ``[acme]`` enabled (extra ``[acme]`` keys in ``acme``)."""
    cfg = tmp / "certgate.toml"
    store = f'[store]\nurl = "{store_url}"\n' if store_url else ""
    cfg.write_text(
        textwrap.dedent(
            f"""
            [server]
            host = "127.0.0.1"
            port = {port}
            access_log = false
            external_url = "{external_url}"
            [data]
            dir = "{tmp / "data"}"
            [policy]
            templates_dir = "{templates}"
            [poller]
            interval = "1s"
            lease = "2s"
            [connectors.local]
            type = "local"
            """
        )
        + store
        + '[acme]\nenabled = true\ndefault_template = "acme-tls"\n'
        + textwrap.dedent(acme)
        + (f"\n[testing]\nenabled = true\n{textwrap.dedent(testing)}" if testing else "")
    )
    return cfg


def testing_env() -> None:
    os.environ["CERTGATE_TESTING"] = "1"


def jwk_of(key: Any) -> dict[str, str]:
    pub = key.public_key()
    if isinstance(pub, ec.EllipticCurvePublicKey):
        nums = pub.public_numbers()
        size = (pub.curve.key_size + 7) // 8
        crv = {256: "P-256", 384: "P-384", 521: "P-521"}[pub.curve.key_size]
        return {
            "kty": "EC",
            "crv": crv,
            "x": b64e(nums.x.to_bytes(size, "big")),
            "y": b64e(nums.y.to_bytes(size, "big")),
        }
    if isinstance(pub, rsa.RSAPublicKey):
        nums = pub.public_numbers()
        return {
            "kty": "RSA",
            "n": b64e(nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")),
            "e": b64e(nums.e.to_bytes((nums.e.bit_length() + 7) // 8, "big")),
        }
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64e(raw)}


def alg_of(key: Any) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {256: "ES256", 384: "ES384", 521: "ES512"}[key.curve.key_size]
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    return "EdDSA"


def sign(key: Any, data: bytes, alg: str) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        h = {"ES256": hashes.SHA256(), "ES384": hashes.SHA384(), "ES512": hashes.SHA512()}[alg]
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(h)))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if isinstance(key, rsa.RSAPrivateKey):
        if alg == "PS256":
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            return key.sign(data, pss, hashes.SHA256())
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return key.sign(data)


def jws(
    key: Any, payload: Any, protected: dict[str, Any], *, alg: str | None = None
) -> dict[str, str]:
    """A flattened JWS; ``payload`` None -> POST-as-GET (empty string)."""
    header = {"alg": alg or alg_of(key), **protected}
    p64 = b64e(json.dumps(header).encode())
    body = "" if payload is None else b64e(json.dumps(payload).encode())
    sig = sign(key, f"{p64}.{body}".encode(), header["alg"])
    return {"protected": p64, "payload": body, "signature": b64e(sig)}


def eab_jws(kid: str, hmac_key: bytes, jwk: dict[str, str], url: str) -> dict[str, str]:
    p64 = b64e(json.dumps({"alg": "HS256", "kid": kid, "url": url}).encode())
    body = b64e(json.dumps(jwk).encode())
    mac = hmac.new(hmac_key, f"{p64}.{body}".encode(), hashlib.sha256).digest()
    return {"protected": p64, "payload": body, "signature": b64e(mac)}


@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def problem(self) -> str:
        assert self.headers.get("Content-Type", "").startswith("application/problem+json"), (
            self.status,
            self.body,
        )
        return str(self.json["type"]).rsplit(":", 1)[-1]


@dataclass
class Client:
    """Drives the gateway through an aiohttp TestClient; absolute URLs map to paths."""

    http: TestClient[Any, Any]
    key: Any = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    kid: str | None = None
    directory: dict[str, Any] = field(default_factory=dict)
    base: str = EXTERNAL

    def path(self, url: str) -> str:
        assert url.startswith(self.base), url
        return url[len(self.base) :]

    async def get_directory(self, path: str = "/acme/directory") -> dict[str, Any]:
        r = await self.http.get(path)
        assert r.status == 200, await r.text()
        self.directory = await r.json()
        return self.directory

    async def nonce(self) -> str:
        if not self.directory:
            await self.get_directory()
        r = await self.http.head(self.path(self.directory["newNonce"]))
        return r.headers["Replay-Nonce"]

    async def raw(
        self,
        url: str,
        body: Any,
        content_type: str = "application/jose+json",
        *,
        accept: str | None = None,
    ) -> Reply:
        """POST ``body``; ``accept``: an Accept header ("" sends none at all)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": content_type}
        skip: list[str] = []
        if accept:
            headers["Accept"] = accept
        elif accept == "":
            skip.append("Accept")
        r = await self.http.post(self.path(url), data=data, headers=headers, skip_auto_headers=skip)
        return Reply(r.status, r.headers, await r.read())

    async def post(
        self,
        url: str,
        payload: Any = None,
        *,
        key: Any = None,
        use_jwk: bool = False,
        nonce: str | None = None,
        extra: dict[str, Any] | None = None,
        alg: str | None = None,
        kid: str | None = None,
        accept: str | None = None,
    ) -> Reply:
        key = key or self.key
        protected: dict[str, Any] = {"nonce": nonce or await self.nonce(), "url": url}
        if use_jwk or (self.kid is None and kid is None):
            protected["jwk"] = jwk_of(key)
        else:
            protected["kid"] = kid or self.kid
        protected.update(extra or {})
        return await self.raw(url, jws(key, payload, protected, alg=alg), accept=accept)

    async def register(self, **payload: Any) -> Reply:
        if not self.directory:
            await self.get_directory()
        payload.setdefault("termsOfServiceAgreed", True)
        r = await self.post(self.directory["newAccount"], payload, use_jwk=True)
        if r.status in (200, 201):
            self.kid = r.headers["Location"]
        return r

    async def new_order(self, *names: str, **extra: Any) -> Reply:
        ids = [{"type": "ip" if n[0].isdigit() or ":" in n else "dns", "value": n} for n in names]
        return await self.post(self.directory["newOrder"], {"identifiers": ids, **extra})

    async def finalize(self, order: dict[str, Any], key: Any = None, **csr_args: Any) -> Reply:
        if not csr_args:
            dns = tuple(i["value"] for i in order["identifiers"] if i["type"] == "dns")
            ips = tuple(i["value"] for i in order["identifiers"] if i["type"] == "ip")
            csr_args = {"dns": dns, "ips": ips}
        csr = make_csr(key, **csr_args)
        der = csr.public_bytes(serialization.Encoding.DER)
        return await self.post(order["finalize"], {"csr": b64e(der)})

    async def issue(self, *names: str) -> tuple[dict[str, Any], Reply]:
        """A full flow with [testing] acme_always_valid: order, challenges, finalize."""
        order = await self.new_order(*names)
        assert order.status == 201, order.body
        for authz_url in order.json["authorizations"]:
            authz = (await self.post(authz_url)).json
            if authz["status"] == "valid":
                continue
            ch = next(
                c
                for c in authz["challenges"]
                if c["type"] != "dns-01" or len(authz["challenges"]) == 1
            )
            r = await self.post(ch["url"], {})
            assert r.status == 200, r.body
        fin = await self.finalize(order.json)
        return order.json | {"url": order.headers["Location"]}, fin

    async def wait_authz(self, url: str, attempts: int) -> dict[str, Any]:
        """The authorization once it has left ``pending``, polled every 50 ms."""
        for _ in range(attempts):
            authz: dict[str, Any] = (await self.post(url)).json
            if authz["status"] != "pending":
                return authz
            await asyncio.sleep(0.05)
        raise AssertionError("authorization stayed pending")


# --- real processes: certgate serve, pebble-challtestsrv ---------------------------------------

import subprocess  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402

from tests.gateway_process import gateway_process  # noqa: E402
from tests.helpers import free_port, http_ok, require_tool, stop_process  # noqa: E402


@contextmanager
def serving(
    cfg: Path, port: int, *args: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """``certgate serve`` on ``port`` until the block ends (log in <cfg dir>/serve-<port>.log),
    through :func:`tests.gateway_process.gateway_process`."""
    with gateway_process(
        cfg,
        *args,
        port=port,
        env={"CERTGATE_TESTING": "1", **(env or {})},
        ready=lambda p: http_ok(f"http://127.0.0.1:{p}/acme/directory"),
        append_log=True,
    ) as gateway:
        yield gateway.proc


@dataclass
class ChallTestSrv:
    dns_port: int
    mgmt_port: int

    def call(self, path: str, body: dict[str, Any]) -> None:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.mgmt_port}{path}",
            data=json.dumps(body).encode(),
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 200

    def set_txt(self, host: str, value: str) -> None:
        self.call("/set-txt", {"host": host if host.endswith(".") else host + ".", "value": value})

    def add_caa(self, host: str, *policies: tuple[str, str]) -> None:
        """CAA records (flags 0: challtestsrv cannot set the critical bit) for ``host``."""
        body = [{"tag": tag, "value": value} for tag, value in policies]
        self.call("/add-caa", {"host": host, "policies": body})

    def clear_caa(self, host: str) -> None:
        self.call("/clear-caa", {"host": host})

    def set_servfail(self, host: str) -> None:
        """Every query for ``host`` gets SERVFAIL."""
        self.call("/set-servfail", {"host": host})


@contextmanager
def challtestsrv() -> Iterator[ChallTestSrv]:
    """pebble-challtestsrv as a DNS server on loopback: every A query -> 127.0.0.1."""
    exe = require_tool("pebble-challtestsrv")
    dns_port, mgmt_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            exe,
            "-dns01",
            f"127.0.0.1:{dns_port}",
            "-management",
            f"127.0.0.1:{mgmt_port}",
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "",
            "-defaultIPv4",
            "127.0.0.1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        srv = ChallTestSrv(dns_port, mgmt_port)
        deadline = time.monotonic() + 10
        while True:
            try:
                srv.call("/clear-txt", {"host": "probe.invalid."})
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError("pebble-challtestsrv did not start") from None
                time.sleep(0.1)
        yield srv
    finally:
        stop_process(proc)


class RealHTTP:
    """The part of aiohttp's TestClient that :class:`Client` uses, over a real socket; the
    gateway instance can be switched (``port``) between requests."""

    def __init__(self, port: int) -> None:
        import aiohttp

        self.port = port
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))

    def _url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def get(self, path: str, **kw: Any) -> Any:
        return await self.session.get(self._url(path), **kw)

    async def head(self, path: str, **kw: Any) -> Any:
        return await self.session.head(self._url(path), **kw)

    async def post(self, path: str, **kw: Any) -> Any:
        return await self.session.post(self._url(path), **kw)

    async def close(self) -> None:
        await self.session.close()
