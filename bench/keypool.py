"""The client keys of bench/peers.py's drivers: a pool reused round-robin (issue #18: "the
generic drivers reuse a pool of client keys by default").

Why a pool: making keys is the driver's work, not the server's (an RSA-2048 key for SCEP costs
tens of milliseconds), and a fleet's devices keep their keys. Why it still measures issuance:
every request asks for a name no earlier request on that server asked for (``tag`` makes the
names of each batch new), so no request repeats another one and each must be a real issuance,
which bench/peers_common.py's server-side count checks after every cell. ``size`` 0 gives a
fresh key per request (the drivers' behaviour before the pool).

What a reused key costs a server is part of the figure: certgate reads a key's earlier
requests to tell a retry from a new request (EST: the key and client are the transaction;
docs/performance.md has the cost).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

#: Keys per pool unless a driver is told otherwise (``bench/peers.py --key-pool``).
DEFAULT_SIZE = 256


class KeyPool:
    """``size`` keys made by ``make`` on first use, handed out round-robin (0: a fresh key
    each time)."""

    def __init__(self, make: Callable[[], Any], size: int = DEFAULT_SIZE) -> None:
        self._make, self.size = make, size
        self._keys: list[Any] = []
        self._next = itertools.count()

    def key(self) -> Any:
        if self.size <= 0:
            return self._make()
        i = next(self._next) % self.size
        while len(self._keys) <= i:
            self._keys.append(self._make())
        return self._keys[i]


def p256_pool(size: int = DEFAULT_SIZE) -> KeyPool:
    return KeyPool(lambda: ec.generate_private_key(ec.SECP256R1()), size)


def rsa2048_pool(size: int = DEFAULT_SIZE) -> KeyPool:
    return KeyPool(lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), size)


def batch_tag() -> str:
    """A label no earlier batch used: names built with it are new on every server."""
    return uuid.uuid4().hex[:10]


def host_csr(name: str, key: Any) -> x509.CertificateSigningRequest:
    """A TLS-server CSR for ``name`` (CN and SAN), signed with ``key``."""
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )


def host_csrs(n: int, pool: KeyPool) -> list[x509.CertificateSigningRequest]:
    """``n`` TLS-server CSRs (``h<i>-<tag>.bench.example.test``), keys from ``pool``: every
    CSR names a host no earlier batch named."""
    tag = batch_tag()
    return [host_csr(f"h{i}-{tag}.bench.example.test", pool.key()) for i in range(n)]
