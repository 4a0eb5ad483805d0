"""The PKCS#11 module and the one logged-in session per token and process that
:mod:`backends.local_ca.pkcs11_store`'s signers share.

A start-up problem is a :class:`TokenSettingError` naming the setting that explains it (a
missing module or token, a wrong or locked PIN), which the CA bootstrap turns into one line.
The session is shared by the token's signers and serialised by its lock; :meth:`Token.reopen`
gives a fresh one after a token error. The module is C_Finalize'd when its last session closes,
so a later start re-reads the token list.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import pkcs11

from backends.local_ca.keystore import KeyStoreError
from backends.local_ca.settings import Pkcs11Settings

log = logging.getLogger(__name__)

_PIN_ERRORS = (
    pkcs11.PinIncorrect,
    pkcs11.PinInvalid,
    pkcs11.PinLenRange,
    pkcs11.PinExpired,
)


class TokenSettingError(KeyStoreError):
    """A start-up problem that one setting explains (``setting``: its key in the table)."""

    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(reason)
        self.setting = setting


# Lock order: _tokens_lock, then a token's lock, then _modules_lock.
_tokens_lock = threading.Lock()
_tokens: dict[tuple[str, str | None, int | None], Token] = {}
_modules_lock = threading.Lock()
_module_users: dict[str, int] = {}


def _acquire_module(path: str) -> Any:
    """The loaded, initialised PKCS#11 module at ``path`` (counted: see :func:`_release_module`)."""
    with _modules_lock:
        try:
            lib = pkcs11.lib(path)
        except pkcs11.PKCS11Error as exc:
            raise TokenSettingError("pkcs11_module", f"cannot load {path}: {exc}") from None
        _module_users[path] = _module_users.get(path, 0) + 1
        return lib


def _release_module(path: str, lib: Any) -> None:
    """C_Finalize when the last user is gone: closes every session, and the next start
    re-initialises (SoftHSM, for one, reads its token list only then)."""
    with _modules_lock:
        left = _module_users.get(path, 1) - 1
        if left > 0:
            _module_users[path] = left
            return
        _module_users.pop(path, None)
        try:
            lib.finalize()
        except pkcs11.PKCS11Error as exc:
            log.warning("C_Finalize of %s failed: %s", path, type(exc).__name__)


class Token:
    """One logged-in session on one token, shared by its signers in this process."""

    def __init__(self, settings: Pkcs11Settings) -> None:
        self.settings = settings
        self.lock = threading.RLock()
        self.name = (
            f"token {settings.token_label!r}"
            if settings.token_label is not None
            else f"the token in slot {settings.slot}"
        )
        self.users = 0
        #: bumped on every reopen, so signers know their key handles are stale
        self.generation = 0
        self._path = str(settings.module)
        self._lib: Any = None
        self.session: Any = None

    def open(self) -> None:
        """Load the module and open the session (start-up errors name their setting)."""
        if not os.path.exists(self._path):
            raise TokenSettingError("pkcs11_module", f"{self._path} does not exist")
        self._lib = _acquire_module(self._path)
        try:
            self.session = self._login(self._find())
        except BaseException:
            lib, self._lib = self._lib, None
            _release_module(self._path, lib)
            raise

    def _find(self) -> Any:
        s = self.settings
        try:
            if s.token_label is not None:
                return self._lib.get_token(token_label=s.token_label)
            for slot in self._lib.get_slots(token_present=True):
                if slot.slot_id == s.slot:
                    return slot.get_token()
        except pkcs11.NoSuchToken:
            pass
        except pkcs11.MultipleTokensReturned:
            raise TokenSettingError(
                "pkcs11_token_label",
                f"several tokens are labelled {s.token_label!r}: use pkcs11_slot",
            ) from None
        except pkcs11.PKCS11Error as exc:
            raise TokenSettingError(
                "pkcs11_module", f"{self._path} cannot list its tokens ({type(exc).__name__})"
            ) from None
        setting = "pkcs11_token_label" if s.token_label is not None else "pkcs11_slot"
        raise TokenSettingError(setting, f"{self.name} is not present in {self._path}")

    def _login(self, token: Any) -> Any:
        try:
            return token.open(rw=True, user_pin=self.settings.pin)
        except pkcs11.UserAlreadyLoggedIn:
            # Login state is per application and token: another session of this process
            # (closed without logout, or a second library user) still holds it.
            return token.open(rw=True)
        except _PIN_ERRORS:
            raise TokenSettingError("pkcs11_pin", f"wrong PIN for {self.name}") from None
        except pkcs11.PinLocked:
            locked = f"the user PIN of {self.name} is locked"
            raise TokenSettingError("pkcs11_pin", locked) from None
        except pkcs11.PKCS11Error as exc:
            raise TokenSettingError(
                "pkcs11_token_label", f"cannot log in to {self.name} ({type(exc).__name__})"
            ) from None

    def reopen(self) -> None:
        """A fresh session after a token error (the old one closed, errors ignored)."""
        self._close_session()
        try:
            if not getattr(self._lib, "initialized", True):
                self._lib.initialize()  # someone C_Finalize'd the module under us
            self.session = self._login(self._find())
        except pkcs11.PKCS11Error as exc:
            raise KeyStoreError(f"cannot reopen {self.name} ({type(exc).__name__})") from None
        except TokenSettingError as exc:
            raise KeyStoreError(f"cannot reopen {self.name}: {exc}") from None
        self.generation += 1

    def _close_session(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            try:
                session.close()
            except pkcs11.PKCS11Error:
                pass  # the session is gone already (that is why we reopen)

    def close(self) -> None:
        self._close_session()
        if self._lib is not None:
            lib, self._lib = self._lib, None
            _release_module(self._path, lib)


def token_for(settings: Pkcs11Settings) -> Token:
    """The process's session on the configured token (opened on first use)."""
    key = (str(settings.module), settings.token_label, settings.slot)
    with _tokens_lock:
        token = _tokens.get(key)
        if token is None:
            token = Token(settings)
            token.open()
            _tokens[key] = token
        token.users += 1
        return token


def release_token(token: Token) -> None:
    """One signer fewer; the last one closes the session (and maybe the module)."""
    with _tokens_lock:
        token.users -= 1
        if token.users > 0:
            return
        key = (str(token.settings.module), token.settings.token_label, token.settings.slot)
        if _tokens.get(key) is token:
            del _tokens[key]
        with token.lock:  # never under a signature in progress
            token.close()
