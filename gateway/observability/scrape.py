"""What a scrape reads from shared state (:class:`gateway.observability.metrics.ScrapeState`):
requests pending in the store, the CA chains, and the certificates the listeners present.

Pending counts are one grouped ``SELECT`` over the ``(state, next_poll_at)`` index, so every
worker (and every gateway instance on one database) reports the same figure, right after a
restart too. A listener's certificate is read from its ``SSLContext`` by an in-memory TLS
handshake: that is the certificate clients get now (after a renewal or a SIGHUP reload), with no
file or attribute for each listener kind to keep in step.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.engine import Connection

from gateway.model import PendingReason, RequestState
from gateway.observability.metrics import CertificateExpiry, ScrapeState
from gateway.service import EnrollmentService
from gateway.store import SQLStore
from gateway.store.tables import requests

__all__ = [
    "ca_certificates",
    "listener_certificate",
    "listener_certificates",
    "pending_counts",
    "scrape_state",
]

log = logging.getLogger("certgate.metrics")


def _pending_rows(conn: Connection) -> dict[tuple[str, str], int]:
    stmt = (
        sa.select(requests.c.pending_reason, requests.c.template, sa.func.count())
        .where(requests.c.state == RequestState.PENDING.value)
        .group_by(requests.c.pending_reason, requests.c.template)
    )
    counts: dict[tuple[str, str], int] = {}
    for reason, template, count in conn.execute(stmt):
        key = (reason or PendingReason.CA.value, template)
        counts[key] = counts.get(key, 0) + int(count)
    return counts


async def pending_counts(store: SQLStore) -> dict[tuple[str, str], int] | None:
    """Pending requests by ``(reason, template)``; ``None`` if the store cannot be read."""
    try:
        return await store.read(_pending_rows)
    except Exception as exc:  # a scrape reports the outage (certgate_store_up 0), never a 500
        log.debug("metrics: pending requests not counted: %s", exc)
        return None


def _role(index: int, length: int) -> str:
    if index == 0:
        return "issuing"
    return "root" if index == length - 1 else f"intermediate-{index}"


async def ca_certificates(
    service: EnrollmentService, connectors: Iterable[str]
) -> list[CertificateExpiry]:
    """Each connector's chain, issuing CA first (the service caches the chains)."""
    found: list[CertificateExpiry] = []
    for name in connectors:
        try:
            chain = await service.ca_chain(name)
        except Exception as exc:  # a remote CA that cannot be asked is left out, not a 500
            log.debug("metrics: CA chain of %s not read: %s", name, exc)
            continue
        for index, certificate in enumerate(chain):
            role = _role(index, len(chain))
            found.append(CertificateExpiry("ca", name, role, certificate.not_valid_after_utc))
    return found


def listener_certificate(context: ssl.SSLContext) -> x509.Certificate | None:
    """The certificate a TLS server ``context`` presents, from a handshake in memory (a
    client that verifies nothing and sends no certificate); ``None`` if it presents none."""
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.check_hostname = False
    client_context.verify_mode = ssl.CERT_NONE
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(to_client, to_server)
    server = context.wrap_bio(server_in, server_out, server_side=True)
    for _ in range(8):  # a TLS 1.2 or 1.3 handshake takes at most four flights
        for side in (client, server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLError, OSError):
                break
        der = _peer_der(client)
        if der is not None:
            return x509.load_der_x509_certificate(der)
        server_in.write(to_server.read())
        to_client.write(server_out.read())
    return None


def _peer_der(client: ssl.SSLObject) -> bytes | None:
    try:
        return client.getpeercert(binary_form=True)
    except ValueError:  # the handshake is not done yet
        return None


def listener_certificates(
    contexts: Sequence[tuple[str, ssl.SSLContext]],
) -> list[CertificateExpiry]:
    """``(listener name, SSLContext)`` pairs -> their certificates' expiry."""
    found: list[CertificateExpiry] = []
    for name, context in contexts:
        try:
            certificate = listener_certificate(context)
        except Exception as exc:
            log.debug("metrics: certificate of listener %s not read: %s", name, exc)
            continue
        if certificate is not None:
            found.append(
                CertificateExpiry("listener", name, "server", certificate.not_valid_after_utc)
            )
    return found


async def scrape_state(
    *,
    now: datetime,
    store: SQLStore,
    service: EnrollmentService,
    connectors: Iterable[str],
    listeners: Sequence[tuple[str, ssl.SSLContext]] = (),
) -> ScrapeState:
    """Everything a scrape computes from shared state."""
    pending: Mapping[tuple[str, str], int] | None = await pending_counts(store)
    certificates = [
        *await ca_certificates(service, connectors),
        *listener_certificates(listeners),
    ]
    return ScrapeState(
        now=now,
        pending=pending,
        certificates=tuple(certificates),
        webhook_backlog=await webhook_backlog(store),
    )


async def webhook_backlog(store: SQLStore) -> dict[str, int] | None:
    """Webhook outbox rows pending, by receiver; ``None`` if the store cannot be read."""
    # Imported here: gateway.webhooks imports the observability package (its metrics).
    from gateway.webhooks.listing import backlog

    try:
        return await store.read(backlog)
    except Exception as exc:  # like pending_counts: the scrape reports, never fails
        log.debug("metrics: webhook backlog not counted: %s", exc)
        return None
