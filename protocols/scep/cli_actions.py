"""What ``certgate scep ...`` does (the command tree is :mod:`protocols.scep.cli`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from cryptography import x509

from gateway.cli.common import actor, emit, ts
from gateway.durations import duration_option
from gateway.errors import BadRequest, ConfigError, NotFound
from protocols.scep import otp, ra_info
from protocols.scep.config import ScepSettings, parse_settings

if TYPE_CHECKING:  # the server's components: only the gateway-level commands get them
    from gateway.server.wiring import Components


def _settings(c: Any) -> ScepSettings:
    raw = c.config.protocols.get("scep")
    if raw is None:
        raise ConfigError(c.config.file, "scep", "no [scep] table in the configuration")
    return parse_settings(raw, c.config.file, c.policy.templates, c.config.default_template)


async def cmd_ra_show(c: Any, args: argparse.Namespace) -> int:
    """Every RA certificate in use (RFC 8894 §2.2: verified out of band by its fingerprint)."""
    described = []
    for ra in ra_info.published(_settings(c), c.config.data_dir):
        try:
            cert = x509.load_pem_x509_certificate(ra.path.read_bytes())
        except FileNotFoundError:
            raise NotFound(
                f"no SCEP RA certificate at {ra.path} yet: `certgate serve` issues it on its "
                "first start"
            ) from None
        except (OSError, ValueError) as exc:
            raise BadRequest(f"cannot read the SCEP RA certificate {ra.path}: {exc}") from None
        described.append(ra_info.describe(ra, cert))
    emit(args, described, ra_info.render(described).rstrip("\n"))
    return 0


async def cmd_otp_create(c: Components, args: argparse.Namespace) -> int:
    settings = _settings(c)
    endpoint = settings.endpoints.get(args.endpoint)
    if endpoint is None:
        raise BadRequest(
            f"no SCEP endpoint {args.endpoint!r} (known: {sorted(settings.endpoints)})"
        )
    if endpoint.challenge != "otp":
        raise BadRequest(
            f"endpoint {args.endpoint!r} uses challenge {endpoint.challenge!r}, not otp"
        )
    ttl = duration_option(args.ttl, "--ttl")
    created = await otp.create(
        c.store,
        endpoint.name,
        args.identity,
        ttl,
        actor(),
        c.clock.now(),
    )
    data = {
        "password": created.password,
        "endpoint": created.endpoint,
        "identity": created.identity,
        "expires_at": created.expires_at,
    }
    human = (
        f"{created.password}\n(endpoint {created.endpoint}, single use, expires "
        f"{ts(created.expires_at)} UTC; it is not shown again)"
    )
    emit(args, data, human)
    return 0
