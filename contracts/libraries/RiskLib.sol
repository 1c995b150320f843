// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @title RiskLib
/// @notice Pure cap math, integers only. Units: ETH wei, stable/USDTz 6 dp, price 8 dp (USD per
///         ETH). Products of wei and price are USD with 26 decimals ("E26"); a 6-dp amount times
///         1e20 is E26 as well. Caps compare exactly by cross-multiplication; bps are for humans.
/// @dev Assumptions: price <= 1e16 (OracleLib), ETH amounts < 1e30 wei, 6-dp amounts < 1e30, so
///      no product below overflows 256 bits.
library RiskLib {
    uint256 internal constant BPS = 10_000;
    /// @dev 6-dp stablecoin units -> E26 USD.
    uint256 internal constant STABLE_TO_E26 = 1e20;
    uint256 internal constant RAY = 1e27;
    uint256 internal constant HALF_RAY = 5e26;

    /// @notice USD 8 dp of `weiAmount` at `price` (8 dp), rounded down.
    function ethValue(uint256 weiAmount, uint256 price) internal pure returns (uint256) {
        return weiAmount * price / 1e18;
    }

    /// @notice debt / collateral value <= capBps / 10_000, exactly.
    function ltvWithin(uint256 debt, uint256 collateralWei, uint256 price, uint256 capBps)
        internal
        pure
        returns (bool)
    {
        return debt * STABLE_TO_E26 * BPS <= capBps * collateralWei * price;
    }

    /// @notice LTV in bps rounded up; 0 without debt, max without collateral value.
    function ltvBps(uint256 debt, uint256 collateralWei, uint256 price) internal pure returns (uint256) {
        if (debt == 0) return 0;
        uint256 den = collateralWei * price;
        if (den == 0) return type(uint256).max;
        return Math.ceilDiv(debt * STABLE_TO_E26 * BPS, den);
    }

    /// @notice Pool-side LTV in bps (base currency), rounded up.
    function poolLtvBps(uint256 debtBase, uint256 collateralBase) internal pure returns (uint256) {
        if (debtBase == 0) return 0;
        if (collateralBase == 0) return type(uint256).max;
        return Math.ceilDiv(debtBase * BPS, collateralBase);
    }

    /// @notice NAV in E26 USD: ETH (buckets + collateral) at price + stable at par + USDTz at cost - debt.
    function navE26(uint256 ethWei, uint256 price, uint256 stable, uint256 usdtzCost, uint256 debt)
        internal
        pure
        returns (int256)
    {
        return int256(ethWei * price) + (int256(stable + usdtzCost) - int256(debt)) * int256(STABLE_TO_E26);
    }

    /// @notice USDTz face / NAV <= capBps / 10_000, exactly (false when NAV <= 0 and USDTz is held).
    function exposureWithin(uint256 usdtz, int256 nav, uint256 capBps) internal pure returns (bool) {
        if (usdtz == 0) return true;
        if (nav <= 0) return false;
        return usdtz * STABLE_TO_E26 * BPS <= capBps * uint256(nav);
    }

    /// @notice Exposure in bps rounded up; 0 without USDTz, max when NAV <= 0.
    function exposureBps(uint256 usdtz, int256 nav) internal pure returns (uint256) {
        if (usdtz == 0) return 0;
        if (nav <= 0) return type(uint256).max;
        return Math.ceilDiv(usdtz * STABLE_TO_E26 * BPS, uint256(nav));
    }

    /// @notice E26 NAV -> 8 dp, rounded down, 0 if negative.
    function navUsd(int256 nav) internal pure returns (uint256) {
        return nav <= 0 ? 0 : uint256(nav) / 1e18;
    }

    /// @notice Aave's WadRayMath.rayMul (half up): a scaled debt balance times the borrow index is
    ///         exactly the debt token's balanceOf.
    function rayMul(uint256 a, uint256 b) internal pure returns (uint256) {
        return (a * b + HALF_RAY) / RAY;
    }

    /// @notice The cost basis leaving with `amount` of `held` (average cost), rounded up so the
    ///         remaining basis never exceeds the average.
    function costOut(uint256 cost, uint256 amount, uint256 held) internal pure returns (uint256) {
        if (amount >= held) return cost;
        return Math.ceilDiv(cost * amount, held);
    }
}
