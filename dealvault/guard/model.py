"""What the guard reads of each watched deal, and what one poll returns (issue 15).

:func:`dealvault.guard.read.read_all` fills these for every target in a constant number of round
trips; :mod:`dealvault.guard.rules` turns them into actions and alerts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dealvault.vault import Params, RiskView

__all__ = ["Target", "Probes", "GuardReading", "Poll"]


@dataclass(frozen=True)
class Target:
    """One watched deal: its vault and lens, and the addresses the probes use."""

    deal_id: str
    vault: str
    lens: str
    stable: str  # the deal's stablecoin (cUSDT or cUSDC)
    usdtz: str
    desk: str
    operator: str  # the redeem probe is simulated from the operator (eth_call, never sent)


@dataclass(frozen=True)
class Probes:
    """Each probe is None when the simulated call succeeds (or does not apply), else why it fails
    (the revert decoded by name, or ``RedemptionFailed: <reason>``). Simulated with ``eth_call``, never sent."""

    usdtz_transfer: str | None = None  # the vault moving its USDTz (to itself): frozen USDTz reverts
    stable_transfer: str | None = None  # the vault moving its stablecoin: a blacklist or a pause reverts
    desk: str | None = None  # a small redemption now (the vault's redeem from the operator): halted or dry desks fail


@dataclass(frozen=True)
class GuardReading:
    target: Target
    risk: RiskView
    params: Params
    probes: Probes


@dataclass(frozen=True)
class Poll:
    """One poll of every target, at one block."""

    block_number: int
    block_hash: str
    parent_hash: str
    timestamp: int
    readings: dict[str, GuardReading] = field(default_factory=dict)  # by deal id
    errors: dict[str, str] = field(default_factory=dict)  # deal id -> why it could not be read
    round_trips: int = 0
