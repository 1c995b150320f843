"""One root exception and one exit-code table for the whole harness.

Every error the library raises for its caller derives from :class:`DealVaultError` and carries
the :class:`ExitCode` a script exits with when it stops on it; every ``ape run`` script uses this
table (documented in the README's "Running a deal").
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode", "DealVaultError", "InputError", "ChainError"]


class ExitCode(IntEnum):
    """The exit codes of every script."""

    OK = 0
    FAILED = 1  # an unexpected failure (a reverted leg, a bug), a verification mismatch, a status flag
    INPUT = 2  # bad input (spec, network, account, config, vault phase): nothing was sent
    HOLDING = 3  # a tranche failed: the vault is in HOLDING (the message lists the safe options)
    OWNER_ACTION = 4  # waiting for an owner action, or for time (the TWAP window): resumable
    CHAIN = 5  # the chain could not be reached: the record is intact, re-run with --resume
    REFUSED = 6  # an off-chain cap check or the simulation refused a leg: nothing sent for it


class DealVaultError(Exception):
    """The root of every error the harness raises for its caller."""

    exit_code: ExitCode = ExitCode.FAILED


class InputError(DealVaultError):
    """Bad input from the caller (a spec, a flag, a config, an account): nothing was sent."""

    exit_code = ExitCode.INPUT


class ChainError(DealVaultError):
    """The node could not be reached or answered nonsense (a timeout, a refused connection)."""

    exit_code = ExitCode.CHAIN
