"""Ape accounts by alias, for every script and for role aliases (``alias:NAME`` in a deal spec):
a keystore alias (``ape accounts import``/``generate``), or ``TEST::N``, ape's N-th test account.
A keystore account signs unattended once unlocked (:func:`unlock_for_signing`: its passphrase
from ape's own ``APE_ACCOUNTS_<alias>_PASSPHRASE``, or asked once on a terminal). No key or
passphrase is ever written or logged here."""

from __future__ import annotations

from typing import Any

from dealvault.errors import InputError

__all__ = ["AccountError", "ape_account", "passphrase_variable", "unlock_for_signing"]


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


def passphrase_variable(alias: str) -> str:
    """The environment variable ape reads a keystore account's passphrase from."""
    return f"APE_ACCOUNTS_{alias}_PASSPHRASE"


def unlock_for_signing(account: Any, *, interactive: bool | None = None) -> None:
    """Let a keystore ``account`` sign this process's transactions without asking each time
    (ape's ``set_autosign``): the passphrase from :func:`passphrase_variable`, else asked once
    when ``interactive`` (default: stdin is a terminal). Test accounts need nothing.
    :class:`AccountError` (exit 2, nothing sent) when it cannot be unlocked."""
    if not hasattr(account, "set_autosign") or not hasattr(account, "keyfile_path"):
        return  # a test account (or another kind that signs without a passphrase)
    import os
    import sys

    import click

    alias = str(account.alias)
    var = passphrase_variable(alias)
    passphrase = os.environ.get(var)
    if passphrase is None and not (sys.stdin.isatty() if interactive is None else interactive):
        raise AccountError(f"{alias!r} is a keystore account and no terminal is attached to ask its passphrase: "
                           f"set {var} in the environment; nothing sent")
    try:
        account.set_autosign(True, passphrase=passphrase)
    except click.exceptions.Abort:
        raise AccountError(f"{alias!r}: no passphrase given; nothing sent") from None
    except Exception as exc:  # ape's InvalidPasswordError / AccountsError
        where = f"from {var}" if passphrase is not None else "as typed"
        raise AccountError(f"{alias!r}: the passphrase ({where}) does not unlock its keystore "
                           f"({type(exc).__name__}); nothing sent") from None
