"""Who a PKCSReq comes from: the endpoint's challenge mode (RFC 8894 §2.4, §7.3).

* ``static``: one shared challengePassword per endpoint (compared in constant time);
* ``otp``: NDES-style one-time passwords (:mod:`protocols.scep.otp`);
* ``webhook``: POST JSON with the CSR, challenge and transaction id to an MDM's URL (Intune-
  style dynamic challenges); 2xx allows, anything else, an error or a timeout denies;
* ``none``: anyone (labs only; templates' enroll permissions still apply).

Failures raise :class:`MessageError` badRequest with a text that reveals nothing (RFC 8894
§7.3: a reused one-time password must not be distinguishable from a wrong one).
"""

from __future__ import annotations

import base64
import hmac
import logging
from dataclasses import dataclass

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import AttributeOID

from gateway.clock import Clock
from gateway.model import Requester
from gateway.ports import Transactions
from protocols.scep import otp
from protocols.scep.config import Endpoint
from protocols.scep.messages import FailInfo, MessageError

log = logging.getLogger("certgate.scep")
_REFUSED = "the challenge password is not valid"


def challenge_password(csr: x509.CertificateSigningRequest) -> str | None:
    """The PKCS#9 challengePassword attribute (RFC 2985 §5.4.1) of a CSR, if any."""
    try:
        value = csr.attributes.get_attribute_for_oid(AttributeOID.CHALLENGE_PASSWORD).value
    except (x509.AttributeNotFound, ValueError):
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


@dataclass
class Authorizer:
    """Checks challenges for every endpoint; holds the webhook HTTP client session."""

    store: Transactions
    clock: Clock
    session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    def requester(self, endpoint: Endpoint, method: str, principal: str | None = None) -> Requester:
        return Requester(
            protocol="scep",
            principal=principal or f"scep:{endpoint.name}",
            auth_method=method,
            groups=frozenset({"scep", f"scep:{endpoint.name}"}),
            verified_facts={"endpoint": endpoint.name, "challenge": endpoint.challenge},
        )

    async def authorize(
        self,
        endpoint: Endpoint,
        csr: x509.CertificateSigningRequest,
        transaction_id: str,
        message_type: str,
    ) -> Requester:
        """The requester a PKCSReq authenticated as by its challenge, or MessageError."""
        password = challenge_password(csr)
        mode = endpoint.challenge
        if mode == "none":
            return self.requester(endpoint, "none")
        if password is None:
            raise MessageError(FailInfo.BAD_REQUEST, "a challenge password is required")
        if mode == "static":
            expected = endpoint.challenge_password or ""
            if not hmac.compare_digest(password.encode(), expected.encode()):
                raise MessageError(FailInfo.BAD_REQUEST, _REFUSED)
            return self.requester(endpoint, "challenge")
        if mode == "otp":
            redeemed = await otp.redeem(
                self.store, endpoint.name, password, transaction_id, self.clock.now()
            )
            if redeemed is None:
                raise MessageError(FailInfo.BAD_REQUEST, _REFUSED)
            return self.requester(endpoint, "one-time-challenge", redeemed.identity)
        return await self._webhook(endpoint, csr, password, transaction_id, message_type)

    async def _webhook(
        self,
        endpoint: Endpoint,
        csr: x509.CertificateSigningRequest,
        password: str,
        transaction_id: str,
        message_type: str,
    ) -> Requester:
        assert endpoint.webhook_url is not None
        if self.session is None:
            self.session = aiohttp.ClientSession()
        body = {
            "endpoint": endpoint.name,
            "transaction_id": transaction_id,
            "message_type": message_type,
            "challenge": password,
            "csr": base64.b64encode(csr.public_bytes(serialization.Encoding.DER)).decode(),
            "subject": csr.subject.rfc4514_string(),
        }
        try:
            async with self.session.post(
                endpoint.webhook_url,
                json=body,
                timeout=aiohttp.ClientTimeout(total=endpoint.webhook_timeout),
                allow_redirects=False,
            ) as response:
                allowed = 200 <= response.status < 300
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.warning("scep webhook %s failed: %s", endpoint.webhook_url, type(exc).__name__)
            raise MessageError(FailInfo.BAD_REQUEST, _REFUSED) from None
        if not allowed:
            log.info("scep webhook refused transaction %s (HTTP %d)", transaction_id, status)
            raise MessageError(FailInfo.BAD_REQUEST, _REFUSED)
        return self.requester(endpoint, "webhook")
