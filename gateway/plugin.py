"""How protocol front-ends plug into the composition root without the core knowing them.

A front-end package registers an entry point in group ``certgate.protocols`` (e.g.
``est = "protocols.est:FRONTEND"``) whose object satisfies :class:`FrontEnd`. The server shell
calls ``setup`` once at startup for every protocol whose configuration table (``[est]``,
``[acme]``, ...) says ``enabled = true``, and serves the routes it added on the main listener and
on any extra listeners it returns (EST's mutual-TLS port). Front-ends with operator commands
(``certgate est code create``) register them through group ``certgate.cli``.

The core only defines these shapes: it imports nothing from aiohttp.web, and ``app`` is typed
``Any`` here so that each front-end owns its web framework objects.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gateway.clock import Clock
from gateway.config import TestingConfig
from gateway.listener_tls import ListenerCertificate
from gateway.policy import PolicyEngine
from gateway.ports import Store, Transactions
from gateway.service import EnrollmentService


@dataclass(frozen=True)
class ProtocolContext:
    """Everything a front-end may use. ``settings`` is its raw configuration table, which the
    front-end validates itself, raising :class:`gateway.errors.ConfigError` with key paths
    prefixed by ``name`` (``est.labels.iot.template``).

    The core objects are offered whole, but a front-end's ``setup`` (its own composition
    root) narrows them at once to the ports it declares in ``protocols/<p>/ports.py`` and hands
    its handlers only those: ``service`` (enrollment), ``store`` (request and certificate
    lookups, audit), ``transactions`` (the front-end's own tables), ``policy`` (templates) and
    ``clock``. No front-end reaches through one of them to another.
    """

    name: str
    settings: Mapping[str, Any]
    config_file: str
    external_url: str
    data_dir: Path
    default_template: str
    service: EnrollmentService
    store: Store
    transactions: Transactions
    policy: PolicyEngine
    clock: Clock
    testing: TestingConfig = field(default_factory=TestingConfig)
    #: ``(label, value)`` lines the front-end adds for ``certgate serve``'s start-up banner,
    #: such as the SCEP RA fingerprint a client pins; appended during ``setup``.
    banner: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Listener:
    """An extra socket the server shell opens for a front-end (e.g. EST over mutual TLS).

    ``certificate``, when the front-end keeps its listener certificate through
    :class:`gateway.listener_tls.ListenerCertificate` (whose ``context`` is ``ssl_context``),
    is renewed and reloaded by the shell like the main listener's: every
    :data:`gateway.listener_tls.CHECK_INTERVAL` and on SIGHUP."""

    name: str
    host: str
    port: int
    ssl_context: ssl.SSLContext | None = None
    certificate: ListenerCertificate | None = None


class FrontEnd(Protocol):
    """A protocol front-end."""

    name: str

    async def setup(self, context: ProtocolContext, app: Any) -> list[Listener]:
        """Add routes to the aiohttp ``app`` (and cleanup hooks); return extra listeners."""
        ...
