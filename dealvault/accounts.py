"""Ape accounts by alias, for every script and for role aliases (``alias:NAME`` in a deal spec):
a keystore alias (ape may prompt for its passphrase when it signs), or ``TEST::N``, ape's N-th
test account. No key is ever read here."""

from __future__ import annotations

from typing import Any

from dealvault.errors import InputError

__all__ = ["AccountError", "ape_account"]


class AccountError(InputError):
    """No ape account answers to the alias; the message names the known ones."""

    item = "account"

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(f"{self.item}: {message}")


def ape_account(alias: str) -> Any:
    """The ape ``AccountAPI`` for ``alias``; ``TEST::N`` is ape's N-th test account."""
    from ape import accounts

    if alias.startswith("TEST::"):
        try:
            return accounts.test_accounts[int(alias.split("::", 1)[1])]
        except (ValueError, IndexError):
            raise AccountError(f"{alias!r} is not a test account (TEST::0..TEST::9)") from None
    try:
        return accounts.load(alias)
    except Exception:
        known = ", ".join(sorted(a.alias for a in accounts if getattr(a, "alias", None))) or "none"
        raise AccountError(f"no ape account with alias {alias!r} (known: {known}; `ape accounts list`)") from None
