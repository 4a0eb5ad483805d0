"""The EST front-end's shared objects: what every handler may use, and a flow-control
exception carrying a finished reply."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from gateway.policy import PolicyEngine
from gateway.ports import Store
from gateway.service import EnrollmentService
from protocols.est.render import EstReply
from protocols.est.settings import EstSettings
from protocols.est.state import EstState


@dataclass(frozen=True)
class EstContext:
    """What every EST handler may use."""

    settings: EstSettings
    service: EnrollmentService
    store: Store
    policy: PolicyEngine
    state: EstState
    own_chain: tuple[x509.Certificate, ...]

    def now(self) -> datetime:
        return self.service.clock.now()


class Refusal(Exception):
    """Flow control inside a handler: answer ``reply`` now."""

    def __init__(self, reply: EstReply) -> None:
        super().__init__(reply.status)
        self.reply = reply
