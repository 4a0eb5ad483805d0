"""Open what a command needs, and no more (:class:`gateway.cli.common.Opens`), then run it.

``GATEWAY`` commands get the server's own components (:func:`gateway.server.wiring.build`),
so ``certgate enroll`` or ``requests approve`` is judged by exactly the policy and CA path a
protocol request takes. Listings get less: ``STORE`` opens the database of an existing gateway
without creating, migrating or opening a CA (the schema version is compared read-only, and a
database that is not at this certgate's version is refused in one line); ``TEMPLATES`` reads
the configuration's templates and nothing of the data directory.
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

import gateway.store
from gateway.cli.common import Opens, load_action
from gateway.cli.datadir import (
    DataDirError,
    prepare_data_dir,
    require_local_cas,
    require_schema,
    shown_url,
    store_url,
)
from gateway.config import Config
from gateway.errors import ConfigError, StoreUnavailable
from gateway.store import SQLStore, open_store

if TYPE_CHECKING:
    from gateway.policy import CertificateTemplate

#: The packaged migrations (gateway.store.upgrade.MIGRATIONS_DIR, without importing Alembic).
VERSIONS_DIR = Path(gateway.store.__file__).with_name("migrations") / "versions"


class Templates:
    """The configured templates, looked up like :class:`gateway.policy.PolicyEngine` does."""

    def __init__(self, templates: Mapping[str, CertificateTemplate]) -> None:
        from gateway.policy import TemplateCatalog

        try:
            self._catalog = TemplateCatalog.of(templates)
        except ValueError as exc:
            raise ConfigError("templates", "", str(exc)) from None

    @property
    def templates(self) -> Mapping[str, CertificateTemplate]:
        return self._catalog.templates

    def template(self, name: str) -> CertificateTemplate:
        """The template called ``name``; raises :class:`gateway.errors.UnknownTemplate`."""
        return self._catalog.get(name)


@dataclass
class TemplatesOnly:
    """What a ``TEMPLATES`` command gets."""

    config: Config
    policy: Templates

    async def close(self) -> None:
        return None


@dataclass
class StoreOnly:
    """What a ``STORE`` command gets: the configuration and the store, no CA."""

    config: Config
    store: SQLStore

    async def close(self) -> None:
        await self.store.close()


def open_templates(config: Config) -> TemplatesOnly:
    from gateway.policy import load_templates

    return TemplatesOnly(config, Templates(load_templates(config.templates_dir)))


async def open_store_only(config: Config, args: argparse.Namespace) -> StoreOnly:
    """The store of the gateway in ``config``'s data directory, refused in one line when it is
    none (no directory, no database, a local CA missing) or when its schema is not this
    certgate's (never migrated here: ``certgate init`` or ``serve`` does that)."""
    prepare_data_dir(config, args, create=False)
    url = store_url(config)
    store = open_store(url, create=False)
    try:
        try:
            found = await store.read(_revisions)
        except StoreUnavailable as exc:
            raise StoreUnavailable(
                f"cannot use the database {shown_url(config)} in {config.file}: {exc.detail}"
            ) from None
        _check_schema(config, found)
        require_local_cas(config, args)
    except BaseException:
        await store.close()
        raise
    return StoreOnly(config, store)


def _revisions(conn: sa.Connection) -> frozenset[str] | None:
    """The schema revisions recorded in the database; ``None`` without certgate's tables."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return frozenset(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())


def packaged_heads() -> frozenset[str] | None:
    """The heads of the packaged migrations, read from their ``revision`` and
    ``down_revision`` assignments without importing Alembic (which costs a listing more than
    the listing); ``None`` when a file does not spell them as literals."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in VERSIONS_DIR.glob("*.py"):
        found: dict[str, Any] = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            target, value = None, None
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign):
                target, value = node.target, node.value
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                try:
                    found[target.id] = ast.literal_eval(value) if value is not None else None
                except ValueError:
                    return None
        if not isinstance(found.get("revision"), str):
            return None
        revisions.add(found["revision"])
        down = found.get("down_revision")
        parents.update([down] if isinstance(down, str) else list(down or ()))
    return frozenset(revisions - parents) or None


def _alembic_revisions() -> tuple[frozenset[str], frozenset[str]]:
    """(heads, every revision) as Alembic computes them: the authority when the quick look
    and the database disagree."""
    from alembic.script import ScriptDirectory

    from gateway.store.upgrade import alembic_config

    script = ScriptDirectory.from_config(alembic_config())
    return frozenset(script.get_heads()), frozenset(r.revision for r in script.walk_revisions())


def _check_schema(config: Config, found: frozenset[str] | None) -> None:
    where = shown_url(config)
    if config.store_url:
        where += f" ([store] url in {config.file})"
    if not found:
        why = "no certgate tables in this database; `certgate init` creates them"
        raise DataDirError(f"{where}: {why}")
    if found == packaged_heads():
        return
    heads, known = _alembic_revisions()
    if found == heads:
        return
    unknown = sorted(found - known)
    if unknown:
        why = f"its schema ({', '.join(unknown)}) is newer than this certgate; upgrade certgate"
    else:
        why = (
            f"its schema ({', '.join(sorted(found))}) is older than this certgate's "
            f"({', '.join(sorted(heads))}); `certgate init` upgrades it"
        )
    raise DataDirError(f"{where}: {why}")


async def open_for(config: Config, args: argparse.Namespace) -> Any:
    """What the command's :class:`Opens` level names; close it with ``await opened.close()``."""
    opens: Opens = getattr(args, "opens", Opens.GATEWAY)
    if opens is Opens.TEMPLATES:
        return open_templates(config)
    if opens is Opens.STORE:
        return await open_store_only(config, args)
    creates = getattr(args, "creates", False)
    # Only init and serve may create a data directory, database and CA; everything else
    # acts on an existing one, so a mistyped --data never yields a fresh, empty gateway.
    prepare_data_dir(config, args, create=creates)
    if not creates:
        await require_schema(config)
        require_local_cas(config, args)
    from gateway.server.wiring import build

    # The generated-passphrase warning is for the server's log at start-up (serve), not for
    # every operator command run against the same data directory.
    return await build(config, startup_warnings=False)


async def run_command(config: Config, args: argparse.Namespace) -> int:
    func = load_action(args.func)
    opened = await open_for(config, args)
    try:
        return await func(opened, args)
    finally:
        await opened.close()
