"""``LocalCA``: the embedded CA as a :class:`gateway.ports.CAConnector` (+ ``CRLCapable``,
``OCSPCapable``).

It always answers at once (MS-WCCE disposition "issued" or "denied", never "under
submission"). ``submit`` is idempotent per request id through the issuance journal: the
journal's ``put`` is the commit point, so a certificate signed but not journaled (a crash in
between) was never handed out, and a resubmission returns what the journal holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from cryptography import x509

from backends.local_ca.bootstrap import CAMaterial, ca_directory, open_ca
from backends.local_ca.issuer import Issuer
from backends.local_ca.ocsp import OCSPResponder, responder_name
from backends.local_ca.settings import LocalCASettings, parse_settings
from gateway.errors import CAUnavailable, ConnectorError
from gateway.model import (
    CertificateRecord,
    ConnectorOutcome,
    Denied,
    IssuancePlan,
    Issued,
    RevocationReason,
)
from gateway.ports import ConnectorContext, IssuanceJournal, OCSPSettings, OCSPSigner

_T = TypeVar("_T")
#: Where the gateway serves this CA's material (gateway.server.app), under its publication URL.
ISSUING_PATH = "/ca/issuing.crt"
ROOT_PATH = "/ca/root.pem"
CRL_PATH = "/ca/crl"
_MAX_SERIAL = 2**159  # RFC 5280 §4.1.2.2: at most 20 octets, positive


class LocalCA:
    """An embedded two-level CA kept encrypted in the data directory.

    The constructor validates the settings completely (``ConfigError`` naming
    ``connectors.<name>.<key>``); :meth:`start` creates the CA on first start, or imports the
    configured one, and loads the issuing key.
    """

    def __init__(self, context: ConnectorContext) -> None:
        self.name = context.name
        self.settings: LocalCASettings = parse_settings(
            context.name, context.settings, context.config_file
        )
        self._data_dir = context.data_dir
        self._publication_url = context.publication_url
        self._startup_warnings = context.startup_warnings
        self._journal: IssuanceJournal = context.journal
        self._material: CAMaterial | None = None
        self._issuer: Issuer | None = None
        self._ocsp_settings: OCSPSettings | None = context.ocsp
        self._ocsp: OCSPResponder | None = None

    @staticmethod
    def missing_material(data_dir: Path, name: str) -> str | None:
        """What connector ``name`` lacks in ``data_dir`` for a gateway that already exists, or
        ``None``: its CA (``chain.pem`` completes a CA directory). The operator CLI, which finds
        this class by entry point only, asks before every command but ``init`` and ``serve``,
        since :meth:`start` on a mistyped ``--data`` would create a new CA there."""
        directory = ca_directory(data_dir, name)
        if (directory / "chain.pem").is_file():
            return None
        return f"no local CA for connector {name!r} ({directory})"

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Create or load the CA. Key generation and decryption run off the event loop; a
        wrong passphrase raises :class:`backends.local_ca.bootstrap.WrongCAPassphrase`."""
        if self._issuer is not None:
            return
        # A CA created now names where its root is published, so a client holding only the
        # issuing CA (cepces FETCH-ROOTS starts from the one CEP lists) can reach the root.
        # Only with the default AIA: configured aia_urls name the issuing CA, not the root.
        root_urls = self._published(None, ROOT_PATH) if self.settings.aia_urls is None else ()
        material = await asyncio.to_thread(
            open_ca, self.settings, self._data_dir, root_urls, warn=self._startup_warnings
        )
        self._material = material
        ocsp = self._ocsp_settings
        self._issuer = Issuer(
            material.signer,
            material.chain,
            crl_urls=self._published(self.settings.crl_urls, CRL_PATH),
            aia_urls=self._published(self.settings.aia_urls, ISSUING_PATH),
            ocsp_urls=(ocsp.url,) if ocsp is not None and ocsp.url else (),
            crl_validity=self.settings.crl_validity,
        )
        if ocsp is not None:
            self._ocsp = OCSPResponder(
                ocsp,
                material.signer,
                material.chain,
                material.keys,
                material.directory,
                self.settings.key_algorithm,
                responder_name(self.settings.organization, self.settings.common_name_prefix),
            )

    def _published(self, configured: tuple[str, ...] | None, path: str) -> tuple[str, ...]:
        """The configured URLs; unset, the gateway's own ``path`` when it publishes this CA
        (RFC 5280 §4.2.1.13 CRL distribution point, §4.2.2.1 caIssuers); ``[]``: none."""
        if configured is not None:
            return configured
        return (f"{self._publication_url}{path}",) if self._publication_url else ()

    async def close(self) -> None:
        """Drop the key (the signer forgets it, so stray references cannot sign either)."""
        if self._ocsp is not None:
            self._ocsp.close()
            self._ocsp = None
        if self._material is not None:
            self._material.signer.close()
        self._material = None
        self._issuer = None

    def _running(self) -> Issuer:
        if self._issuer is None:
            raise CAUnavailable(f"local CA {self.name} is not started (key not loaded)")
        return self._issuer

    # -- CAConnector --------------------------------------------------------------------------

    #: In-process signing: the service may sign first and store request + certificate in one
    #: transaction (gateway.ports.InProcessSigner).
    atomic_issuance = True

    def sign(self, plan: IssuancePlan) -> Issued | Denied:
        """Sign ``plan`` in memory, journaling nothing: the caller stores the certificate
        atomically with its request (the store is then the CA database)."""
        issuer = self._running()
        result = issuer.issue(plan, datetime.now(UTC))
        if isinstance(result, Denied):
            return result
        certificate, der = result
        return Issued(certificate, issuer.chain, der)

    async def submit(self, plan: IssuancePlan) -> ConnectorOutcome:
        """Issue ``plan`` once per ``plan.request_id``.

        Sign first, then journal: the journal keeps the first certificate recorded for a
        request id and returns it to every later caller, so a resubmission after a crash (or a
        concurrent duplicate) gets the certificate already issued, and the fresh signature is
        discarded unseen. This saves a journal read on every first submission (the common
        case). Signing runs inline on the event loop: well under 100 µs of CPU for P-256, less
        than a thread hop would cost."""
        issuer = self._running()
        result = issuer.issue(plan, datetime.now(UTC))
        if isinstance(result, Denied):
            return result
        certificate, der = result
        stored = await _journaled(self._journal.put(plan.request_id, der))
        if stored != der:
            certificate = _certificate(stored, plan.request_id)
        return Issued(certificate, issuer.chain, stored)

    async def poll(self, ca_request_id: str) -> ConnectorOutcome:
        """The local CA never puts a request under submission, so there is nothing to poll."""
        raise ConnectorError("local CA has no pending requests")

    async def revoke(self, serial: int, reason: RevocationReason, when: datetime) -> None:
        """Accept a revocation (RFC 5280 §5.3.1 reason). Nothing is stored here: the
        inventory is the revocation database and :meth:`crl` is generated from it."""
        if isinstance(serial, bool) or not isinstance(serial, int):
            raise ConnectorError(f"serial must be an integer, got {type(serial).__name__}")
        if not 0 < serial < _MAX_SERIAL:
            raise ConnectorError(f"serial {serial:#x} is not a valid certificate serial")
        if not isinstance(reason, RevocationReason):
            raise ConnectorError(f"unknown revocation reason {reason!r}")
        if reason is RevocationReason.REMOVE_FROM_CRL:
            raise ConnectorError("removeFromCRL is only meaningful in delta CRLs")
        if not isinstance(when, datetime) or when.tzinfo is None:
            raise ConnectorError("the revocation time must be a timezone-aware datetime")

    async def ca_chain(self) -> tuple[x509.Certificate, ...]:
        """Issuing CA first, root last (just the issuing CA if an imported CA is a root)."""
        return self._running().chain

    async def check(self) -> None:
        """Raise :class:`CAUnavailable` unless the key is loaded and the issuing CA valid."""
        self._running().check(datetime.now(UTC))

    # -- CRLCapable ---------------------------------------------------------------------------

    async def crl(self, revoked: Sequence[CertificateRecord]) -> bytes:
        """A DER CRL (RFC 5280 §5) of the revoked records this CA issued."""
        return self._running().crl(revoked, datetime.now(UTC))

    # -- OCSPCapable --------------------------------------------------------------------------

    async def ocsp_signer(self) -> OCSPSigner | None:
        """Who signs OCSP responses about this CA's certificates (RFC 6960 §4.2.2.2): the
        delegated responder certificate, renewed here when due, or the CA itself; ``None``
        when the gateway runs no OCSP responder for this CA."""
        self._running()
        if self._ocsp is None:
            return None
        return await self._ocsp.signer()


async def _journaled(call: Awaitable[_T]) -> _T:
    """Await a journal (store) call; its failures are transient for the connector's caller."""
    try:
        return await call
    except (CAUnavailable, ConnectorError):
        raise
    except Exception as exc:
        # The detail reaches clients: name the failure's type, not its text (it may hold a DSN).
        raise CAUnavailable(f"issuance journal unavailable ({type(exc).__name__})") from exc


def _certificate(der: bytes, request_id: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        raise ConnectorError(f"the journal holds no valid certificate for {request_id}") from None
