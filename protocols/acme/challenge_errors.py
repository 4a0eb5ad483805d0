"""Challenge failures as RFC 8555 §6.7 problems that say what went wrong where.

Every validation failure is one of four types (RFC 8555 §6.7, §8):

* ``dns``: a lookup failed (NXDOMAIN, no record, SERVFAIL, REFUSED, timeout), naming the
  query and the resolver that answered;
* ``connection``: no usable connection to the address the name resolved to (refused, reset,
  unreachable, timeout, an HTTP answer that is not HTTP), naming ``address:port``;
* ``tls``: the TLS handshake failed or did not negotiate ``acme-tls/1`` (RFC 8737 §3);
* ``incorrectResponse``: an answer came but does not meet the challenge's requirements (wrong
  key authorization, an HTTP status other than 200, a tls-alpn-01 certificate that breaks
  RFC 8737 §3).

The detail is shown to the ACME client (and by it to a person), so it names the address,
port and reason, e.g. ``connection refused 127.0.0.1:80``, but never anything secret.
"""

from __future__ import annotations

import errno
import os
from typing import Any

import dns.exception
import dns.resolver

from protocols.acme.messages import Problem

#: errno -> the words a person expects in an error message.
_REASONS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.ETIMEDOUT: "timeout",
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ECONNABORTED: "connection aborted",
}


class Failed(Exception):
    """A validation failure, carrying the challenge ``error`` problem."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.problem = Problem(kind, detail, 400)


def endpoint(address: str, port: int) -> str:
    """``127.0.0.1:80`` / ``[2001:db8::1]:443``."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def endpoints(addresses: list[str], port: int) -> str:
    """``127.0.0.1:80, [2001:db8::1]:80``; ``port 80`` when no address is known."""
    return ", ".join(endpoint(a, port) for a in addresses) or f"port {port}"


def os_reason(exc: BaseException) -> str:
    """The reason a socket operation failed, in words (``connection refused``)."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno is not None:
        return _REASONS.get(exc.errno) or os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


def connection_failed(exc: BaseException, addresses: list[str], port: int, what: str) -> Failed:
    """``connection`` problem: ``<reason> <address:port>[, ...] (<what>)``."""
    return Failed("connection", f"{os_reason(exc)} {endpoints(addresses, port)} ({what})")


def dns_failed(exc: dns.exception.DNSException, name: str, rdtype: str, server: str) -> Failed:
    """``dns`` problem for a failed ``rdtype`` lookup of ``name`` through ``server``
    (``"system resolver"`` or ``host:port``): NXDOMAIN, no record, the rcode a server
    answered (SERVFAIL, REFUSED), or a timeout."""
    if isinstance(exc, dns.resolver.NXDOMAIN):
        return Failed("dns", f"NXDOMAIN looking up {rdtype} for {name} (resolver {server})")
    if isinstance(exc, dns.resolver.NoAnswer):
        return Failed("dns", f"no {rdtype} record at {name} (resolver {server})")
    if isinstance(exc, dns.exception.Timeout):
        return Failed("dns", f"DNS timeout looking up {rdtype} for {name} (resolver {server})")
    if isinstance(exc, dns.resolver.NoNameservers):
        answers = _server_answers(exc.kwargs.get("errors") or [])
        said = "; ".join(answers) or "no nameserver answered"
        return Failed("dns", f"DNS {said} looking up {rdtype} for {name}")
    return Failed("dns", f"DNS lookup of {rdtype} for {name} failed: {type(exc).__name__}")


def _server_answers(errors: list[Any]) -> list[str]:
    """``SERVFAIL from 127.0.0.1:53`` for each distinct (answer, server) in dnspython's
    error trace ``(server, tcp, port, error-or-rcode-text, response)``."""
    seen: list[str] = []
    for item in errors:
        try:
            server, _, port, error = item[0], item[1], item[2], item[3]
        except (TypeError, IndexError):
            continue
        said = error if isinstance(error, str) else (os_reason(error) if error else "error")
        # dnspython names a server "Do53:127.0.0.1@53" (2.6+) or "127.0.0.1" (older).
        address = str(server).split(":", 1)[1] if str(server).startswith("Do") else str(server)
        text = f"{said} from {endpoint(address.rsplit('@', 1)[0], int(port))}"
        if text not in seen:
            seen.append(text)
    return seen
