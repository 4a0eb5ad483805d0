"""The composition root, in reading order: config -> store -> connectors -> policy -> service.

Both ``certgate serve`` and the operator CLI build the same components here, so a command run
on the gateway host goes through exactly the policy and CA path a protocol request takes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import entry_points

from gateway.config import Config
from gateway.errors import ConfigError
from gateway.policy import PolicyEngine, load_templates
from gateway.ports import CAConnector, ConnectorContext, ConnectorFactory
from gateway.service import EnrollmentService
from gateway.store import SQLStore, default_sqlite_url, open_store

log = logging.getLogger("certgate")

CONNECTOR_GROUP = "certgate.connectors"


@dataclass
class Components:
    config: Config
    store: SQLStore
    connectors: dict[str, CAConnector]
    policy: PolicyEngine
    service: EnrollmentService

    async def close(self) -> None:
        for connector in self.connectors.values():
            try:
                await connector.close()
            except Exception:
                log.exception("closing connector %s failed", connector.name)
        await self.store.close()


def connector_factory(kind: str, config: Config, key: str) -> ConnectorFactory:
    """Find a connector class by entry-point name, so adding one never edits the core."""
    found = entry_points(group=CONNECTOR_GROUP, name=kind)
    for ep in found:
        factory: ConnectorFactory = ep.load()
        return factory
    known = sorted(ep.name for ep in entry_points(group=CONNECTOR_GROUP))
    raise ConfigError(config.file, key, f"unknown connector type {kind!r} (known: {known})")


async def build(config: Config, *, start_service: bool = True) -> Components:
    """Build and start everything the gateway needs; close it with :meth:`Components.close`."""
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
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(config.store_url or default_sqlite_url(config.data_dir))
    connectors: dict[str, CAConnector] = {}
    try:
        await store.migrate()
        for name, conn_config in config.connectors.items():
            factory = connector_factory(conn_config.type, config, f"connectors.{name}.type")
            connector = factory(
                ConnectorContext(
                    name=name,
                    settings=conn_config.settings,
                    data_dir=config.data_dir,
                    journal=store,
                    config_file=config.file,
                )
            )
            await connector.start()
            connectors[name] = connector
        policy = PolicyEngine(templates)
        faults = frozenset(
            name
            for name, on in (("crash_after_ca_submit", config.testing.crash_after_ca_submit),)
            if on
        )
        service = EnrollmentService(store, policy, connectors, faults=faults)
        if start_service:
            await service.start()
    except BaseException:
        for connector in connectors.values():
            await connector.close()
        await store.close()
        raise
    return Components(config, store, connectors, policy, service)
