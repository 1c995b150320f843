// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IDealVaultTypes} from "./interfaces/IDealVault.sol";

/// @title DealVaultStorage
/// @notice The vault's storage layout, in one place: DealVault inherits it to use it, and
///         DealVaultLens inherits it only to know where each variable lives (`.slot`, `.offset`),
///         reading the vault's words through `extSloads`. The lens never writes its own copy.
/// @dev Slots are grouped by what a leg reads together (cold SLOADs cost 2,100 gas each):
///      slot 0 is read and written by every leg, slot 1 by every operator leg (the caps), the books
///      by the legs that move them. ParamTable describes slots 0-3's parameters by (slot, offset,
///      width); `tests/unit/vault/test_storage_layout.py` pins it to the compiler's layout.
///      Widths (every write is a checked downcast or bounded by one): uint80 holds 1,208,925 ETH or
///      1.2e12 USD (6 dp) per deal; uint64 1.8e13 USD; uint56 7.2e10 USD of fees.
abstract contract DealVaultStorage {
    // The core writes these, the extension uses them by DELEGATECALL on the core's storage and the
    // lens only reads their slots: slither, seeing each contract alone, calls them uninitialized,
    // unused or constant.
    // slither-disable-start uninitialized-state,unused-state,constable-states,immutable-states
    /* slot 0: read and written by every leg (phase, reentrancy, legSeq), so the debt books the
       debt legs write live here too; buy's discount limit and TWAP window */
    /// @dev The debt tokens' scaled balances after the vault's own last debt action: the debt is
    ///      these at the pool's index; a fall between two of the vault's debt actions is someone
    ///      else's repayment (or a liquidation). uint72 holds 4.7e15 USD.
    uint72 internal scaledDebtT;
    uint72 internal scaledDebtC;
    IDealVaultTypes.Phase internal phase_;
    IDealVaultTypes.Phase internal phaseBeforeHolding;
    bool internal paused_;
    uint8 internal rung;
    bool internal entered;
    uint32 internal legSeq;
    uint16 internal minDiscountBps;
    uint16 internal twapWindow;

    /* slot 1: every operator leg (role, caps) */
    address internal operator_;
    uint16 internal maxLtvBps;
    uint16 internal maxExposureBps;
    uint16 internal maxDeskFeeBps;
    uint16 internal maxSlippageBps;
    uint32 internal oracleMaxAge;

    /* slot 2: the guardian; the loss budget's rate; the timelock */
    address internal guardian_;
    uint16 internal maxOperatorLossBps;
    uint32 internal loosenDelay;

    /* slot 3: the owner (no loop leg reads it: `_onlyOperatorOrOwner` stops at the operator) */
    address internal owner_;
    uint32 internal sellFloorPrice;
    uint64 internal ethFloorPrice;

    /// @dev slots 4-7: slots 0-3 as the constructor wrote them; a loosening may go back at most to
    ///      the value at the same offset here.
    uint256[4] internal initialWords;

    /// @dev Param => queued value << 64 | validAt (0 = nothing queued).
    mapping(uint256 => uint256) internal queued;

    /* BOOKS. Each slot also holds a `keep` word set to 1 at deployment, so a book slot is never
       zero and no leg pays the 20,000-gas zero -> non-zero SSTORE. */

    /// @dev Before `split` the whole funded capital is booked in coreEth.
    uint80 internal coreEth;
    uint80 internal workingEth;
    uint80 internal opportunisticEth;
    uint16 internal keep1;

    /// @dev repaidOnBehalf: what others repaid for the vault directly on the pool (6 dp), counted
    ///      as debt by the caps; here because the legs that check caps read this slot anyway.
    uint80 internal collateral9;
    uint80 internal collateral10;
    uint80 internal repaidOnBehalf;
    uint16 internal keep2;

    uint80 internal stableT;
    uint80 internal stableC;
    uint80 internal usdtzHeld;
    uint16 internal keep3;

    /// @dev the ladder's progress is below two top rungs, which the constructor keeps under 2**63.
    uint64 internal usdtzCost;
    uint64 internal rungProgress;
    uint64 internal redeemedTotal;
    uint56 internal feesPaid;
    uint8 internal keep4;

    /// @dev The loss budget's books (6 dp USD) and the owner's stablecoin put in.
    uint64 internal operatorLoss;
    uint64 internal splitValue;
    uint64 internal ownerRepaid;
    uint64 internal writtenOffUsdtz;

    /// @dev ETH the owner took back from the buckets in HOLDING (counted in the PnL).
    uint80 internal ethReturned;
    int88 internal realizedPnlEth;
    int88 internal realizedPnlUsd;

    address internal pendingOwner_;
    uint80 internal fundedCapital;

    /// @dev TWAP observations: the pair's cumulative price of USDTz in the stablecoin (UQ112x112
    ///      seconds, low 192 bits) << 32 | the block timestamp.
    uint256 internal observationT;
    uint256 internal observationC;
    // slither-disable-end uninitialized-state,unused-state,constable-states,immutable-states
}
