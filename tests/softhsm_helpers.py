"""SoftHSM2 tokens for the PKCS#11 key store tests: a token directory and configuration of
its own in a temporary directory (``SOFTHSM2_CONF``), initialised with ``softhsm2-util``.

SoftHSM2 comes from Debian's softhsm2 package (../shared/peers/install.sh installs it); a
missing one skips the test, or fails it under ``CERTGATE_REQUIRE_PEERS=1``.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import require_tool

#: Where Debian's softhsm2 puts the module (the first is a link to the second on amd64).
MODULES = (
    Path("/usr/lib/softhsm/libsofthsm2.so"),
    Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"),
)
PIN_ENV = "CERTGATE_TEST_PKCS11_PIN"


def softhsm_module() -> Path:
    """The SoftHSM2 PKCS#11 module; skip (fail with CERTGATE_REQUIRE_PEERS=1) without it."""
    require_tool("softhsm2-util")
    for path in MODULES:
        if path.exists():
            return path
    message = "libsofthsm2.so not found (../shared/peers/install.sh installs softhsm2)"
    if os.environ.get("CERTGATE_REQUIRE_PEERS") == "1":
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True)
class SoftToken:
    """An initialised SoftHSM2 token; ``env`` is what a process using it needs."""

    conf: Path
    module: Path
    label: str
    pin: str
    so_pin: str
    #: the slot id SoftHSM2 gave the token when it was initialised
    slot: int = -1

    @property
    def env(self) -> dict[str, str]:
        return {"SOFTHSM2_CONF": str(self.conf), PIN_ENV: self.pin}

    def connector_keys(self, *, key_label: str = "ca-issuing", extra: str = "") -> str:
        """The ``[connectors.local]`` lines selecting this token (PIN by env reference)."""
        return (
            'key_store = "pkcs11"\n'
            f'pkcs11_module = "{self.module}"\n'
            f'pkcs11_token_label = "{self.label}"\n'
            f'pkcs11_pin = "env:{PIN_ENV}"\n'
            f'pkcs11_key_label = "{key_label}"\n'
            f'pkcs11_root_key_label = "{key_label}-root"\n' + extra
        )

    def util(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [require_tool("softhsm2-util"), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "SOFTHSM2_CONF": str(self.conf)},
        )


def soft_token(tmp: Path, label: str = "certgate-test", pin: str = "4711-user") -> SoftToken:
    """A fresh token in ``tmp/softhsm`` (its own configuration file and token directory)."""
    module = softhsm_module()
    base = tmp / "softhsm"
    tokens = base / "tokens"
    tokens.mkdir(parents=True)
    conf = base / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    token = SoftToken(conf, module, label, pin, "so-4711")
    done = token.util(
        "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", "so-4711"
    )
    assert done.returncode == 0, done.stderr
    # "The token has been initialized and is reassigned to slot 1234567"
    slot = int(done.stdout.strip().rsplit(" ", 1)[-1])
    return SoftToken(conf, module, label, pin, "so-4711", slot)
