"""How a deal run stops: its exceptions, each carrying the :class:`~dealvault.errors.ExitCode` a
script exits with (the one table in :mod:`dealvault.errors`).

Every one derives from :class:`DealError` (a :class:`~dealvault.errors.DealVaultError` and a
RuntimeError); bad input and an unreachable chain are also the library-wide
:class:`dealvault.errors.InputError` / :class:`dealvault.errors.ChainError`.
"""

from __future__ import annotations

from dealvault import errors
from dealvault.errors import ExitCode

__all__ = [
    "DealError", "InputError", "CapError", "LegRejected", "OwnerActionNeeded", "WaitNeeded", "ChainError",
    "EXIT_OK", "EXIT_ERROR", "EXIT_INPUT", "EXIT_HOLDING", "EXIT_OWNER_ACTION", "EXIT_CHAIN", "EXIT_REFUSED",
]

# The exit codes under their historical names (scripts and tests import them); the values are ExitCode's.
EXIT_OK = ExitCode.OK
EXIT_ERROR = ExitCode.FAILED
EXIT_INPUT = ExitCode.INPUT
EXIT_HOLDING = ExitCode.HOLDING
EXIT_OWNER_ACTION = ExitCode.OWNER_ACTION
EXIT_CHAIN = ExitCode.CHAIN
EXIT_REFUSED = ExitCode.REFUSED


class DealError(errors.DealVaultError, RuntimeError):
    """A deal run stopped: an unexpected failure (a leg reverted after its simulation passed, a
    LegCompleted that does not match); read the message and the record."""

    exit_code = ExitCode.FAILED


class InputError(DealError, errors.InputError):
    """Bad input (spec, network, account, vault phase); nothing was sent."""

    exit_code = ExitCode.INPUT


class CapError(DealError):
    """An off-chain cap check refused the next leg (before anything was sent for it)."""

    exit_code = ExitCode.REFUSED


class LegRejected(DealError):  # noqa: N818 - the name callers and tests know
    """The simulation (eth_call) of the next leg reverted; nothing was sent for it."""

    exit_code = ExitCode.REFUSED


class OwnerActionNeeded(DealError):  # noqa: N818 - the name callers and tests know
    """The next leg needs the owner first (fund, repay...: `ape run owner_tx`); nothing was sent."""

    exit_code = ExitCode.OWNER_ACTION


class WaitNeeded(OwnerActionNeeded):
    """The next leg needs time to pass (the TWAP observation) beyond the allowed wait; nothing was
    sent for it: re-run with --resume after the time given. Exit code 4, like an owner action."""


class ChainError(DealError, errors.ChainError):
    """RPC failure (connection refused, timeout, node stopped); the record is resumable."""

    exit_code = ExitCode.CHAIN
