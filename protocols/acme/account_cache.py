"""The ACME front-end's per-process account cache (:class:`AccountCache`) and the signal that
a cached copy went stale (:class:`AccountChanged`); :mod:`protocols.acme.base` uses both."""

from __future__ import annotations

from protocols.acme import state


class AccountChanged(Exception):
    """The cached account a request was authenticated with no longer reads the same in the
    nonce's transaction (nothing was taken or written): :func:`protocols.acme.base.handler` runs it
    again."""


class AccountCache:
    """The accounts this process has read, by id (bounded: the oldest entry goes first).

    A cached account only spares the read before the signature check; it is never trusted on
    its own: :meth:`protocols.acme.base.Acme.write` passes it to the repository's
    ``with_nonce`` as ``expect``, which takes the nonce only if the stored account still equals
    it. ``enabled`` False is the plain path (every request reads its account), which the tests
    compare this one with."""

    def __init__(self, size: int = 4096, *, enabled: bool = True) -> None:
        self.size = size
        self.enabled = enabled
        self._accounts: dict[str, state.Account] = {}

    def get(self, account_id: str) -> state.Account | None:
        return self._accounts.get(account_id) if self.enabled else None

    def put(self, account: state.Account) -> None:
        if not self.enabled:
            return
        accounts = self._accounts
        accounts.pop(account.id, None)
        if len(accounts) >= self.size:
            del accounts[next(iter(accounts))]
        accounts[account.id] = account

    def forget(self, account_id: str) -> None:
        self._accounts.pop(account_id, None)
