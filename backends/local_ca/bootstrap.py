"""Create the local CA once, atomically, or load it.

The CA directory (``<data_dir>/ca``, or ``<data_dir>/ca-<name>`` for a connector not named
``local``) holds::

    root.pem  issuing.pem  chain.pem (issuing first, root last)     certificates, mode 0644
    root.key.pem  issuing.key.pem                                    encrypted PKCS#8, mode 0600
    passphrase                                  only if no passphrase is configured, mode 0600

With ``key_store = "pkcs11"`` the two keys live in the token instead (generated there, or found
by label: :mod:`backends.local_ca.pkcs11_store`) and the directory holds only certificates.

Creation is safe against several worker processes starting at once and against a crash
halfway: under an ``flock`` on ``<data_dir>/.<dir>.lock`` the material is written into a
staging directory, fsynced, and renamed into place, so the CA directory either exists complete
or not at all (a crashed attempt leaves only a staging directory, removed by the next start).
The root key is written once and never loaded again: issuance needs only the issuing key.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from backends.local_ca.ca_certs import ca_certificates
from backends.local_ca.importer import imported_certificate, load_import
from backends.local_ca.keystore import (
    CASigner,
    FileKeyStore,
    KeyDecryptionError,
    KeyStore,
    KeyStoreError,
    spki_der,
    write_file,
    write_private_file,
)
from backends.local_ca.settings import PASSPHRASE_ENV, LocalCASettings
from gateway.errors import ConfigError

log = logging.getLogger(__name__)

ROOT_PEM = "root.pem"
ISSUING_PEM = "issuing.pem"
CHAIN_PEM = "chain.pem"
PASSPHRASE_FILE = "passphrase"  # noqa: S105 (a file name, not a secret)

_warned_generated: set[Path] = set()


class WrongCAPassphrase(ConfigError):
    """The configured (or generated) passphrase does not decrypt the CA key."""

    def __init__(self, settings: LocalCASettings, location: str) -> None:
        key = settings.key_path("passphrase")
        super().__init__(
            settings.config_file,
            key,
            f"cannot decrypt the CA key {location}: wrong passphrase "
            f"(set {PASSPHRASE_ENV} or {key})",
        )
        self.location = location


@dataclass(frozen=True)
class CAMaterial:
    """A loaded CA: the issuing key (as a signer) and the chain, issuing CA first; ``keys``
    is the key store the CA keys are in, for the other keys the CA keeps beside them (the
    OCSP responder's, :mod:`backends.local_ca.ocsp`)."""

    directory: Path
    signer: CASigner = field(repr=False)
    chain: tuple[x509.Certificate, ...]
    created: bool
    keys: KeyStore | None = field(default=None, repr=False)

    @property
    def certificate(self) -> x509.Certificate:
        return self.chain[0]


def ca_directory(data_dir: Path, name: str) -> Path:
    """Where connector ``name`` keeps its CA (two local CAs never share one by accident)."""
    return data_dir / ("ca" if name == "local" else f"ca-{name}")


def open_ca(
    settings: LocalCASettings,
    data_dir: Path,
    root_urls: tuple[str, ...] = (),
    *,
    warn: bool = True,
) -> CAMaterial:
    """Create the CA directory on first start (generate or import), then load it.

    ``root_urls`` go into a generated issuing CA's AIA caIssuers (where its root is
    published); an imported or existing CA keeps the certificates it has. ``warn=False``: no
    warning about a generated passphrase (operator commands; the server's start-up says it)."""
    directory = ca_directory(data_dir, settings.name)
    created = False
    if not directory.is_dir():
        data_dir.mkdir(parents=True, exist_ok=True)
        with _exclusive_lock(data_dir / f".{directory.name}.lock"):
            if not directory.is_dir():
                for stale in data_dir.glob(f".{directory.name}.staging-*"):
                    shutil.rmtree(stale, ignore_errors=True)
                created = _create(settings, directory, root_urls)
    material = _load(settings, directory, created, warn)
    if not created and settings.import_source is not None:
        _check_same_import(settings, material)
    return material


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _create(settings: LocalCASettings, directory: Path, root_urls: tuple[str, ...]) -> bool:
    """Write the CA into a staging directory and rename it into place; False if another
    process won the race (only possible where ``flock`` is not honoured)."""
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.staging-", dir=directory.parent))
    try:
        if settings.pkcs11 is not None:
            # No passphrase and no key file: the token generates and keeps the keys.
            chain = _generate(settings, _token_store(settings), root_urls)
        else:
            passphrase = settings.passphrase
            if passphrase is None:
                passphrase = secrets.token_urlsafe(32).encode("ascii")
                write_private_file(staging / PASSPHRASE_FILE, passphrase)
            store = FileKeyStore(staging, passphrase, generated=settings.passphrase is None)
            if settings.import_source:
                chain = _adopt(settings, store)
            else:
                chain = _generate(settings, store, root_urls)
        write_file(staging / ISSUING_PEM, _pem(chain[:1]), 0o644)
        write_file(staging / ROOT_PEM, _pem(chain[-1:]), 0o644)
        write_file(staging / CHAIN_PEM, _pem(chain), 0o644)
        _fsync_dir(staging)
        try:
            os.rename(staging, directory)
        except OSError:
            if directory.is_dir():
                shutil.rmtree(staging, ignore_errors=True)
                return False
            raise
        _fsync_dir(directory.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info(
        "created local CA %s in %s (issuing CA %s)",
        settings.name,
        directory,
        chain[0].subject.rfc4514_string(),
    )
    return True


def _generate(
    settings: LocalCASettings, store: KeyStore, root_urls: tuple[str, ...]
) -> tuple[x509.Certificate, ...]:
    """Two keys generated in ``store`` and the CA certificates over them (issuing, root)."""
    now = datetime.now(UTC).replace(microsecond=0)
    with _token_errors(settings):
        root_key = store.generate("root", settings.key_algorithm)
        try:
            issuing_key = store.generate("issuing", settings.key_algorithm)
        except BaseException:
            root_key.close()
            raise
    try:
        return ca_certificates(settings, root_key, issuing_key, now, root_urls)
    finally:
        root_key.close()
        issuing_key.close()


def _adopt(settings: LocalCASettings, store: FileKeyStore) -> tuple[x509.Certificate, ...]:
    """Import an existing issuing CA: its key is re-encrypted into ``store``."""
    assert settings.import_source is not None
    imported = load_import(settings.import_source, settings)
    store.put("issuing", imported.key).close()
    now = datetime.now(UTC)
    cert = imported.certificate
    if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
        log.warning(
            "imported CA %s is outside its validity (%s .. %s): it cannot issue",
            cert.subject.rfc4514_string(),
            cert.not_valid_before_utc.isoformat(),
            cert.not_valid_after_utc.isoformat(),
        )
    return (cert, *imported.issuers)


def _token_store(settings: LocalCASettings) -> KeyStore:
    """The PKCS#11 key store (python-pkcs11 is an optional extra, imported only here)."""
    assert settings.pkcs11 is not None
    try:
        from backends.local_ca.pkcs11_store import Pkcs11KeyStore
    except ImportError as exc:
        if exc.name != "pkcs11":
            raise
        raise settings.error(
            "key_store",
            "needs python-pkcs11, which is not installed: pip install 'certgate[pkcs11]'",
        ) from None
    return Pkcs11KeyStore(settings.pkcs11)


@contextlib.contextmanager
def _token_errors(settings: LocalCASettings) -> Iterator[None]:
    """A token problem at start-up as one ConfigError line naming the setting that explains it
    (a wrong PIN, a missing token or module, a key label not found)."""
    try:
        yield
    except KeyStoreError as exc:
        setting = getattr(exc, "setting", None)
        if setting is None:
            raise _broken(settings, str(exc)) from None
        raise settings.error(setting, str(exc)) from None


def _load_token(settings: LocalCASettings, directory: Path, created: bool) -> CAMaterial:
    """The issuing key from the token, checked against the CA certificate in ``directory``."""
    chain = _read_chain(settings, directory)
    store = _token_store(settings)
    with _token_errors(settings):
        signer = store.load("issuing")
    if spki_der(signer.public_key()) != spki_der(chain[0].public_key()):
        signer.close()
        raise settings.error(
            "pkcs11_key_label",
            f"{store.location('issuing')} does not match {directory / CHAIN_PEM}",
        )
    return CAMaterial(directory, signer, chain, created, store)


def _read_chain(settings: LocalCASettings, directory: Path) -> tuple[x509.Certificate, ...]:
    chain_path = directory / CHAIN_PEM
    try:
        return tuple(x509.load_pem_x509_certificates(chain_path.read_bytes()))
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "no PEM certificates"
        raise _broken(settings, f"cannot read {chain_path}: {reason}") from None


def _load(
    settings: LocalCASettings, directory: Path, created: bool, warn: bool = True
) -> CAMaterial:
    if settings.pkcs11 is not None:
        return _load_token(settings, directory, created)
    passphrase = settings.passphrase
    if passphrase is None:
        passphrase = _generated_passphrase(settings, directory, warn)
    chain_path = directory / CHAIN_PEM
    chain = _read_chain(settings, directory)
    store = FileKeyStore(directory, passphrase, generated=settings.passphrase is None)
    try:
        signer = store.load("issuing")
        # The root key is never loaded for signing: bring a legacy-KDF file up to date here.
        if settings.passphrase is not None and store.path("root").exists():
            store.upgrade("root")
    except KeyDecryptionError as exc:
        raise WrongCAPassphrase(settings, exc.location) from None
    except KeyStoreError as exc:
        raise _broken(settings, str(exc)) from None
    if spki_der(signer.public_key()) != spki_der(chain[0].public_key()):
        signer.close()
        raise _broken(settings, f"{store.location('issuing')} does not match {chain_path}")
    return CAMaterial(directory, signer, chain, created, store)


def _generated_passphrase(settings: LocalCASettings, directory: Path, warn: bool) -> bytes:
    path = directory / PASSPHRASE_FILE
    try:
        passphrase = path.read_bytes().rstrip(b"\r\n")
    except FileNotFoundError:
        raise settings.error(
            "passphrase",
            f"not set, {PASSPHRASE_ENV} is not set either, and {path} does not exist: "
            f"set the passphrase the keys in {directory} are encrypted with",
        ) from None
    except OSError as exc:
        raise settings.error("passphrase", f"cannot read {path}: {exc.strerror}") from None
    if warn and directory not in _warned_generated:
        _warned_generated.add(directory)
        log.warning(
            "the CA keys in %s are encrypted with a generated passphrase stored beside them "
            "(%s); in production set %s or %s",
            directory,
            path,
            PASSPHRASE_ENV,
            settings.key_path("passphrase"),
        )
    return passphrase


def _check_same_import(settings: LocalCASettings, material: CAMaterial) -> None:
    """Refuse a changed import source instead of silently keeping the old CA."""
    assert settings.import_source is not None
    wanted = imported_certificate(settings.import_source)
    if wanted is None:
        log.info("import source unreadable; using the CA already in %s", material.directory)
    elif wanted != material.certificate:
        key = "import_pkcs12" if settings.import_source.pkcs12 else "import_certificate"
        raise settings.error(
            key,
            f"{material.directory} already holds another issuing CA "
            f"({material.certificate.subject.rfc4514_string()}): move it away to import anew",
        )


def _broken(settings: LocalCASettings, reason: str) -> ConfigError:
    return ConfigError(settings.config_file, f"connectors.{settings.name}", reason)


def _pem(certs: tuple[x509.Certificate, ...]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
