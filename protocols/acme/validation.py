"""Challenge validation (RFC 8555 §8.3 http-01, §8.4 dns-01; RFC 8737 tls-alpn-01; RFC 8738).

Validation runs in the background after the client's ``{}``; the challenge row carries a lease
so that a challenge left ``processing`` by a stopped instance is validated again by whichever
instance's sweeper sees the lease expire. Names are resolved through ``[acme] dns_resolver``
when set (tests point it at pebble-challtestsrv), else the system resolver. When
``caa_identities`` is set, a dns identifier whose challenge succeeded is also checked against
CAA (RFC 8659) before the challenge becomes valid; a refusal makes it invalid with a ``caa``
error.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
import dns.asyncresolver
import dns.exception
import dns.resolver
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography import x509

from protocols.acme import caa, state
from protocols.acme import jws as J
from protocols.acme.challenge_errors import (
    Failed,
    connection_failed,
    dns_failed,
    endpoint,
    endpoints,
)
from protocols.acme.challenge_values import (
    ACME_IDENTIFIER_OID,
    dns01_value,
    key_authorization,
    reverse_dns_name,
    tls_alpn01_expected,
)
from protocols.acme.messages import Problem

if TYPE_CHECKING:
    from protocols.acme.base import Acme

log = logging.getLogger("certgate.acme.validation")
#: Seconds clients are told to wait before polling a processing challenge/authz (§8.2).
RETRY_AFTER = 1
SWEEP_INTERVAL = 2.0
#: How long the challenge POST waits for a validation to finish, so that it can answer the
#: final status: two widely used clients sleep a fixed 5 s after the POST whatever
#: Retry-After says, and a local validation usually takes milliseconds.
ANSWER_BUDGET = 0.5


def resolver_name(acme: Acme) -> str:
    """Who answers our DNS queries, for error details."""
    if acme.settings.dns_resolver is None:
        return "system resolver"
    return endpoint(*acme.settings.dns_resolver)


def dns_resolver(acme: Acme) -> dns.asyncresolver.Resolver:
    """The resolver for dns-01, CAA and (when configured) A/AAAA lookups."""
    resolver = dns.asyncresolver.Resolver(configure=acme.settings.dns_resolver is None)
    if acme.settings.dns_resolver is not None:
        host, port = acme.settings.dns_resolver
        resolver.nameservers = [host]
        resolver.port = port
    resolver.lifetime = acme.settings.validation_timeout
    return resolver


async def resolve(acme: Acme, name: str) -> list[str]:
    """IPv4 then IPv6 addresses of ``name`` (an IP literal resolves to itself)."""
    try:
        return [str(ipaddress.ip_address(name))]
    except ValueError:
        pass
    if acme.settings.dns_resolver is None:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except OSError as exc:  # socket.gaierror: NXDOMAIN, SERVFAIL, no address
            reason = exc.strerror or type(exc).__name__
            raise Failed("dns", f"looking up {name}: {reason} (system resolver)") from None
        return [str(info[4][0]) for info in infos]
    resolver = dns_resolver(acme)
    last: dns.exception.DNSException | None = None
    for rdtype in ("A", "AAAA"):
        try:
            answer = await resolver.resolve(name, rdtype)
            return [r.to_text() for r in answer]
        except dns.resolver.NXDOMAIN as exc:
            raise dns_failed(exc, name, "A/AAAA", resolver_name(acme)) from None
        except dns.resolver.NoAnswer as exc:
            last = exc
            continue
        except dns.exception.DNSException as exc:
            raise dns_failed(exc, name, rdtype, resolver_name(acme)) from None
    assert last is not None
    raise dns_failed(last, name, "A/AAAA", resolver_name(acme))


class _Resolver(AbstractResolver):
    """aiohttp resolver through :func:`resolve` (so redirects use the same DNS)."""

    def __init__(self, acme: Acme, host: str, port: int) -> None:
        self.acme = acme
        #: What each host name resolved to, and the last host and port aiohttp connected to
        #: (IP literals are never resolved): for error details.
        self.seen: dict[str, list[str]] = {}
        self.last = (host, port)

    def addresses(self, host: str) -> list[str]:
        return self.seen.get(host) or [host.strip("[]")]

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[ResolveResult]:
        self.last = (host, port)
        addresses = await resolve(self.acme, host)
        self.seen[host] = addresses
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                proto=0,
                flags=0,
            )
            for a in addresses
        ]

    async def close(self) -> None:
        return None


async def http01(acme: Acme, ident: state.Authz, token: str, key_auth: str) -> None:
    """RFC 8555 §8.3: GET http://<name>:<port>/.well-known/acme-challenge/<token>; redirects
    followed; the body, trailing whitespace ignored, must equal the key authorization."""
    host = f"[{ident.value}]" if ident.type == "ip" and ":" in ident.value else ident.value
    port = acme.settings.http01_port
    url = f"http://{host}:{port}/.well-known/acme-challenge/{token}"
    timeout = aiohttp.ClientTimeout(total=acme.settings.validation_timeout)
    resolver = _Resolver(acme, ident.value, port)
    connector = aiohttp.TCPConnector(resolver=resolver, force_close=True)
    what = f"fetching {url}"
    try:
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
            session.get(url, max_redirects=10) as response,
        ):
            body = await response.content.read(8192)
            status = response.status
    except Failed:
        raise
    except aiohttp.ClientSSLError as exc:  # a redirect to https
        where = endpoint(exc.host, exc.port or 443)
        raise Failed("tls", f"TLS error from {where} ({what}): {exc.os_error}") from None
    except aiohttp.ClientConnectorError as exc:
        addresses = resolver.addresses(exc.host)
        raise connection_failed(exc.os_error, addresses, exc.port or port, what) from None
    except aiohttp.TooManyRedirects:
        raise Failed("connection", f"too many redirects ({what})") from None
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        last_host, last_port = resolver.last
        if not isinstance(exc, TimeoutError | OSError):
            exc = OSError(f"{type(exc).__name__}: {exc}".rstrip(": "))
        raise connection_failed(exc, resolver.addresses(last_host), last_port, what) from None
    where = endpoints(resolver.addresses(resolver.last[0]), resolver.last[1])
    if status != 200:
        raise Failed("incorrectResponse", f"HTTP {status} from {where} ({what})")
    text = body.decode("utf-8", "replace").rstrip()
    if text != key_auth:
        # The body itself is not echoed: redirects may lead the fetch to internal pages, and the
        # error goes to whoever holds the ACME account.
        raise Failed(
            "incorrectResponse",
            f"the response from {where} ({what}) is not the key authorization ({len(body)} bytes)",
        )


async def dns01(acme: Acme, ident: state.Authz, key_auth: str) -> None:
    """RFC 8555 §8.4: a TXT record at ``_acme-challenge.<name>`` equal to the digest."""
    name = f"_acme-challenge.{ident.value}"
    expected = dns01_value(key_auth)
    try:
        answer = await dns_resolver(acme).resolve(name, "TXT")
    except dns.resolver.NXDOMAIN:
        raise Failed("dns", f"no TXT record at {name} (NXDOMAIN)") from None
    except dns.exception.DNSException as exc:
        raise dns_failed(exc, name, "TXT", resolver_name(acme)) from None
    values = [b"".join(r.strings).decode("ascii", "replace") for r in answer]
    if expected not in values:
        raise Failed(
            "incorrectResponse",
            f"none of the {len(values)} TXT record(s) at {name} matches the key authorization",
        )


async def tls_alpn01(acme: Acme, ident: state.Authz, key_auth: str) -> None:
    """RFC 8737 §3: a TLS >= 1.2 handshake offering only ALPN ``acme-tls/1`` with SNI the
    name (an IP's reverse name, RFC 8738 §6); the certificate has exactly one SAN, the
    identifier, and a critical acmeIdentifier extension holding SHA-256(keyAuthorization)."""
    sni = reverse_dns_name(ident.value) if ident.type == "ip" else ident.value
    address = (await resolve(acme, ident.value))[0]
    port = acme.settings.tls_alpn01_port
    where = endpoint(address, port)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the certificate is self-signed by design
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["acme-tls/1"])
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(address, port, ssl=ctx, server_hostname=sni),
            acme.settings.validation_timeout,
        )
    except ssl.SSLError as exc:
        reason = exc.reason or exc.strerror or type(exc).__name__
        raise Failed("tls", f"TLS handshake with {where} (SNI {sni}) failed: {reason}") from None
    except (OSError, TimeoutError) as exc:
        raise connection_failed(exc, [address], port, f"tls-alpn-01 for {ident.value}") from None
    try:
        tls: Any = writer.get_extra_info("ssl_object")
        alpn = tls.selected_alpn_protocol()
        der = tls.getpeercert(binary_form=True)
    finally:
        writer.close()
    if alpn != "acme-tls/1":
        raise Failed("tls", f"{where} negotiated ALPN {alpn!r}, not acme-tls/1")
    check_alpn_certificate(der, ident, key_auth, where)


def check_alpn_certificate(
    der: bytes | None, ident: state.Authz, key_auth: str, where: str = "the server"
) -> None:
    """The RFC 8737 §3 certificate checks (pure); a certificate that fails them is an
    ``incorrectResponse`` (RFC 8555 §6.7) naming ``where`` it came from."""
    try:
        cert = x509.load_der_x509_certificate(der or b"")
        sans = list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        ext = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    except (ValueError, x509.InvalidVersion, x509.ExtensionNotFound):
        raise Failed(
            "incorrectResponse",
            f"the certificate from {where} is unreadable or lacks a SAN or acmeIdentifier",
        ) from None
    want = (
        x509.IPAddress(ipaddress.ip_address(ident.value))
        if ident.type == "ip"
        else x509.DNSName(ident.value)
    )
    if len(sans) != 1 or sans[0] != want:
        raise Failed(
            "incorrectResponse",
            f"the certificate from {where} must have exactly one SAN, {ident.value}",
        )
    if not ext.critical:
        raise Failed(
            "incorrectResponse",
            f"the acmeIdentifier extension of the certificate from {where} must be critical",
        )
    value = ext.value.value if isinstance(ext.value, x509.UnrecognizedExtension) else b""
    if value != tls_alpn01_expected(key_auth):
        raise Failed(
            "incorrectResponse",
            f"the acmeIdentifier of the certificate from {where} does not match the key "
            "authorization",
        )


async def validate(
    acme: Acme, ch: state.Challenge, authz: state.Authz, jwk: dict[str, Any]
) -> None:
    key_auth = key_authorization(ch.token, J.thumbprint(jwk))
    if ch.type == "http-01":
        await http01(acme, authz, ch.token, key_auth)
    elif ch.type == "dns-01":
        await dns01(acme, authz, key_auth)
    elif ch.type == "tls-alpn-01":
        await tls_alpn01(acme, authz, key_auth)
    else:
        raise Failed("malformed", f"unknown challenge type {ch.type}")


async def validate_in_background(
    acme: Acme, challenge_id: str, account: state.Account | None
) -> None:
    """Validate one ``processing`` challenge and record the result (never raises)."""
    try:
        found = await acme.store.read(acme.repo.get_challenge, challenge_id)
        if found is None or found[0].status != "processing":
            return
        ch, authz = found
        if account is None:
            account = await acme.store.read(acme.repo.get_account, authz.account_id)
            if account is None:
                return
        ok, error = True, None
        try:
            await asyncio.wait_for(
                validate(acme, ch, authz, account.jwk), acme.settings.validation_timeout + 1
            )
        except Failed as failure:
            ok, error = False, failure.problem.document()
        except TimeoutError:
            limit = acme.settings.validation_timeout + 1
            detail = f"{ch.type} validation of {authz.value} timed out after {limit:g} s"
            ok, error = False, Problem("connection", detail).document()
        if ok and authz.type == "dns" and acme.settings.caa_identities:
            error = await check_caa(acme, authz, ch.type, account.id)
            ok = error is None
        now = acme.now()
        until = now + timedelta(seconds=acme.settings.valid_authz_lifetime)
        await acme.store.write(acme.repo.finish_challenge, ch.id, authz.id, ok, error, now, until)
    except asyncio.CancelledError:
        raise
    except Exception:  # the lease expires and another sweep retries
        log.exception("validating challenge %s failed", challenge_id)


async def check_caa(
    acme: Acme, authz: state.Authz, method: str | None, account_id: str
) -> dict[str, Any] | None:
    """CAA for one dns authorization (RFC 8659, RFC 8657): ``None`` when this CA may issue,
    else the ``caa`` problem document (never raises)."""
    shown = f"*.{authz.value}" if authz.wildcard else authz.value
    try:
        await asyncio.wait_for(
            caa.check(
                dns_resolver(acme),
                authz.value,
                wildcard=authz.wildcard,
                identities=acme.settings.caa_identities,
                account_uri=acme.url("acct", account_id),
                method=method,
            ),
            acme.settings.validation_timeout + 1,
        )
    except caa.CaaRefused as refused:
        return Problem.caa(str(refused)).document()
    except TimeoutError:
        return Problem.caa(f"timeout looking up CAA for {shown}").document()
    return None


async def sweep(acme: Acme, stop: asyncio.Event) -> None:
    """Pick up challenges whose validation lease expired (restart, other instance died);
    purge expired nonces now and then."""
    rounds = 0
    while not stop.is_set():
        try:
            now = acme.now()
            if rounds % 30 == 0:  # about once a minute
                await acme.store.write(acme.repo.purge_nonces, now)
            rounds += 1
            lease = now + timedelta(seconds=acme.settings.validation_timeout * 3)
            for cid in await acme.store.write(acme.repo.claim_stale_challenges, now, lease):
                acme.spawn(validate_in_background(acme, cid, None))
        except Exception:
            log.exception("challenge sweep failed")
        try:
            await asyncio.wait_for(stop.wait(), SWEEP_INTERVAL)
        except TimeoutError:
            pass
