"""The site ``certgate init DIR`` writes, from the package data in ``gateway/site/`` (so an
installed wheel, with no source tree, has it too):

``DIR/certgate.toml``            every protocol on, each key a first run needs, commented
``DIR/certgate.reference.toml``  the reference configuration: every key there is, commented
``DIR/templates/*.toml``         the shipped certificate templates, plus ``scep-device``
``DIR/secrets/``                 (0700) the SCEP challenges and the EST and CES bootstrap
                                 passwords, each a 0600 file the configuration or the serve
                                 banner refers to (``file:``), never copied anywhere else
``DIR/data/``                    the data directory (database, CA keys), made by ``init``

Nothing is overwritten: a directory holding any of these files is refused in one line.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import ipaddress
import json
import os
import secrets
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import urlsplit

from gateway.cli.datadir import DataDirError
from gateway.server.banner import (
    EST_PASSWORD_FILE,
    EST_USER,
    SCEP_CHALLENGE_FILE,
    SCEP_LEGACY_CHALLENGE_FILE,
    SECRETS_DIR,
    WSTEP_PASSWORD_FILE,
    WSTEP_USER,
)

#: ACME challenge ports of a site: unprivileged, so a client on the same host answers without
#: root (production: 80 and 443, said in the file).
HTTP01_PORT, TLS_ALPN01_PORT = 5002, 5001
DEFAULT_NAMES = ("localhost", "127.0.0.1")
SECRET_FILES = (
    SCEP_CHALLENGE_FILE,
    SCEP_LEGACY_CHALLENGE_FILE,
    EST_PASSWORD_FILE,
    WSTEP_PASSWORD_FILE,
)


def _package() -> Any:
    return files("gateway") / "site"


def _url(scheme: str, name: str, port: int) -> str:
    try:
        shown = f"[{name}]" if ipaddress.ip_address(name).version == 6 else name
    except ValueError:
        shown = name
    return f"{scheme}://{shown}:{port}"


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def _secret_file(path: Path) -> None:
    """A new random secret, readable by its owner only (created so, whatever the umask)."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secrets.token_urlsafe(18) + "\n")


def _store_table(reference: str) -> str:
    """``[store]`` naming the database ``init --database-url`` gave (refused in one line when
    it would put a password into the file)."""
    if not reference.startswith(("env:", "file:")) and urlsplit(reference).password:
        raise DataDirError(
            "certgate init --database-url: a URL with a password is a secret; give it as "
            "env:NAME or file:PATH"
        )
    return (
        "\n[store]\n# The database (`certgate init --database-url`); every instance of this site"
        f" shares it.\nurl = {json.dumps(reference)}\n"
    )


def write_site(directory: Path, args: argparse.Namespace) -> Path:
    """Write the site; return its certgate.toml. :class:`DataDirError` (one line) when the
    directory holds a site or any file the site would overwrite."""
    directory = directory.absolute()
    package = _package()
    templates = sorted(
        (t for t in (package / "templates").iterdir() if t.name.endswith(".toml")),
        key=lambda t: t.name,
    )
    extra = [package / "scep-device.toml"]
    config = directory / "certgate.toml"
    secret_dir = directory / SECRETS_DIR
    planned = [
        config,
        directory / "certgate.reference.toml",
        *(directory / "templates" / t.name for t in (*templates, *extra)),
        *(secret_dir / n for n in SECRET_FILES),
    ]
    if config.exists():
        raise DataDirError(
            f"{config}: {directory} holds a site already; init never overwrites one "
            f"(`certgate serve -c {config}` serves it)"
        )
    for path in planned:
        if path.exists():
            raise DataDirError(f"{path}: exists; init never overwrites a site's files")
    if directory.exists() and not directory.is_dir():
        raise DataDirError(f"{directory}: not a directory")
    names = list(args.names or DEFAULT_NAMES)
    external = args.external_url or _url("https", names[0], args.port)
    plain = args.plain_url or _url("http", names[0], args.plain_port)
    data_dir = str(args.data.absolute()) if args.data is not None else "data"
    text = Template((package / "certgate.toml").read_text(encoding="utf-8")).substitute(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        config=config,
        host=args.host,
        port=args.port,
        plain_port=args.plain_port,
        est_port=args.est_port,
        external_url=external,
        plain_url=plain,
        names=_toml_list(names),
        data_dir=data_dir,
        http01_port=HTTP01_PORT,
        alpn_port=TLS_ALPN01_PORT,
    )
    if getattr(args, "database_url", None):
        text = text.replace("\n[policy]\n", _store_table(args.database_url) + "\n[policy]\n", 1)
    try:
        (directory / "templates").mkdir(parents=True, exist_ok=True)
        secret_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(secret_dir, 0o700)
        for template in (*templates, *extra):
            (directory / "templates" / template.name).write_bytes(template.read_bytes())
        (directory / "certgate.reference.toml").write_bytes(
            (package / "reference.toml").read_bytes()
        )
        for name in SECRET_FILES:
            _secret_file(secret_dir / name)
        config.write_text(text, encoding="utf-8")  # last: its presence means "a site"
    except OSError as exc:
        raise DataDirError(f"{directory}: cannot write the site: {exc.strerror or exc}") from None
    return config


async def _plugin_command(c: Any, argv: list[str]) -> None:
    """Run a front-end's operator command (``certgate est user add ...``) on the components
    ``init`` opened, its output swallowed (init prints its own summary)."""
    from gateway.cli.main import build_parser

    args = build_parser().parse_args([*argv, "-c", str(c.config.file)])
    for name, default in (("config", None), ("data", None), ("json", True)):
        setattr(args, name, getattr(args, name, default))
    func = args.func
    if isinstance(func, str):
        from importlib import import_module

        module, _, attr = func.partition(":")
        func = getattr(import_module(module), attr)
    with contextlib.redirect_stdout(io.StringIO()):
        await func(c, args)


async def finish_site(c: Any, args: argparse.Namespace) -> dict[str, str]:
    """After the gateway exists: the EST and CES bootstrap accounts, with the passwords
    ``write_site`` generated."""
    site = Path(c.config.file).parent
    secret_dir = site / SECRETS_DIR
    est = secret_dir / EST_PASSWORD_FILE
    ces = secret_dir / WSTEP_PASSWORD_FILE
    await _plugin_command(
        c, ["est", "user", "add", EST_USER, "--password-file", str(est), "--replace"]
    )
    await _plugin_command(c, ["wstep", "user", "add", WSTEP_USER, "--password-file", str(ces)])
    return {
        "config": str(c.config.file),
        "secrets": str(secret_dir),
        "scep_challenge_file": str(secret_dir / SCEP_CHALLENGE_FILE),
        "scep_legacy_challenge_file": str(secret_dir / SCEP_LEGACY_CHALLENGE_FILE),
        "est_user": EST_USER,
        "est_password_file": str(est),
        "ces_user": WSTEP_USER,
        "ces_password_file": str(ces),
    }
