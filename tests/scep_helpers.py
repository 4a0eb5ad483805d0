"""Shared SCEP test fixtures: a templates directory with SCEP-friendly variants, configs with
an ``[scep]`` table, and a running app (aiohttp test client) with its RA certificate."""

from __future__ import annotations

import re
import shutil
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.gateway_process import gateway_process
from tests.helpers import (
    TEMPLATES,
    write_config,
)

STATIC_PASSWORD = "static-secret-123"
SID_URI = "tag:microsoft.com,2022-09-14:sid:S-1-5-21-1004336348-1177238915-682003330-512"


def _variant(source: str, name: str, **replace: str) -> str:
    text = (TEMPLATES / f"{source}.toml").read_text()
    text = re.sub(r'^name = ".*"$', f'name = "{name}"', text, count=1, flags=re.M)
    text = re.sub(r'^oid = ".*"$', f'oid = "2.25.{uuid.uuid4().int}"', text, count=1, flags=re.M)
    for key, value in replace.items():
        line = f"{key} = {value}"
        text, n = re.subn(rf"^{key} = .*$", lambda _m, line=line: line, text, count=1, flags=re.M)
        assert n == 1, key
    return text


def templates_dir(tmp: Path) -> Path:
    """The shipped templates plus:

    * ``scep-device``: ``device`` accepting SHA-1-signed CSRs (micromdm scepclient 2.1),
      renewable at any time (interop renewals right after enrollment), and allowing the
      KB5014754 strong-mapping SID URI;
    * ``scep-approval``: ``approval-required`` with a CN rule that accepts device names.
    """
    out = tmp / "templates"
    out.mkdir(parents=True, exist_ok=True)
    for path in TEMPLATES.glob("*.toml"):
        shutil.copy(path, out / path.name)
    (out / "scep-device.toml").write_text(
        _variant(
            "device",
            "scep-device",
            allow_sha1_signature="true",
            early_renewal="true",
            uri_regex="['tag:microsoft\\.com,2022-09-14:sid:S-1-5-21(-[0-9]+)+']",
        )
    )
    with (out / "scep-device.toml").open("a") as fh:
        # micromdm scepclient always sends C (default US) in the subject.
        fh.write('\n[[subject.rdn]]\ntype = "C"\npattern = "[A-Z]{2}"\nrequired = false\nmax = 1\n')
    (out / "scep-approval.toml").write_text(_variant("approval-required", "scep-approval"))
    return out


def scep_config(tmp: Path, scep_toml: str, *, port: int = 0, extra: str = "") -> Path:
    """A config with the SCEP front-end enabled and ``scep_toml`` appended under ``[scep]``."""
    (tmp / "static.txt").write_text(STATIC_PASSWORD)
    cfg = write_config(
        tmp,
        textwrap.dedent(extra) + "[scep]\nenabled = true\n" + textwrap.dedent(scep_toml),
        port=port,
    )
    text = cfg.read_text().replace(
        f'templates_dir = "{TEMPLATES}"', f'templates_dir = "{templates_dir(tmp)}"'
    )
    cfg.write_text(text)
    return cfg


DEFAULT_ENDPOINTS = """
[scep.endpoints.devices]
template = "scep-device"
challenge = "static"
challenge_password = "file:static.txt"

[scep.endpoints.otp]
template = "scep-device"
challenge = "otp"

[scep.endpoints.approval]
template = "scep-approval"
challenge = "none"

[scep.endpoints.legacy]
template = "scep-device"
challenge = "static"
challenge_password = "file:static.txt"
legacy_des = true

[scep.endpoints.plain]
template = "device"
challenge = "none"
"""


@contextmanager
def serving(cfg: Path, *args: str, port: int | None = None) -> Iterator[int]:
    """``certgate serve`` as a real process (:func:`tests.gateway_process.gateway_process`) on
    a free loopback port until healthy; stopped (SIGTERM, then SIGKILL) on exit."""
    with gateway_process(cfg, *args, port=port) as gateway:
        yield gateway.port
