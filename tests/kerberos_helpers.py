"""A throwaway MIT Kerberos realm on loopback for the CES Negotiate tests.

Built on k5test (python-gssapi's own test realm) with the rough edges filed off for CI: every
command has a timeout, the KDC listens on a free loopback port and is waited for with a deadline,
and the only host name is ``localhost`` (no DNS, no reverse lookups). Needs the Debian packages
``krb5-kdc krb5-admin-server krb5-user`` and the ``kerberos-test`` extra; :func:`require_kerberos`
skips without them, or fails when ``CERTGATE_REQUIRE_PEERS=1``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from typing import Any

import pytest

#: Seconds for any one realm command (kdb5_util, kadmin.local, kinit) and for the KDC to start.
COMMAND_TIMEOUT = 20.0
HOST = "localhost"
REALM = "CERTGATE.TEST"
TOOLS = ("krb5kdc", "kdb5_util", "kadmin.local", "kinit", "klist")


def require_kerberos() -> None:
    """Skip (or fail with CERTGATE_REQUIRE_PEERS=1) unless the KDC tools and modules exist."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    missing = [t for t in TOOLS if shutil.which(t, path=search) is None]
    for module in ("gssapi", "k5test", "spnego"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"python module {module}")
    if missing:
        message = (
            f"Kerberos test tooling missing: {', '.join(missing)} (apt-get install krb5-kdc "
            "krb5-admin-server krb5-user libkrb5-dev; pip install -e '.[test,kerberos-test]'; "
            "./dev test does both as root)"
        )
        if os.environ.get("CERTGATE_REQUIRE_PEERS") == "1":
            pytest.fail(message)
        pytest.skip(message)


def _free_udp_and_tcp_port() -> int:
    """A loopback port free for both UDP and TCP (the KDC listens on both)."""
    for _ in range(50):
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free loopback port for the KDC")


def start_realm() -> Any:
    """A running realm: KDC up, ``user@REALM`` kinit'ed, ``HTTP/localhost`` in ``realm.keytab``."""
    from k5test.realm import MITRealm

    class LoopbackRealm(MITRealm):  # type: ignore[misc]
        hostname = HOST  # k5test would use socket.getfqdn()

        def run(
            self,
            args: list[str],
            env: dict[str, str] | None = None,
            input: str | None = None,
            expected_code: int = 0,
        ) -> bytes:
            done = subprocess.run(
                args,
                input=input.encode() if input else None,
                stdin=None if input else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or self.env)},
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
            if done.returncode != expected_code:
                raise RuntimeError(
                    f"{' '.join(args)} exited {done.returncode}: {done.stdout.decode()[-2000:]}"
                )
            return done.stdout

        def start_kdc(self, args: list[str] | None = None, env: Any = None) -> None:
            proc = subprocess.Popen(
                [self.krb5kdc, "-n", *(args or [])],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ, **(env or self.env)},
            )
            self._kdc_proc = proc
            self._daemons.append(proc)
            deadline = time.monotonic() + COMMAND_TIMEOUT
            while proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.portbase), timeout=1).close()
                    return
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
            raise RuntimeError(f"krb5kdc did not listen on {self.portbase} (exit {proc.poll()})")

        def stop(self) -> None:
            for proc in list(self._daemons):
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
                self._daemons.remove(proc)
            self._kdc_proc = None
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    no_dns = {
        "dns_lookup_kdc": "false",
        "dns_lookup_realm": "false",
        "dns_canonicalize_hostname": "false",
        "rdns": "false",
        "udp_preference_limit": "1",  # TCP only: a refused connection fails fast
    }
    realm = LoopbackRealm(
        realm=REALM,
        portbase=_free_udp_and_tcp_port(),
        krb5_conf={"libdefaults": no_dns, "domain_realm": {HOST: REALM, ".certgate.test": REALM}},
        create_kdb=False,  # done below, where a failure still cleans up
        start_kdc=False,
        get_creds=False,
    )
    try:
        realm.create_kdb()
        realm.addprinc(realm.user_princ, realm.password("user"))
        realm.http_princ = f"HTTP/{HOST}@{REALM}"
        realm.addprinc(realm.http_princ)
        realm.extract_keytab(realm.http_princ, realm.keytab)
        realm.start_kdc()  # stop() ends it if anything after fails
        realm.kinit(realm.user_princ, realm.password("user"))
    except BaseException:
        realm.stop()
        raise
    return realm
