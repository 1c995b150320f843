// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {RiskLib} from "../libraries/RiskLib.sol";

/// @title RiskLibHarness
/// @notice Test-only: RiskLib's internal functions as external ones, so the harness's Python copy
///         of the cap math (dealvault/vault/risk.py) can be checked against the contract's by
///         eth_call (tests/unit/vault/test_risk_parity.py).
contract RiskLibHarness {
    function ethValue(uint256 weiAmount, uint256 price) external pure returns (uint256) {
        return RiskLib.ethValue(weiAmount, price);
    }

    function ltvWithin(uint256 debt, uint256 collateralWei, uint256 price, uint256 capBps) external pure returns (bool) {
        return RiskLib.ltvWithin(debt, collateralWei, price, capBps);
    }

    function ltvBps(uint256 debt, uint256 collateralWei, uint256 price) external pure returns (uint256) {
        return RiskLib.ltvBps(debt, collateralWei, price);
    }

    function poolLtvBps(uint256 debtBase, uint256 collateralBase) external pure returns (uint256) {
        return RiskLib.poolLtvBps(debtBase, collateralBase);
    }

    function navE26(uint256 ethWei, uint256 price, uint256 stable, uint256 usdtzCost, uint256 debt)
        external
        pure
        returns (int256)
    {
        return RiskLib.navE26(ethWei, price, stable, usdtzCost, debt);
    }

    function exposureWithin(uint256 usdtz, int256 nav, uint256 capBps) external pure returns (bool) {
        return RiskLib.exposureWithin(usdtz, nav, capBps);
    }

    function exposureBps(uint256 usdtz, int256 nav) external pure returns (uint256) {
        return RiskLib.exposureBps(usdtz, nav);
    }

    function navUsd(int256 nav) external pure returns (uint256) {
        return RiskLib.navUsd(nav);
    }

    function costOut(uint256 cost, uint256 amount, uint256 held) external pure returns (uint256) {
        return RiskLib.costOut(cost, amount, held);
    }

    function rayMul(uint256 a, uint256 b) external pure returns (uint256) {
        return RiskLib.rayMul(a, b);
    }
}
