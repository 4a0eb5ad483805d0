"""What the SCEP handlers share at run time (built once by :mod:`protocols.scep.setup`)."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from protocols.scep.auth import Authorizer
from protocols.scep.config import Endpoint, ScepSettings
from protocols.scep.ports import Clock, Enrollment, Records
from protocols.scep.ra import NdesPair, RegistrationAuthority


@dataclass
class Scep:
    """Settings, the RA identity, the ports of :mod:`protocols.scep.ports` (enrollment,
    records, clock), and the challenge authorizer."""

    settings: ScepSettings
    ra: RegistrationAuthority
    service: Enrollment
    store: Records
    clock: Clock
    authorizer: Authorizer
    next_ca: tuple[x509.Certificate, ...] = ()
    ndes: NdesPair | None = None  # set when an endpoint has ra_mode = "ndes-pair"

    def endpoint(self, name: str) -> Endpoint | None:
        return self.settings.endpoints.get(name)

    @property
    def published(self) -> tuple[x509.Certificate, ...]:
        """GetCACert's certificates: the RA certificate, then the CA chain (RFC 8894 §4.2.1.2)."""
        return (self.ra.certificate, *self.ra.ca_chain)

    def _pair(self, endpoint: Endpoint) -> NdesPair | None:
        return self.ndes if endpoint.ra_mode == "ndes-pair" else None

    def published_for(self, endpoint: Endpoint) -> tuple[x509.Certificate, ...]:
        """GetCACert for ``endpoint``: with the NDES pair, the signature and encryption RA
        certificates then the CA chain (RFC 8894 §4.2.1.2; clients tell them apart by KU)."""
        pair = self._pair(endpoint)
        if pair is None:
            return self.published
        return (pair.signing.certificate, pair.encryption.certificate, *self.ra.ca_chain)

    def signing(self, endpoint: Endpoint) -> RegistrationAuthority:
        """The identity that signs ``endpoint``'s CertReps."""
        pair = self._pair(endpoint)
        return pair.signing if pair is not None else self.ra

    def decrypting(
        self, endpoint: Endpoint
    ) -> tuple[tuple[x509.Certificate, rsa.RSAPrivateKey], ...]:
        """Certificates (with keys) a request to ``endpoint`` may be encrypted to: the NDES
        encryption certificate first, then the combined RA (a client configured before the
        endpoint switched to the pair still gets through)."""
        pair = self._pair(endpoint)
        combined = (self.ra.certificate, self.ra.key)
        if pair is None:
            return (combined,)
        return ((pair.encryption.certificate, pair.encryption.key), combined)
