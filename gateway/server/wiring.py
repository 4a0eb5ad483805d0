"""The composition root, in reading order: config -> store -> connectors -> policy -> service.

Both ``certgate serve`` and the operator CLI build the same components here, so a command run
on the gateway host goes through exactly the policy and CA path a protocol request takes.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

import sqlalchemy as sa

from gateway.clock import Clock, SystemClock
from gateway.config import Config
from gateway.config.ocsp import OcspSigner
from gateway.errors import ConfigError, StoreUnavailable
from gateway.policy import PolicyEngine, load_templates
from gateway.ports import CAConnector, ConnectorContext, ConnectorFactory, OCSPSettings
from gateway.service import EnrollmentService
from gateway.store import (
    DatabaseUnavailable,
    SQLStore,
    default_sqlite_url,
    open_store,
    private_directory,
    sqlite_file,
)

log = logging.getLogger("certgate")

CONNECTOR_GROUP = "certgate.connectors"


@dataclass
class Components:
    config: Config
    store: SQLStore
    connectors: dict[str, CAConnector]
    policy: PolicyEngine
    service: EnrollmentService
    #: The clock the service runs on, handed to front-ends as their ``now()``.
    clock: Clock = field(default_factory=SystemClock)

    async def close(self) -> None:
        for connector in self.connectors.values():
            try:
                await connector.close()
            except Exception:
                log.exception("closing connector %s failed", connector.name)
        await self.store.close()


def _data_directory(path: Path) -> None:
    """The data directory holds the database (CSRs with SCEP challenges) and the CA keys:
    create it 0700 whatever the umask, and bring an existing one of ours down to 0700."""
    private_directory(path)
    st = path.stat()
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077 and st.st_uid == os.geteuid():
        os.chmod(path, mode & 0o700)
        if any(path.iterdir()):  # an existing installation, not one created a moment ago
            log.warning("data directory %s had mode %o; changed to %o", path, mode, mode & 0o700)


def ca_directories(data_dir: Path) -> list[str]:
    """The local CAs kept in ``data_dir`` (``ca/`` or ``ca-<name>/`` with a ``chain.pem``, the
    file a CA directory is complete with: see backends/local_ca/bootstrap.py)."""
    found = [data_dir / "ca", *sorted(data_dir.glob("ca-*"))]
    return [p.name for p in found if (p / "chain.pem").is_file()]


def _refuse_new_database_beside_a_ca(data_dir: Path, db_file: Path) -> None:
    """Issue #12: a CA whose database is missing must not get a new, empty one (its issued
    certificates, journal and revocations would silently be forgotten)."""
    cas = ca_directories(data_dir)
    if cas:
        raise ConfigError(
            str(data_dir),
            "",
            f"the data directory holds a CA ({', '.join(c + '/' for c in cas)}) but no "
            f"database {db_file}: refusing to create a new, empty one beside it (restore "
            f"{db_file.name} with its -wal file from a backup, or set [store] url to this "
            "CA's database)",
        )


def _unreachable(config: Config, url: str, exc: StoreUnavailable) -> StoreUnavailable:
    """One line for the operator naming ``[store] url`` (password hidden) and the cause."""
    shown = sa.make_url(url).render_as_string(hide_password=True)
    where = "[store] url" if config.store_url else "[store] url (default)"
    cause = exc.cause if isinstance(exc, DatabaseUnavailable) else exc.detail
    return StoreUnavailable(f"cannot use the database {where} = {shown} in {config.file}: {cause}")


def connector_factory(kind: str, config: Config, key: str) -> ConnectorFactory:
    """Find a connector class by entry-point name, so adding one never edits the core."""
    found = entry_points(group=CONNECTOR_GROUP, name=kind)
    for ep in found:
        factory: ConnectorFactory = ep.load()
        return factory
    known = sorted(ep.name for ep in entry_points(group=CONNECTOR_GROUP))
    raise ConfigError(config.file, key, f"unknown connector type {kind!r} (known: {known})")


async def build(
    config: Config, *, start_service: bool = True, startup_warnings: bool = True
) -> Components:
    """Build and start everything the gateway needs; close it with :meth:`Components.close`.
    ``startup_warnings=False`` (operator commands): connectors leave out the advisories meant
    for a serving gateway's start-up log (:class:`gateway.ports.ConnectorContext`)."""
    templates = load_templates(config.templates_dir)
    if config.default_template not in templates:
        raise ConfigError(
            config.file,
            "policy.default_template",
            f"template {config.default_template!r} not found in {config.templates_dir}",
        )
    for name, template in templates.items():
        if template.connector not in config.connectors:
            raise ConfigError(
                str(config.templates_dir / f"{name}.toml"),
                "connector",
                f"no connector {template.connector!r} in {config.file} [connectors]",
            )
    _data_directory(config.data_dir)
    url = config.store_url or default_sqlite_url(config.data_dir)
    db_file = sqlite_file(url)
    exists = db_file is not None and db_file.exists()
    if db_file is not None and not exists:
        _refuse_new_database_beside_a_ca(config.data_dir, db_file)
    store = open_store(
        url,
        create=not exists,
        pool_size=config.store_pool_size,
        max_overflow=config.store_max_overflow,
    )
    connectors: dict[str, CAConnector] = {}
    try:
        try:
            await store.migrate()
        except StoreUnavailable as exc:
            raise _unreachable(config, url, exc) from None
        # The default template's connector is the default one: its CA is the one /ca/*
        # publishes and EnrollmentService.ca_chain()/crl() serve (never "the first one").
        default_connector = templates[config.default_template].connector
        ocsp = (
            OCSPSettings(
                url=config.ocsp.aia_url,
                delegated=config.ocsp.signer is OcspSigner.DELEGATED,
                signer_validity=config.ocsp.signer_validity,
            )
            if config.ocsp.enabled
            else None
        )
        for name, conn_config in config.connectors.items():
            factory = connector_factory(conn_config.type, config, f"connectors.{name}.type")
            connector = factory(
                ConnectorContext(
                    name=name,
                    settings=conn_config.settings,
                    data_dir=config.data_dir,
                    journal=store,
                    config_file=config.file,
                    publication_url=(
                        config.server.ca_publication_url if name == default_connector else None
                    ),
                    startup_warnings=startup_warnings,
                    ocsp=ocsp,
                )
            )
            await connector.start()
            connectors[name] = connector
        policy = PolicyEngine(templates)
        clock = SystemClock()
        service = EnrollmentService(
            store, policy, connectors, clock=clock, default_connector=default_connector
        )
        if start_service:
            await service.start()
    except BaseException:
        for connector in connectors.values():
            await connector.close()
        await store.close()
        raise
    return Components(config, store, connectors, policy, service, clock)
