"""The admin REST API (``/api/v1``, issue #16) in the server shell.

:func:`mount_admin` gathers the operations (the core ones of :mod:`gateway.admin.operations`,
then each enabled protocol's from entry point group ``certgate.admin``, see
:mod:`gateway.admin.plugin`) and mounts them with authentication (:mod:`.auth`), the router's
checks and audit (:mod:`.router`) and the OpenAPI document (:mod:`.openapi`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from aiohttp import web

import gateway
from gateway.admin.operations import AdminCore, core_operations
from gateway.admin.plugin import AdminContext, AdminOperation, Register
from gateway.admin.tokens import AdminTokens
from gateway.config import Config
from gateway.plugin import Listener
from gateway.server.admin.auth import COOKIE_NAME, CSRF_HEADER, Session, csrf_token
from gateway.server.admin.router import ADMIN_API, PREFIX, AdminApi, mount, problem

if TYPE_CHECKING:
    from gateway.server.wiring import Components

__all__ = [
    "ADMIN_API",
    "ADMIN_GROUP",
    "COOKIE_NAME",
    "CSRF_HEADER",
    "PREFIX",
    "AdminApi",
    "Session",
    "csrf_token",
    "listener_views",
    "mount_admin",
    "problem",
]

#: Entry-point group through which protocols add admin operations.
ADMIN_GROUP = "certgate.admin"


def plugin_operations(
    config: Config, components: Components, protocols: Sequence[str]
) -> list[AdminOperation]:
    """The operations of every enabled protocol that registers some."""
    found: list[AdminOperation] = []
    for ep in entry_points(group=ADMIN_GROUP):
        if ep.name not in protocols:
            continue
        register: Register = ep.load()
        context = AdminContext(
            name=ep.name,
            settings=config.protocols.get(ep.name, {}),
            config_file=config.file,
            transactions=components.store,
            store=components.store,
            clock=components.clock,
            data_dir=config.data_dir,
        )
        found.extend(register(context))
    return found


def listener_views(config: Config, listeners: Sequence[Listener]) -> list[dict[str, Any]]:
    """The sockets the gateway serves on, for the status view."""
    server = config.server
    views: list[dict[str, Any]] = [
        {
            "name": "main",
            "url": server.external_url,
            "host": server.host,
            "port": server.port,
            "tls": server.tls is not None,
        }
    ]
    if server.plain is not None:
        plain = server.plain
        views.append(
            {
                "name": "plain",
                "url": plain.external_url,
                "host": plain.host,
                "port": plain.port,
                "tls": False,
            }
        )
    for lst in listeners:
        views.append(
            {
                "name": lst.name,
                "host": lst.host,
                "port": lst.port,
                "tls": lst.ssl_context is not None,
            }
        )
    return views


def mount_admin(
    app: web.Application,
    config: Config,
    components: Components,
    protocols: Sequence[str],
    listeners: Sequence[Mapping[str, Any]],
) -> AdminApi:
    """Mount ``/api/v1`` on ``app`` (``app[ADMIN_API]`` is the :class:`AdminApi`)."""
    tokens = AdminTokens(components.store, components.store, components.clock)
    core = AdminCore(
        service=components.service,
        store=components.store,
        tokens=tokens,
        clock=components.clock,
        protocols=tuple(protocols),
        listeners=tuple(listeners),
        version=gateway.__version__,
    )
    operations = [*core_operations(core), *plugin_operations(config, components, protocols)]
    others = [int(v["port"]) for v in listeners if v["name"] not in ("main", "plain")]
    api = AdminApi(
        operations,
        tokens,
        components.store,
        gateway.__version__,
        other_ports=others,
        client_roles=config.admin.client_roles,
        clock=components.clock,
    )
    mount(app, api)
    return api
