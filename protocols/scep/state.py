"""What the SCEP handlers share at run time (built once by :mod:`protocols.scep.setup`)."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from gateway.service import EnrollmentService
from gateway.store import SQLStore
from protocols.scep.auth import Authorizer
from protocols.scep.config import Endpoint, ScepSettings
from protocols.scep.ra import RegistrationAuthority


@dataclass
class Scep:
    """Settings, the RA identity, the service and store, and the challenge authorizer."""

    settings: ScepSettings
    ra: RegistrationAuthority
    service: EnrollmentService
    store: SQLStore
    authorizer: Authorizer
    next_ca: tuple[x509.Certificate, ...] = ()

    def endpoint(self, name: str) -> Endpoint | None:
        return self.settings.endpoints.get(name)

    @property
    def published(self) -> tuple[x509.Certificate, ...]:
        """GetCACert's certificates: the RA certificate, then the CA chain (RFC 8894 §4.2.1.2)."""
        return (self.ra.certificate, *self.ra.ca_chain)
