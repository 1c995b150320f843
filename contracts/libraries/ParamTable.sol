// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title ParamTable
/// @notice Where each owner-set risk parameter (IDealVault.Param) lives in DealVaultStorage, which
///         way is tighter, and its hard limits: the one description `setParam`, the constructor
///         and the lens all read. Packed so the vault's generic setter stays small.
///
/// | # | Param              | slot | byte offset | bytes | tighter | floor | limit (hard ceiling)    |
/// |---|--------------------|------|-------------|-------|---------|-------|-------------------------|
/// | 0 | MaxLtvBps          | 1    | 20          | 2     | lower   | 0     | 3,000 (30%)             |
/// | 1 | MaxExposureBps     | 1    | 22          | 2     | lower   | 0     | 2,500 (25% of NAV)      |
/// | 2 | MaxDeskFeeBps      | 1    | 24          | 2     | lower   | 0     | 1,000                   |
/// | 3 | OracleMaxAge       | 1    | 28          | 4     | lower   | 1     | 2**32 - 1 s             |
/// | 4 | MinDiscountBps     | 0    | 27          | 2     | higher  | 0     | 9,999                   |
/// | 5 | MaxSlippageBps     | 1    | 26          | 2     | lower   | 0     | 1,000                   |
/// | 6 | SellFloorPrice     | 3    | 20          | 4     | higher  | 1     | 1e6 ($1 per USDTz)      |
/// | 7 | EthFloorPrice      | 3    | 24          | 8     | higher  | 1     | 1e16 (OracleLib's max)  |
/// | 8 | MaxOperatorLossBps | 2    | 20          | 2     | lower   | 0     | 1,000                   |
/// | 9 | TwapWindow         | 0    | 29          | 2     | higher  | 1     | 65,535 s (18.2 h)       |
/// | 10| LoosenDelay        | 2    | 22          | 4     | higher  | 1 hour| 30 days                 |
///
/// For a "lower" parameter the limit is the loosest value any deal may have; for a "higher" one the
/// tightest that still makes sense (a limit there keeps an owner slip from freezing an exit for
/// longer than one loosenDelay).
/// @dev Descriptor i (16 bits at 16 * i): bits 0-1 slot, 2-6 byte offset, 7-10 size in bytes,
///      11 higher-is-tighter, 12 floor is 1. `tests/unit/vault/test_storage_layout.py` checks every
///      row against the compiler's storage layout of DealVaultStorage.
library ParamTable {
    uint256 internal constant COUNT = 11;
    uint256 internal constant TABLE = 0xa5a197401521c631a530169096c1271016101590151;

    uint256 internal constant MAX_LTV_BPS = 3000;
    uint256 internal constant MAX_EXPOSURE_BPS = 2500;
    uint256 internal constant MAX_FEE_BPS = 1000;
    uint256 internal constant MAX_PRICE = 1e16;
    uint256 internal constant MAX_LOOSEN_DELAY = 30 days;
    uint256 internal constant MIN_LOOSEN_DELAY = 1 hours;

    /// @return slot the storage slot (0-3)
    /// @return shift the bit offset of the value in the slot
    /// @return mask the value's mask (after the shift)
    function locate(uint256 param) internal pure returns (uint256 slot, uint256 shift, uint256 mask) {
        uint256 d = TABLE >> (param * 16);
        slot = d & 3;
        shift = ((d >> 2) & 31) * 8;
        mask = (1 << (((d >> 7) & 15) * 8)) - 1;
    }

    /// @notice Whether a higher value of `param` is tighter.
    function higherIsTighter(uint256 param) internal pure returns (bool) {
        return (TABLE >> (param * 16 + 11)) & 1 == 1;
    }

    /// @notice The smallest value a deal may have: 1 where 0 would make the parameter meaningless,
    ///         and an hour for LoosenDelay (the guardian always has that long to revoke a loosening).
    function floor(uint256 param) internal pure returns (uint256) {
        if (param == 10) return MIN_LOOSEN_DELAY;
        return (TABLE >> (param * 16 + 12)) & 1;
    }

    /// @notice The hard limit (see the table).
    function limit(uint256 param) internal pure returns (uint256) {
        if (param == 0) return MAX_LTV_BPS;
        if (param == 1) return MAX_EXPOSURE_BPS;
        if (param == 4) return 9999;
        if (param == 6) return 1e6;
        if (param == 7) return MAX_PRICE;
        if (param == 10) return MAX_LOOSEN_DELAY;
        if (param == 3) return type(uint32).max;
        if (param == 9) return type(uint16).max;
        return MAX_FEE_BPS; // 2, 5, 8
    }

    /// @notice `param`'s value in the storage word of its slot.
    function get(uint256 word, uint256 param) internal pure returns (uint256) {
        uint256 d = TABLE >> (param * 16);
        return (word >> (((d >> 2) & 31) * 8)) & ((1 << (((d >> 7) & 15) * 8)) - 1);
    }

    /// @notice The slot (0-3) of `param`.
    function slotOf(uint256 param) internal pure returns (uint256) {
        return (TABLE >> (param * 16)) & 3;
    }
}
