"""What every part of the service shares: the store, the policy, the connectors, the clock,
the default connector and the cached CA chains; and reading a recorded outcome back.

The default connector (``/ca/*`` publication, the CRL, the chain of a request whose template
is gone) is never guessed: the composition root names it (the default template's connector)
or there is exactly one connector.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from cryptography import x509

from gateway.clock import Clock
from gateway.errors import ConfigError, ConnectorError, ErrorCode, NotFound
from gateway.model import (
    Denied,
    Issued,
    Outcome,
    Pending,
    PendingReason,
    RequestRecord,
    RequestState,
)
from gateway.policy import PolicyEngine
from gateway.ports import CAConnector, Store

#: Seconds a client is told to wait before asking again about an approval.
APPROVAL_RETRY_AFTER = 60
#: Seconds a client is told to wait before asking again about a request the CA holds.
CA_RETRY_AFTER = 10


def default_connector_of(connectors: Mapping[str, CAConnector], named: str | None) -> str:
    """``named`` if it is a connector, else the only connector; one-line ``ConfigError``
    otherwise (several connectors and none named, or a name that is not configured)."""
    if named is not None:
        if named not in connectors:
            raise ConfigError(
                "[connectors]",
                "",
                f"no connector {named!r} to be the default ({_names(connectors)})",
            )
        return named
    if len(connectors) == 1:
        return next(iter(connectors))
    raise ConfigError(
        "[connectors]",
        "",
        f"{len(connectors)} connectors ({_names(connectors)}) and none named the default",
    )


def _names(connectors: Mapping[str, CAConnector]) -> str:
    return ", ".join(sorted(connectors)) or "none"


class ServiceCore:
    """The state the enrollment, approval, renewal and poller parts share."""

    def __init__(
        self,
        store: Store,
        policy: PolicyEngine,
        connectors: Mapping[str, CAConnector],
        clock: Clock,
        default_connector: str | None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.connectors = dict(connectors)
        self.clock = clock
        self.default_connector = default_connector_of(self.connectors, default_connector)
        self.chains: dict[str, tuple[x509.Certificate, ...]] = {}
        self._issuer_not_after: dict[str, datetime | None] = {}

    def connector(self, name: str) -> CAConnector:
        """The connector called ``name``; ``ConnectorError`` if there is none."""
        try:
            return self.connectors[name]
        except KeyError:
            raise ConnectorError(f"template routes to unknown connector {name!r}") from None

    async def ca_chain(self, connector: str | None = None) -> tuple[x509.Certificate, ...]:
        """The issuing chain (issuing CA first) of ``connector`` (default: the default one)."""
        name = connector or self.default_connector
        if name not in self.chains:
            self.chains[name] = await self.connector(name).ca_chain()
        return self.chains[name]

    async def issuer_not_after(self, connector: str) -> datetime | None:
        """When the issuing CA of ``connector`` expires (policy clips validity to it)."""
        if connector not in self._issuer_not_after:
            chain = await self.ca_chain(connector)
            self._issuer_not_after[connector] = chain[0].not_valid_after_utc if chain else None
        return self._issuer_not_after[connector]

    async def outcome_of(self, stored: RequestRecord) -> Outcome:
        """The recorded outcome of a request, from the store only (protocol polls use this)."""
        if stored.state is RequestState.ISSUED and stored.certificate_serial:
            cert = await self.store.get_certificate(stored.certificate_serial)
            if cert is None:
                raise NotFound(f"certificate {stored.certificate_serial} is not in the inventory")
            template = self.policy.templates.get(stored.template)
            chain = await self.ca_chain(template.connector if template else None)
            return Issued(cert.certificate, chain)
        if stored.state is RequestState.DENIED:
            return Denied(
                stored.denial_code or ErrorCode.POLICY_DENIED.value,
                stored.denial_detail or "denied",
                stored.denial_rule,
            )
        if stored.state is RequestState.FAILED:
            return Denied(ErrorCode.CONNECTOR_ERROR.value, stored.denial_detail or "failed", "ca")
        reason = stored.pending_reason or PendingReason.CA
        retry = APPROVAL_RETRY_AFTER if reason is PendingReason.APPROVAL else CA_RETRY_AFTER
        return Pending(stored.id, retry, reason)
