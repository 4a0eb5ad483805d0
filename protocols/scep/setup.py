"""Start-up of the SCEP front-end: validate ``[scep]``, obtain the RA identity, add routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from cryptography import x509

from gateway.errors import ConfigError
from gateway.plugin import Listener, ProtocolContext
from protocols.scep import ra, ra_info
from protocols.scep.auth import Authorizer
from protocols.scep.config import ScepSettings, parse_settings
from protocols.scep.http import add_routes
from protocols.scep.ports import Clock, Enrollment, Records, Templates
from protocols.scep.state import Scep


class ScepFrontEnd:
    """The :class:`gateway.plugin.FrontEnd` for SCEP."""

    name = "scep"

    async def setup(self, context: ProtocolContext, app: Any) -> list[Listener]:
        # The composition of this front-end: the core objects, narrowed to SCEP's ports.
        service: Enrollment = context.service
        records: Records = context.store
        clock: Clock = context.clock
        settings = parse_settings(
            context.settings,
            context.config_file,
            _templates(context).templates,
            context.default_template,
        )
        next_ca: tuple[x509.Certificate, ...] = ()
        if settings.next_ca_pem is not None:
            try:
                next_ca = tuple(x509.load_pem_x509_certificates(settings.next_ca_pem))
            except ValueError as exc:
                raise ConfigError(
                    context.config_file, "scep.next_ca_certificates", f"not PEM certificates: {exc}"
                ) from None
        identity = await ra.load_or_issue(
            service,
            records,
            _templates(context),
            clock,
            context.data_dir,
            settings.ra_template,
            settings.ra_key_passphrase,
            context.config_file,
        )
        pair = None
        if any(e.ra_mode == "ndes-pair" for e in settings.endpoints.values()):
            pair = await _ndes_pair(context, settings)
        shown = [("ra", identity.certificate)]
        if pair is not None:
            shown += [("signature", pair.signing.certificate)]
            shown += [("encryption", pair.encryption.certificate)]
        context.banner.extend(ra_info.banner(shown))
        authorizer = Authorizer(context.transactions, clock)
        scep = Scep(settings, identity, service, records, clock, authorizer, next_ca, pair)
        assert isinstance(app, web.Application)
        add_routes(app, scep)

        async def close_authorizer(_app: web.Application) -> AsyncIterator[None]:
            yield
            await authorizer.close()

        app.cleanup_ctx.append(close_authorizer)
        return []


async def _ndes_pair(context: ProtocolContext, settings: ScepSettings) -> ra.NdesPair:
    """NDES's RA signature and encryption certificates (protocols.md 1.6 item 34)."""
    records: Records = context.store
    common = (context.service, records, _templates(context), context.clock, context.data_dir)
    signing = await ra.load_or_issue(
        *common,
        settings.ra_signature_template,
        settings.ra_key_passphrase,
        context.config_file,
        stem="ra-signature",
        common_name="certgate SCEP RA signature",
    )
    encryption = await ra.load_or_issue(
        *common,
        settings.ra_encryption_template,
        settings.ra_key_passphrase,
        context.config_file,
        stem="ra-encryption",
        common_name="certgate SCEP RA encryption",
    )
    return ra.NdesPair(signing, encryption)


def _templates(context: ProtocolContext) -> Templates:
    """The policy engine, as the templates SCEP reads."""
    return context.policy
