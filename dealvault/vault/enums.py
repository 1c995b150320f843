"""The vault's enums and phase masks, written once in Python (IDealVaultTypes mirrored).

Pinned to the contract by ``tests/unit/vault/test_vault_mirror.py``: the enum members against the
compiler's AST of ``contracts/interfaces/IDealVault.sol``, the phase masks against the vault's own
``WrongPhase(current, allowedMask)`` answers."""

from __future__ import annotations

from enum import IntEnum, IntFlag

__all__ = ["Phase", "Leg", "OracleStatus", "Param", "Phases", "LEG_PHASES", "RISK_ADDING", "LEG_OF_FUNCTION", "rung_number"]


def rung_number(index: int) -> int:
    """The number a rung is shown by (1, 2, 3: $50k, $250k, $1M+) in every message, table and JSON
    field the harness prints; the vault (its ``rung`` and events) and the record keep its index 0..2."""
    return int(index) + 1


class Phase(IntEnum):
    FUNDED = 0
    SPLIT = 1
    WORKING = 2
    POSITIONED = 3
    MONETIZING = 4
    HOLDING = 5
    CLOSED = 6


class Leg(IntEnum):
    Split = 0
    Supply = 1
    Borrow = 2
    Buy = 3
    Redeem = 4
    Sell = 5
    Repay = 6
    OwnerRepay = 7
    AddCollateral = 8
    WithdrawCollateral = 9
    Deleverage = 10
    Close = 11
    Hold = 12
    Resume = 13
    Fund = 14


class OracleStatus(IntEnum):
    Fresh = 0
    Stale = 1
    Invalid = 2
    Unread = 3  # only in a LegCompleted snapshot of a leg that read no market data


class Param(IntEnum):
    MaxLtvBps = 0
    MaxExposureBps = 1
    MaxDeskFeeBps = 2
    OracleMaxAge = 3
    MinDiscountBps = 4
    MaxSlippageBps = 5
    SellFloorPrice = 6
    EthFloorPrice = 7
    MaxOperatorLossBps = 8
    TwapWindow = 9
    LoosenDelay = 10


class Phases(IntFlag):
    """A set of phases, as the vault's masks (bit i = Phase i, `WrongPhase.allowedMask`)."""

    FUNDED = 1 << Phase.FUNDED
    SPLIT = 1 << Phase.SPLIT
    WORKING = 1 << Phase.WORKING
    POSITIONED = 1 << Phase.POSITIONED
    MONETIZING = 1 << Phase.MONETIZING
    HOLDING = 1 << Phase.HOLDING
    CLOSED = 1 << Phase.CLOSED
    ACTIVE = WORKING | POSITIONED | MONETIZING
    REDUCE = ACTIVE | HOLDING
    USDTZ = POSITIONED | MONETIZING | HOLDING
    OPEN = FUNDED | SPLIT | ACTIVE

    def allows(self, phase: int) -> bool:
        return bool(self & (1 << int(phase)))


#: Where each function of the vault may run (the leg x phase table of IDealVault).
#: withdrawCollateral: REDUCE without debt; with debt it is risk-adding (ACTIVE, not paused).
LEG_PHASES: dict[str, Phases] = {
    "fund": Phases.FUNDED,
    "split": Phases.FUNDED,
    "supply": Phases.SPLIT | Phases.ACTIVE,
    "borrow": Phases.ACTIVE,
    "buy": Phases.ACTIVE,
    "redeem": Phases.USDTZ,
    "sell": Phases.USDTZ,
    "repay": Phases.REDUCE,
    "ownerRepay": Phases.REDUCE,
    "addCollateral": Phases.REDUCE,
    "withdrawCollateral": Phases.REDUCE,
    "deleverage": Phases.REDUCE,
    "close": Phases.SPLIT | Phases.REDUCE,
    "hold": Phases.OPEN,
    "resume": Phases.HOLDING,
    "observe": Phases.OPEN | Phases.HOLDING,
    "renounceOwnership": Phases.CLOSED,
}

#: The legs that add risk: refused while paused or in HOLDING, need a Fresh oracle, end within every cap.
RISK_ADDING = frozenset({"supply", "borrow", "buy"})

#: The vault function that runs each Leg.
LEG_OF_FUNCTION: dict[str, Leg] = {
    "split": Leg.Split, "supply": Leg.Supply, "borrow": Leg.Borrow, "buy": Leg.Buy, "redeem": Leg.Redeem,
    "sell": Leg.Sell, "repay": Leg.Repay, "ownerRepay": Leg.OwnerRepay, "addCollateral": Leg.AddCollateral,
    "withdrawCollateral": Leg.WithdrawCollateral, "deleverage": Leg.Deleverage, "close": Leg.Close,
    "hold": Leg.Hold, "resume": Leg.Resume, "fund": Leg.Fund,
}
