// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {RiskLib} from "../../contracts/libraries/RiskLib.sol";

/// @title RiskLibProofs
/// @notice Proofs (`make prove`) of the cap math in contracts/libraries/RiskLib.sol, for every
///         input of the widths below. Each argument is a fresh symbolic value of its Solidity type, so
///         the type IS the domain: no `assume` narrows these proofs below the width.
///         - ETH wei: uint104 (2.0e31; RiskLib's documented bound is 1e30, and the NAV's ETH is three
///           uint80 buckets + the collateral: < 1e30 + 3.7e24)
///         - price (8 dp): uint64 (1.8e19; OracleLib admits at most 1e16)
///         - 6-dp amounts: debt and stable uint104 (RiskLib's 1e30; the books are uint80 + uint80),
///           USDTz held uint80 (its book), USDTz cost uint64 (its book)
///         - caps: uint16 (the storage width of maxLtvBps / maxExposureBps; ParamTable caps them at
///           3,000 / 2,500, the proofs take all 65,536)
///         - NAV (E26): int176 (navE26 over the widths above stays within +-2^173)
/// @dev The specs are the exact rational statements, cross-multiplied by the positive denominators:
///      "debt / collateral value <= cap / 10,000" with debt in 6 dp and value = wei * price / 1e26 is
///      `debt * 1e24 <= cap * wei * price`. The spec evaluates that in unchecked 256-bit arithmetic,
///      which is exact here by the types alone: debt * 1e24 < 2^104 * 2^80 = 2^184 and
///      cap * wei * price < 2^16 * 2^104 * 2^64 = 2^184 (likewise for every spec below, bounds in
///      each comment), so the spec cannot wrap for any value of its arguments' types.
///      halmos proves the `check_*` functions (on the paths that return); the `testFuzz_*` ones need
///      a 256-bit division or product relation the solvers here do not close (README.md), so forge
///      fuzzes them at 1,000,000 runs, and fails them on any revert: the no-overflow properties.
contract RiskLibProofs {
    /* LTV */

    /// @notice ltvWithin(debt, wei, price, cap) is exactly debt / (wei * price / 1e26) <= cap / 1e4
    ///         (no collateral value: true only without debt).
    function check_ltvWithin_isExact(uint104 debt, uint104 collateralWei, uint64 price, uint16 capBps)
        external
        pure
    {
        bool spec;
        unchecked {
            spec = uint256(debt) * 1e24 <= uint256(capBps) * collateralWei * price; // < 2^184 both
        }
        assert(RiskLib.ltvWithin(debt, collateralWei, price, capBps) == spec);
    }

    /// @notice ltvBps is the LTV in bps rounded up: 0 without debt, max without collateral value,
    ///         else the least r with r * value >= debt (in E26: r * wei * price >= debt * 1e24).
    function testFuzz_ltvBps_roundsUp(uint104 debt, uint104 collateralWei, uint64 price) external pure {
        uint256 r = RiskLib.ltvBps(debt, collateralWei, price);
        unchecked {
            uint256 num = uint256(debt) * 1e24; // < 2^184
            uint256 den = uint256(collateralWei) * price; // < 2^168
            if (debt == 0) {
                assert(r == 0);
            } else if (den == 0) {
                assert(r == type(uint256).max);
            } else {
                assert(r <= num); // then r * den < 2^184 * 2^168: no wrap below
                assert(r * den >= num);
                assert((r - 1) * den < num);
            }
        }
    }

    /// @notice The bps the vault reports (LtvAboveCap's first argument, the snapshot) agree with the
    ///         check: ltvBps <= cap exactly when ltvWithin.
    function testFuzz_ltvBps_agreesWithCheck(uint104 debt, uint104 collateralWei, uint64 price, uint16 capBps)
        external
        pure
    {
        bool within = RiskLib.ltvWithin(debt, collateralWei, price, capBps);
        assert((RiskLib.ltvBps(debt, collateralWei, price) <= capBps) == within);
    }

    /// @notice Pool-side LTV (Aave's base currency, 8 dp; uint128 each) rounded up.
    function testFuzz_poolLtvBps_roundsUp(uint128 debtBase, uint128 collateralBase) external pure {
        uint256 r = RiskLib.poolLtvBps(debtBase, collateralBase);
        unchecked {
            uint256 num = uint256(debtBase) * 1e4; // < 2^142
            if (debtBase == 0) {
                assert(r == 0);
            } else if (collateralBase == 0) {
                assert(r == type(uint256).max);
            } else {
                assert(r <= num);
                assert(r * collateralBase >= num); // < 2^142 * 2^128
                assert((r - 1) * collateralBase < num);
            }
        }
    }

    /* NAV */

    /// @notice navE26 is exactly wei * price + (stable + cost - debt) * 1e20 (E26 USD), as an integer.
    function check_navE26_isExact(uint104 ethWei, uint64 price, uint104 stable, uint64 usdtzCost, uint104 debt)
        external
        pure
    {
        int256 spec;
        unchecked {
            // |each term| < 2^168 + 2^172: exact in int256
            spec = int256(uint256(ethWei) * price) + int256(uint256(stable) * 1e20)
                + int256(uint256(usdtzCost) * 1e20) - int256(uint256(debt) * 1e20);
        }
        assert(RiskLib.navE26(ethWei, price, stable, usdtzCost, debt) == spec);
    }

    /// @notice NAV is non-decreasing in each asset book and in the price, non-increasing in debt:
    ///         one book moved (up by `more`), everything else the same.
    function testFuzz_navE26_monotonic(
        uint104 ethWei,
        uint64 price,
        uint104 stable,
        uint64 usdtzCost,
        uint104 debt,
        uint104 more,
        uint8 which
    ) external pure {
        int256 before = RiskLib.navE26(ethWei, price, stable, usdtzCost, debt);
        uint256 w = which % 5;
        // the moved book goes up by `more`, capped at its width (still >= the old value)
        if (w == 0) {
            uint104 up = uint104(_up(ethWei, more, type(uint104).max));
            assert(RiskLib.navE26(up, price, stable, usdtzCost, debt) >= before);
        } else if (w == 1) {
            uint64 up = uint64(_up(price, more, type(uint64).max));
            assert(RiskLib.navE26(ethWei, up, stable, usdtzCost, debt) >= before);
        } else if (w == 2) {
            uint104 up = uint104(_up(stable, more, type(uint104).max));
            assert(RiskLib.navE26(ethWei, price, up, usdtzCost, debt) >= before);
        } else if (w == 3) {
            uint64 up = uint64(_up(usdtzCost, more, type(uint64).max));
            assert(RiskLib.navE26(ethWei, price, stable, up, debt) >= before);
        } else {
            uint104 up = uint104(_up(debt, more, type(uint104).max));
            assert(RiskLib.navE26(ethWei, price, stable, usdtzCost, up) <= before);
        }
    }

    /// @dev min(value + more, max): a book moved up within its width.
    function _up(uint256 value, uint256 more, uint256 max) private pure returns (uint256) {
        return value + more > max ? max : value + more;
    }

    /// @notice navUsd: the E26 NAV in 8 dp rounded down, 0 when not positive.
    function check_navUsd_floors(int176 nav) external pure {
        uint256 r = RiskLib.navUsd(nav);
        if (nav <= 0) {
            assert(r == 0);
        } else {
            unchecked {
                assert(r * 1e18 <= uint256(int256(nav)));
                assert((r + 1) * 1e18 > uint256(int256(nav)));
            }
        }
    }

    /* EXPOSURE */

    /// @notice exposureWithin(usdtz, nav, cap) is exactly usdtz / nav <= cap / 1e4 (6 dp over E26:
    ///         usdtz * 1e24 <= cap * nav), true without USDTz, false with USDTz and NAV <= 0.
    function check_exposureWithin_isExact(uint80 usdtz, int176 nav, uint16 capBps) external pure {
        bool spec;
        unchecked {
            // usdtz * 1e24 < 2^160, cap * nav < 2^191
            spec = usdtz == 0 || (nav > 0 && uint256(usdtz) * 1e24 <= uint256(capBps) * uint256(int256(nav)));
        }
        assert(RiskLib.exposureWithin(usdtz, nav, capBps) == spec);
    }

    /// @notice The vault's exposure check as _finish composes it (DealVaultBase: exposureWithin of
    ///         the USDTz book over navE26 of the books) against the exact statement over the books.
    function testFuzz_exposureCheck_overBooks(
        uint80 usdtz,
        uint104 ethWei,
        uint64 price,
        uint104 stable,
        uint64 usdtzCost,
        uint104 debt,
        uint16 capBps
    ) external pure {
        int256 nav = RiskLib.navE26(ethWei, price, stable, usdtzCost, debt);
        bool spec;
        unchecked {
            // assets and debt in E26, each < 2^173; the products < 2^16 * 2^174
            uint256 assets = uint256(ethWei) * price + (uint256(stable) + usdtzCost) * 1e20;
            uint256 owed = uint256(debt) * 1e20;
            spec = usdtz == 0 || (assets > owed && uint256(usdtz) * 1e24 <= uint256(capBps) * (assets - owed));
        }
        assert(RiskLib.exposureWithin(usdtz, nav, capBps) == spec);
    }

    /// @notice exposureBps rounds up and agrees with exposureWithin (the reported bps vs the check).
    function testFuzz_exposureBps_agreesWithCheck(uint80 usdtz, int176 nav, uint16 capBps) external pure {
        uint256 r = RiskLib.exposureBps(usdtz, nav);
        assert((r <= capBps) == RiskLib.exposureWithin(usdtz, nav, capBps));
        if (usdtz != 0 && nav > 0) {
            unchecked {
                uint256 num = uint256(usdtz) * 1e24; // < 2^160
                uint256 den = uint256(int256(nav)); // < 2^175
                assert(r <= num);
                assert(r * den >= num); // < 2^160 * 2^175
                assert((r - 1) * den < num);
            }
        }
    }

    /* BOOK HELPERS */

    /// @notice costOut: all the cost when all leaves, else ceil(cost * amount / held); what stays
    ///         (cost - out) never exceeds the average cost of what stays. Widths: the uint64 cost
    ///         book, uint80 USDTz amounts.
    function testFuzz_costOut_roundsUp(uint64 cost, uint80 amount, uint80 held) external pure {
        uint256 out = RiskLib.costOut(cost, amount, held);
        if (amount >= held) {
            assert(out == cost);
        } else {
            unchecked {
                uint256 num = uint256(cost) * amount; // < 2^144
                assert(out <= cost);
                assert(out * held >= num); // < 2^64 * 2^80
                assert(out == 0 || (out - 1) * held < num);
                // the remaining basis over the remaining amount <= cost / held
                assert((cost - out) * uint256(held) <= uint256(cost) * (held - amount));
            }
        }
    }

    /// @notice ethValue: wei * price / 1e18 rounded down (8-dp USD).
    function check_ethValue_floors(uint104 weiAmount, uint64 price) external pure {
        uint256 r = RiskLib.ethValue(weiAmount, price);
        unchecked {
            uint256 p = uint256(weiAmount) * price; // < 2^168
            assert(r * 1e18 <= p && (r + 1) * 1e18 > p);
        }
    }

    /* NO OVERFLOW: forge fails a fuzz run on any revert, Panic(0x11) included */

    function testFuzz_noOverflow_ltv(uint104 debt, uint104 collateralWei, uint64 price, uint16 capBps)
        external
        pure
    {
        RiskLib.ltvWithin(debt, collateralWei, price, capBps);
        RiskLib.ltvBps(debt, collateralWei, price);
    }

    function testFuzz_noOverflow_nav(uint104 ethWei, uint64 price, uint104 stable, uint64 usdtzCost, uint104 debt)
        external
        pure
    {
        RiskLib.navUsd(RiskLib.navE26(ethWei, price, stable, usdtzCost, debt));
    }

    function testFuzz_noOverflow_exposure(uint80 usdtz, int176 nav, uint16 capBps) external pure {
        RiskLib.exposureWithin(usdtz, nav, capBps);
        RiskLib.exposureBps(usdtz, nav);
    }

    function testFuzz_noOverflow_helpers(uint64 cost, uint80 amount, uint80 held, uint104 weiAmount, uint64 price)
        external
        pure
    {
        RiskLib.costOut(cost, amount, held);
        RiskLib.ethValue(weiAmount, price);
    }
}
