"""The EST front-end's shared objects: what every handler may use, and a flow-control
exception carrying a finished reply."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from protocols.est.ports import Clock, Enrollment, Records, Templates
from protocols.est.render import EstReply
from protocols.est.settings import EstSettings
from protocols.est.state import EstState


@dataclass(frozen=True)
class EstContext:
    """What every EST handler may use: the ports of :mod:`protocols.est.ports`, EST's own
    state and the CA chain read at start-up."""

    settings: EstSettings
    service: Enrollment
    store: Records
    policy: Templates
    clock: Clock
    state: EstState
    own_chain: tuple[x509.Certificate, ...]

    def now(self) -> datetime:
        """The current time (timezone-aware UTC) on the gateway's clock."""
        return self.clock.now()


class Refusal(Exception):
    """Flow control inside a handler: answer ``reply`` now."""

    def __init__(self, reply: EstReply) -> None:
        super().__init__(reply.status)
        self.reply = reply
