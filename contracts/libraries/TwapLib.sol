// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IUniswapV2Pair} from "../interfaces/IUniswapV2Pair.sol";

/// @title TwapLib
/// @notice The Uniswap V2 pair's own time-weighted price of USDTz in a stablecoin, from its price
///         accumulators (as v2-periphery's UniswapV2OracleLibrary reads them): a price an attacker
///         cannot move within one block, since the accumulator only ever adds the reserves that
///         stood before the block's first trade, times the time they stood.
/// @dev Prices are UQ112x112 (x 2**112); both tokens have 6 decimals, so the ratio is USD per USDTz.
///      An observation packs the cumulative's low 192 bits with its timestamp: differences are taken
///      mod 2**192, which is exact while the true difference is below 2**192 (a price under 2**48
///      for 2**32 seconds).
library TwapLib {
    uint256 internal constant MASK192 = (1 << 192) - 1;

    /// @return cumulative the pair's cumulative price of USDTz now (counterfactual since its last
    ///         update, wrapping like the pair's own)
    /// @return spot the pair's spot price of USDTz, from its reserves (UQ112x112)
    function read(address pair, bool usdtzIs0) internal view returns (uint256 cumulative, uint256 spot) {
        (uint112 r0, uint112 r1, uint32 last) = IUniswapV2Pair(pair).getReserves();
        (uint256 rz, uint256 rs) = usdtzIs0 ? (uint256(r0), uint256(r1)) : (uint256(r1), uint256(r0));
        cumulative = usdtzIs0 ? IUniswapV2Pair(pair).price0CumulativeLast() : IUniswapV2Pair(pair).price1CumulativeLast();
        // rs < 2**112, so the shift fits; a pair with no USDTz reserve reverts (division by zero)
        spot = (rs << 112) / rz;
        unchecked {
            // the pair's own arithmetic: 32-bit timestamps and a wrapping accumulator; the price
            // is the pair's quotient (uqdiv) times the time, exactly as its _update adds it
            uint32 elapsed = uint32(block.timestamp) - last;
            // slither-disable-next-line divide-before-multiply
            cumulative += spot * elapsed;
        }
    }

    /// @notice An observation word: cumulative (low 192 bits) << 32 | timestamp.
    function pack(uint256 cumulative) internal view returns (uint256) {
        return ((cumulative & MASK192) << 32) | uint32(block.timestamp);
    }

    /// @notice The time-weighted price since `observation` (UQ112x112); `observation`'s timestamp
    ///         must be in the past.
    function twap(uint256 observation, uint256 cumulative) internal view returns (uint256) {
        unchecked {
            // mod 2**192: the stored low bits against the full (wrapping) cumulative
            return ((cumulative - (observation >> 32)) & MASK192) / (block.timestamp - uint32(observation));
        }
    }

    /// @notice UQ112x112 -> priceE6 (1e6 = $1), rounded down.
    function toE6(uint256 priceX112) internal pure returns (uint256) {
        return (priceX112 * 1e6) >> 112;
    }
}
