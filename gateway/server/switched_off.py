"""What a protocol path answers while its front-end is switched off: a short text/plain 404
naming the table and key that switch it on, and the file they go in, instead of a bare 404
that leaves an operator guessing whether the URL, the client or the gateway is wrong."""

from __future__ import annotations

from aiohttp import web

from gateway.config import DEFAULTS, Config

#: Each front-end's path prefixes (its configuration table is its name).
PREFIXES: dict[str, tuple[str, ...]] = {
    "acme": ("/acme",),
    "est": ("/.well-known/est",),
    "scep": ("/scep", "/certsrv/mscep"),
    "wstep": ("/wstep",),
}
NAMES = {"acme": "ACME", "est": "EST", "scep": "SCEP", "wstep": "CEP/CES (MS-XCEP/MS-WSTEP)"}


def switched_off_text(config: Config, protocol: str) -> str:
    """The one-paragraph answer for ``protocol``'s paths."""
    where = (
        "a configuration file (`certgate init DIR` writes one with every protocol on)"
        if config.file == DEFAULTS
        else config.file
    )
    return (
        f"{NAMES[protocol]} is switched off on this gateway: set enabled = true in the "
        f"[{protocol}] table of {where} and restart it.\n"
    )


def add_switched_off_routes(app: web.Application, config: Config, enabled: set[str]) -> None:
    """Catch-all routes for the front-ends not in ``enabled``."""
    for protocol, prefixes in PREFIXES.items():
        if protocol in enabled:
            continue
        if protocol == "wstep":  # its prefix is configurable even while it is off
            path = config.protocols.get("wstep", {}).get("path")
            if isinstance(path, str) and path.startswith("/") and len(path) > 1:
                prefixes = (path.rstrip("/"),)
        text = switched_off_text(config, protocol)

        async def answer(request: web.Request, text: str = text) -> web.Response:
            return web.Response(status=404, text=text, content_type="text/plain")

        for prefix in prefixes:
            app.router.add_route("*", prefix, answer)
            app.router.add_route("*", prefix + "/{tail:.*}", answer)
