"""The kit's exception root: every error the market kit raises derives from :class:`KitError`
(a :class:`dealvault.errors.DealVaultError`, and a ``RuntimeError`` as before)."""

from __future__ import annotations

from dealvault.errors import DealVaultError

__all__ = ["KitError"]


class KitError(DealVaultError, RuntimeError):
    """The market kit (anvil, mirror, overlay, funding) failed; the message says where and why."""
