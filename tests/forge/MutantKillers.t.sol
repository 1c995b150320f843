// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IDealVault, IDealVaultExtension, IDealVaultTypes} from "../../contracts/interfaces/IDealVault.sol";
import {IAaveV3Pool} from "../../contracts/interfaces/IAaveV3Pool.sol";
import {IUniswapV2Router} from "../../contracts/interfaces/IUniswapV2Router.sol";
import {IUniswapV2Factory, IUniswapV2Pair} from "../../contracts/interfaces/IUniswapV2Pair.sol";
import {IDealVaultLens} from "../../contracts/interfaces/IDealVaultLens.sol";
import {ReenteringVenue} from "../../contracts/test/ReenteringVenue.sol";
import {Fixture} from "./Fixture.sol";
import {Vm} from "./utils/Vm.sol";

/// @dev The cheatcodes these tests use beyond tests/forge/utils/Vm.sol (forge 1.7.1).
interface VmMock {
    function mockCall(address callee, bytes calldata data, bytes calldata returnData) external;
    function clearMockedCalls() external;
    function etch(address target, bytes calldata newRuntimeBytecode) external;
    function expectPartialRevert(bytes4 revertData) external;
}

/// @dev An ETH/USD feed that answers `price`, fresh, only while the vault's reentrancy flag is set
///      (slot 0, byte 22: `entered`, after scaledDebtT, scaledDebtC, phase_, phaseBeforeHolding,
///      paused_, rung), and 0 (Invalid) otherwise: etched over the kit's feed, it proves that a leg
///      runs with the flag set.
contract FlagFeed {
    IDealVault internal immutable vault;
    int256 internal immutable price;

    constructor(IDealVault v, int256 p) {
        vault = v;
        price = p;
    }

    function decimals() external pure returns (uint8) {
        return 8;
    }

    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
        bytes32[] memory slot = new bytes32[](1);
        uint256 word = uint256(vault.extSloads(slot)[0]);
        bool entered = (word >> (22 * 8)) & 0xff == 1;
        return (1, entered ? price : int256(0), block.timestamp, block.timestamp, 1);
    }
}

/// @title KillerBase
/// @notice The helpers the mutant-killer tests share.
abstract contract KillerBase is Fixture {
    /// @dev The operator supplies `eth` of WETH9 and borrows `usd6` cUSDT.
    function _supplyBorrow(uint256 eth, uint256 usd6) internal {
        vm.startPrank(k.operator);
        vault.supply(k.weth9, eth);
        vault.borrow(k.cusdt, usd6);
        vm.stopPrank();
    }

    /// @dev The ETH/USD feed answers `answer` from now on.
    function _setFeed(int256 answer) internal {
        vm.prank(k.feedOwner);
        IFeedAdmin(k.ethUsdFeed).setAnswer(answer);
    }

    /// @dev The stable's feed answers `answer` from now on.
    function _setStableFeed(int256 answer) internal {
        vm.prank(k.stableFeedOwner);
        IFeedAdmin(k.stableFeed).setAnswer(answer);
    }
}

/// @title MutantKillersTest
/// @notice Tests written to kill survivors of `make mutate` (tools/mutate/triage.yaml names each
///         mutant and the test here that kills it): the exact refusal (custom error and its
///         arguments) and the exact books after a leg, where the invariant suite checks only that
///         something refused or that a bound holds.
contract MutantKillersTest is KillerBase {
    function setUp() public {
        _deployVault();
    }

    /// @dev ownerRepay with nothing owed is refused up front (ZeroAmount), before pulling anything.
    function test_ownerRepay_nothing_owed_is_ZeroAmount() public {
        vm.prank(k.operator);
        vault.supply(k.weth9, 10 ether);
        vm.prank(k.owner);
        vm.expectRevert(IDealVaultTypes.ZeroAmount.selector);
        vault.ownerRepay(k.cusdt, 1_000 * USD6);
    }

    /// @dev A leg runs with the reentrancy flag set (what makes a venue's callback revert).
    function test_leg_runs_with_the_reentrancy_flag_set() public {
        (, int256 answer,,,) = IPriceFeedView(k.ethUsdFeed).latestRoundData();
        FlagFeed f = new FlagFeed(vault, answer);
        VmMock(address(vm)).etch(k.ethUsdFeed, address(f).code);
        vm.prank(k.operator);
        vault.supply(k.weth9, 10 ether); // reads the feed in its cap check: InvalidPrice(0) if the flag is down
        assertEq(lens.riskView(address(vault)).collateralBooked, 10 ether, "supplied");
    }

    /// @dev The operator's deleverage with a stale oracle is bound by the feed's last answer (not refused).
    function test_operator_deleverage_with_a_stale_oracle_uses_the_last_answer() public {
        _positioned();
        _wait(risk.oracleMaxAge + 1);
        IDealVaultLens.RiskView memory before = lens.riskView(address(vault));
        assertEq(uint256(before.oracleStatus), uint256(IDealVaultTypes.OracleStatus.Stale), "stale");
        vm.prank(k.operator);
        vault.deleverage(k.weth9, k.cusdt, 1 ether, 0, 2 ** 64);
        assertEq(lens.riskView(address(vault)).collateralBooked, before.collateralBooked - 1 ether, "sold");
    }

    /// @dev A zero answer is Invalid (not a Fresh price of 0): the lens says so and a cap check refuses.
    function test_zero_price_is_invalid() public {
        _setFeed(0);
        assertEq(uint256(lens.riskView(address(vault)).oracleStatus), uint256(IDealVaultTypes.OracleStatus.Invalid), "status");
        vm.prank(k.operator);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.InvalidPrice.selector, int256(0)));
        vault.supply(k.weth9, 1 ether);
    }

    /// @dev The first rung's size bounds a tranche at rung 0.
    function test_tranche_above_the_first_rung_is_refused() public {
        _positioned();
        uint256 held = lens.riskView(address(vault)).usdtzHeld;
        uint256 rung0 = risk.rungs[0];
        assertGe(held, rung0 + 1, "enough USDTz");
        vm.prank(k.operator);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.TrancheAboveRung.selector, rung0 + 1, rung0));
        vault.redeem(k.cusdt, rung0 + 1);
    }

    /// @dev supply, borrow, deleverage part of the collateral, repay the rest from the books, close:
    ///      every book after close, exactly (the ETH PnL is the collateral sold).
    function test_close_after_a_deleverage_books_exactly() public {
        vm.startPrank(k.operator);
        vault.supply(k.weth9, 10 ether);
        vault.borrow(k.cusdt, 2_000 * USD6);
        uint256 sold = 0.5 ether;
        vault.deleverage(k.weth9, k.cusdt, sold, 0, 2 ** 64);
        IDealVaultLens.RiskView memory mid = lens.riskView(address(vault));
        assertEq(mid.collateralBooked, 10 ether - sold, "collateral after deleverage");
        vault.repay(k.cusdt, type(uint256).max);
        IDealVaultLens.RiskView memory b = lens.riskView(address(vault));
        assertEq(b.poolDebt, 0, "debt repaid");
        vault.close();
        vm.stopPrank();
        IDealVaultLens.RiskView memory a = lens.riskView(address(vault));
        assertEq(uint256(a.phase), uint256(IDealVaultTypes.Phase.CLOSED), "closed");
        assertEq(a.collateralBooked, 0, "collateral credited");
        assertEq(a.workingEth, b.workingEth + 10 ether - sold, "working += collateral");
        assertEq(a.coreEth, b.coreEth, "core");
        assertEq(a.opportunisticEth, b.opportunisticEth, "opportunistic");
        assertTrue(a.realizedPnlEth == -int256(sold), "pnl eth = the collateral sold");
        assertEq(a.usdtzCost, 0, "usdtz cost written off");
        assertEq(address(vault).balance, FUND_WEI - sold, "eth held");
        // the USD PnL: the ETH PnL at the price, plus the stable left over (6 dp -> 8 dp)
        (, int256 px,,,) = IPriceFeedView(k.ethUsdFeed).latestRoundData();
        int256 usd = -int256(sold) * px / 1e18 + int256(a.stableHeld) * 100;
        assertTrue(a.realizedPnlUsd == usd, "pnl usd");
    }

    /// @dev After CLOSED the owner takes ETH: the books follow what is left, no more.
    function test_closed_withdraw_debits_the_books_by_what_left() public {
        vm.prank(k.operator);
        vault.close();
        uint256 books = FUND_WEI;
        vm.prank(k.owner);
        vault.withdraw(address(0), 1 ether);
        IDealVaultLens.RiskView memory a = lens.riskView(address(vault));
        assertEq(a.coreEth + a.workingEth + a.opportunisticEth, books - 1 ether, "books = what is left");
        assertEq(a.opportunisticEth, FUND_WEI * risk.opportunisticBps / 10_000 - 1 ether, "opportunistic first");
        // a donated stablecoin is surplus: taking part of it leaves the (zero) books alone
        vm.prank(k.owner);
        IERC20Min(k.cusdt).transfer(address(vault), 100 * USD6);
        vm.prank(k.owner);
        vault.withdraw(k.cusdt, 1 * USD6);
        assertEq(IERC20Min(k.cusdt).balanceOf(address(vault)), 99 * USD6, "surplus left");
        assertEq(lens.riskView(address(vault)).stableHeld, 0, "stable books");
    }

    /// @dev A whole first rung redeemed: the ladder moves to rung 1 and every book of the tranche follows.
    function test_full_rung_redeemed_books_exactly() public {
        _positioned();
        IDealVaultLens.RiskView memory b = lens.riskView(address(vault));
        uint256 amount = risk.rungs[0];
        uint256 cusdtBefore = IERC20Min(k.cusdt).balanceOf(address(vault));
        vm.prank(k.operator);
        bool ok = vault.redeem(k.cusdt, amount);
        assertTrue(ok, "redeemed");
        IDealVaultLens.RiskView memory a = lens.riskView(address(vault));
        uint256 received = IERC20Min(k.cusdt).balanceOf(address(vault)) - cusdtBefore;
        assertEq(a.rung, 1, "next rung");
        assertEq(a.rungProgress, 0, "progress reset");
        assertEq(a.redeemedTotal, amount, "redeemed total");
        assertEq(a.usdtzHeld, b.usdtzHeld - amount, "usdtz held");
        assertEq(a.feesPaid, amount - received, "fees");
        assertEq(a.stableHeld, b.stableHeld + received, "stable books");
        // average cost out, rounded up
        uint256 costOut = (b.usdtzCost * amount + b.usdtzHeld - 1) / b.usdtzHeld;
        assertEq(a.usdtzCost, b.usdtzCost - costOut, "cost basis");
        assertEq(uint256(a.phase), uint256(IDealVaultTypes.Phase.MONETIZING), "monetizing");
        // a second, partial tranche only adds progress
        vm.prank(k.operator);
        assertTrue(vault.redeem(k.cusdt, risk.minTranche), "second");
        a = lens.riskView(address(vault));
        assertEq(a.rung, 1, "same rung");
        assertEq(a.rungProgress, risk.minTranche, "progress");
        assertEq(a.redeemedTotal, amount + risk.minTranche, "redeemed total 2");
    }

    /// @dev observe() restarts each pair's TWAP window: a buy right after it is refused.
    function test_observe_restarts_both_twap_windows() public {
        vm.startPrank(k.operator);
        vault.supply(k.weth9, 100 ether);
        vault.borrow(k.cusdt, 20_000 * USD6);
        vault.borrow(k.cusdc, 20_000 * USD6);
        vault.observe();
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.TwapWindowShort.selector, block.timestamp, risk.twapWindow));
        vault.buy(k.cusdt, 1_000 * USD6, 0, 2 ** 64);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.TwapWindowShort.selector, block.timestamp, risk.twapWindow));
        vault.buy(k.cusdc, 1_000 * USD6, 0, 2 ** 64);
        vm.stopPrank();
        _wait(risk.twapWindow);
        vm.prank(k.operator);
        vault.buy(k.cusdc, 1_000 * USD6, 0, 2 ** 64);
    }

    /// @dev repay's refusals, each with its own error: the phase first, then the stable book.
    function test_repay_refusals() public {
        vm.prank(k.operator);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.WrongPhase.selector, IDealVaultTypes.Phase.SPLIT, 0x3c));
        vault.repay(k.cusdt, 1);
        _supplyBorrow(10 ether, 1_000 * USD6);
        // a donation is surplus, not a book the operator may repay from
        vm.prank(k.owner);
        IERC20Min(k.cusdt).transfer(address(vault), 500 * USD6);
        vm.prank(k.operator);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.InsufficientBucket.selector, 4, 1_000 * USD6, 1_200 * USD6));
        vault.repay(k.cusdt, 1_200 * USD6);
        vm.prank(k.operator);
        vm.expectRevert(IDealVaultTypes.ZeroAmount.selector);
        vault.repay(k.cusdt, 0);
    }

    /// @dev A leg on an unknown stablecoin is refused as such, before any book is read.
    function test_unknown_stable_is_refused() public {
        vm.startPrank(k.operator);
        vault.supply(k.weth9, 10 ether);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.UnknownStable.selector, k.weth10));
        vault.buy(k.weth10, 1, 0, 2 ** 64);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.UnknownStable.selector, k.weth10));
        vault.borrow(k.weth10, 1);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.UnknownWrapper.selector, k.cusdt));
        vault.supply(k.cusdt, 1);
        vm.stopPrank();
    }

    /// @dev Only the owner unpauses; the guardian and the operator cannot.
    function test_only_the_owner_unpauses() public {
        vm.prank(k.guardian);
        vault.pause();
        assertTrue(vault.paused(), "paused");
        vm.prank(k.guardian);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.NotOwner.selector, k.guardian));
        vault.unpause();
        vm.prank(k.operator);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.NotGuardian.selector, k.operator));
        vault.pause();
        vm.prank(k.operator);
        vm.expectRevert(IDealVaultTypes.Paused.selector);
        vault.supply(k.weth9, 1 ether);
        vm.prank(k.owner);
        vault.unpause();
        assertTrue(!vault.paused(), "unpaused");
    }

    /// @dev A sale at exactly the floor price passes (the floor is inclusive).
    function test_sell_at_exactly_the_floor_passes() public {
        _positioned();
        _movePair(900_000);
        address[] memory path = new address[](2);
        (path[0], path[1]) = (k.usdtz, k.cusdt);
        uint256 out = IUniswapV2Router(k.router).getAmountsOut(USD6, path)[1];
        // a floor equal to the sale's price per USDTz (1 USDTz in: the price is `out`), raised at once (tighter)
        vm.prank(k.owner);
        vault.setParam(IDealVaultTypes.Param.SellFloorPrice, out);
        vm.prank(k.owner);
        vault.sell(k.cusdt, USD6, 0, 2 ** 64);
        vm.prank(k.owner);
        vault.setParam(IDealVaultTypes.Param.SellFloorPrice, out + 1);
        out = IUniswapV2Router(k.router).getAmountsOut(USD6, path)[1];
        vm.prank(k.owner);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.PriceBelowFloor.selector, out, out + 1));
        vault.sell(k.cusdt, USD6, 0, 2 ** 64);
    }

    /// @dev Everything held may be sold at once (amountIn == usdtzHeld is within the book).
    function test_sell_everything_held() public {
        _supplyBorrow(10 ether, 1_000 * USD6);
        vm.prank(k.operator);
        vault.buy(k.cusdt, 1_000 * USD6, 0, 2 ** 64);
        _movePair(900_000); // above the sell floor
        uint256 held = lens.riskView(address(vault)).usdtzHeld;
        vm.prank(k.owner);
        vault.sell(k.cusdt, held, 0, 2 ** 64);
        IDealVaultLens.RiskView memory a = lens.riskView(address(vault));
        assertEq(a.usdtzHeld, 0, "nothing left");
        assertEq(a.usdtzCost, 0, "no cost left");
    }

    /// @dev buy refuses a price above 1 - minDiscount, even with the TWAP there too.
    function test_buy_above_the_discount_limit_is_refused() public {
        _supplyBorrow(100 ether, 20_000 * USD6);
        _movePair(980_000);
        vm.prank(k.operator);
        vault.observe();
        _wait(risk.twapWindow);
        address[] memory path = new address[](2);
        (path[0], path[1]) = (k.cusdt, k.usdtz);
        uint256 out = IUniswapV2Router(k.router).getAmountsOut(1_000 * USD6, path)[1];
        uint256 priceE6 = (1_000 * USD6 * 1e6 + out - 1) / out;
        vm.prank(k.operator);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.PriceAboveLimit.selector, priceE6, 950_000));
        vault.buy(k.cusdt, 1_000 * USD6, 0, 2 ** 64);
    }

    /// @dev The pool's own LTV (its prices) is a second cap: a dearer stablecoin in Aave's oracle
    ///      makes a borrow that is within the cap at the vault's prices exceed it at the pool's.
    function test_pool_side_ltv_is_a_cap_too() public {
        vm.prank(k.operator);
        vault.supply(k.weth9, 100 ether);
        uint256 valueUsd6 = 100 ether * splitPrice / 1e20;
        vm.prank(k.stableFeedOwner);
        IFeedAdmin(k.stableFeed).setAnswer(2e8);
        vm.prank(k.operator);
        VmMock(address(vm)).expectPartialRevert(IDealVaultTypes.LtvAboveCap.selector);
        vault.borrow(k.cusdt, valueUsd6 * 2_000 / 10_000);
    }

    /// @dev With nothing held in USDTz the exposure is 0, even with a NAV at or below 0 (the debt's
    ///      interest over an Invalid price).
    function test_exposure_without_usdtz_is_zero_even_underwater() public {
        _supplyBorrow(10 ether, 1_000 * USD6);
        _setFeed(0);
        _wait(365 days);
        IDealVaultLens.RiskView memory v = lens.riskView(address(vault));
        assertEq(v.nav, 0, "nav <= 0");
        assertEq(v.exposureBps, 0, "no exposure without usdtz");
    }

    /// @dev ownerRepay first books a repayment someone else made on the vault's behalf.
    function test_ownerRepay_books_a_repayment_on_behalf_first() public {
        _supplyBorrow(10 ether, 2_000 * USD6);
        vm.startPrank(k.benefactor);
        IERC20Min(k.cusdt).approve(k.pool, 500 * USD6);
        IAaveV3Pool(k.pool).repay(k.cusdt, 500 * USD6, 2, address(vault));
        vm.stopPrank();
        vm.prank(k.owner);
        vault.ownerRepay(k.cusdt, 100 * USD6);
        IDealVaultLens.RiskView memory v = lens.riskView(address(vault));
        assertGe(v.repaidOnBehalf + 1, 500 * USD6, "booked on behalf");
        assertLe(v.repaidOnBehalf, 500 * USD6 + 1, "booked on behalf (rounding)");
        assertEq(v.ownerRepaid, 100 * USD6, "owner repaid");
    }

    /// @dev aTokens donated to the vault are not its collateral: close leaves them where they are.
    function test_close_leaves_donated_atokens() public {
        vm.deal(k.benefactor, 2 ether);
        vm.startPrank(k.benefactor);
        IWethMin(k.weth10).deposit{value: 2 ether}();
        IERC20Min(k.weth10).approve(k.pool, 2 ether);
        IAaveV3Pool(k.pool).supply(k.weth10, 2 ether, address(vault), 0);
        vm.stopPrank();
        uint256 donated = IERC20Min(k.aWeth10).balanceOf(address(vault));
        assertGe(donated, 2 ether - 1, "donated");
        vm.prank(k.operator);
        vault.close();
        assertGe(IERC20Min(k.aWeth10).balanceOf(address(vault)), donated, "still there");
        assertEq(address(vault).balance, FUND_WEI, "no ETH from them");
    }

    /// @dev deleverage may not sell collateral worth more than the stable's debt (+1%): it is no way to raise cash.
    function test_deleverage_beyond_the_debt_is_refused() public {
        vm.startPrank(k.operator);
        vault.supply(k.weth9, 10 ether);
        vault.borrow(k.cusdt, 100 * USD6);
        VmMock(address(vm)).expectPartialRevert(IDealVaultTypes.DeleverageTooLarge.selector);
        vault.deleverage(k.weth9, k.cusdt, 5 ether, 0, 2 ** 64);
        vm.stopPrank();
    }

    /// @dev A leg that checks no cap (hold) still completes: legSeq + 1 and LegCompleted(seq, Hold) with its books.
    function test_light_leg_completes_with_its_sequence_number() public {
        uint256 seq = lens.riskView(address(vault)).legSeq;
        vm.recordLogs();
        vm.prank(k.guardian);
        vault.hold();
        assertEq(lens.riskView(address(vault)).legSeq, seq + 1, "legSeq");
        Vm.Log[] memory logs = vm.getRecordedLogs();
        uint256 found;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == address(vault) && logs[i].topics[0] == IDealVaultTypes.LegCompleted.selector) {
                assertEq(uint256(logs[i].topics[1]), seq + 1, "event seq");
                assertEq(uint256(logs[i].topics[2]), uint256(IDealVaultTypes.Leg.Hold), "event leg");
                found++;
            }
        }
        assertEq(found, 1, "one LegCompleted");
    }

    /// @dev The vault takes ETH only from the wrappers' unwraps.
    function test_receive_refuses_ETH_from_anyone_else() public {
        vm.deal(k.stranger, 1 ether);
        vm.prank(k.stranger);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.EthNotAccepted.selector, k.stranger));
        (bool ok,) = address(vault).call{value: 1 ether}("");
        // with expectRevert a low-level call returns true only if it reverted as expected
        assertTrue(ok, "the vault took the ETH");
    }
}

interface IFeedAdmin {
    function setAnswer(int256 answer) external;
}

interface IWethMin {
    function deposit() external payable;
}

interface IERC20Min {
    function approve(address spender, uint256 amount) external returns (bool);
    function transfer(address to, uint256 amount) external returns (bool);
    function balanceOf(address who) external view returns (uint256);
}

interface IPriceFeedView {
    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80);
}

/// @title ReentryKillersTest
/// @notice A venue that calls back into the vault meets the reentrancy guard first: a vault whose
///         desk is a ReenteringVenue (contracts/test) armed to call `observe()`; the tranche fails
///         with the guard's error as its reason (the venue bubbles the callback's revert data up).
contract ReentryKillersTest is Fixture {
    function setUp() public {
        _loadKit();
        risk = _defaultRisk();
    }

    function test_venue_callback_hits_the_reentrancy_guard() public {
        ReenteringVenue venue = new ReenteringVenue();
        IDealVaultTypes.Config memory cfg = IDealVaultTypes.Config({
            weth9: k.weth9, weth10: k.weth10, cusdt: k.cusdt, cusdc: k.cusdc, usdtz: k.usdtz, pool: k.pool,
            router: k.router, desk: address(venue), ethUsdFeed: k.ethUsdFeed, owner: k.owner, operator: k.operator,
            guardian: k.guardian, risk: risk
        });
        vault = IDealVault(create(vaultInitCode(cfg)));
        vm.deal(k.owner, FUND_WEI);
        vm.prank(k.owner);
        vault.fund{value: FUND_WEI}();
        vm.prank(k.operator);
        vault.split();
        _wait(risk.twapWindow);
        _positioned();
        venue.arm(address(vault), abi.encodeCall(IDealVaultExtension.observe, ()));
        vm.recordLogs();
        vm.prank(k.operator);
        bool ok = vault.redeem(k.cusdt, risk.minTranche);
        assertTrue(!ok, "the tranche failed");
        Vm.Log[] memory logs = vm.getRecordedLogs();
        bytes memory reason;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == address(vault) && logs[i].topics[0] == IDealVaultTypes.RedemptionFailed.selector) {
                (,, reason) = abi.decode(logs[i].data, (uint8, uint256, bytes));
            }
        }
        assertEq(reason.length, 4, "reason length");
        assertTrue(bytes4(reason) == IDealVaultTypes.ReentrancyGuardReentrantCall.selector, "the guard's error");
    }
}

/// @title ConfigKillersTest
/// @notice The constructor's checks of its Config, each with its exact error, and what it stores
///         (the Setup found from the venues, the parameters): the invariant suite only ever deploys
///         the one valid configuration.
contract ConfigKillersTest is Fixture {
    VmMock internal constant vmm = VmMock(address(uint160(uint256(keccak256("hevm cheat code")))));

    function setUp() public {
        _loadKit();
        risk = _defaultRisk();
    }

    function _cfg() internal view returns (IDealVaultTypes.Config memory) {
        return IDealVaultTypes.Config({
            weth9: k.weth9, weth10: k.weth10, cusdt: k.cusdt, cusdc: k.cusdc, usdtz: k.usdtz, pool: k.pool,
            router: k.router, desk: k.desk, ethUsdFeed: k.ethUsdFeed, owner: k.owner, operator: k.operator,
            guardian: k.guardian, risk: risk
        });
    }

    function _refused(IDealVaultTypes.Config memory cfg, bytes memory err) internal {
        bytes memory init = vaultInitCode(cfg);
        vm.expectRevert(err);
        this.createExternal(init);
    }

    function test_config_buckets_must_sum_to_10000() public {
        IDealVaultTypes.Config memory cfg = _cfg();
        cfg.risk.coreBps += 1;
        _refused(cfg, abi.encodeWithSelector(IDealVaultTypes.BucketSplitInvalid.selector, 10_001));
        cfg.risk.coreBps -= 2;
        _refused(cfg, abi.encodeWithSelector(IDealVaultTypes.BucketSplitInvalid.selector, 9_999));
    }

    function test_config_rungs_and_tranche() public {
        IDealVaultTypes.Config memory cfg = _cfg();
        cfg.risk.rungs[0] = 0;
        _refused(cfg, abi.encodeWithSelector(IDealVaultTypes.RungsInvalid.selector, 0));
        cfg = _cfg();
        cfg.risk.rungs[1] = cfg.risk.rungs[0];
        _refused(cfg, abi.encodeWithSelector(IDealVaultTypes.RungsInvalid.selector, 1));
        cfg = _cfg();
        cfg.risk.rungs[2] = cfg.risk.rungs[1];
        _refused(cfg, abi.encodeWithSelector(IDealVaultTypes.RungsInvalid.selector, 2));
        cfg = _cfg();
        cfg.risk.rungs[2] = 1 << 63;
        _refused(cfg, abi.encodeWithSelector(IDealVaultTypes.RungsInvalid.selector, 2));
        cfg = _cfg();
        cfg.risk.minTranche = 0;
        _refused(cfg, abi.encodeWithSelector(IDealVaultTypes.RungsInvalid.selector, 3));
        cfg = _cfg();
        cfg.risk.minTranche = cfg.risk.rungs[0] + 1;
        _refused(cfg, abi.encodeWithSelector(IDealVaultTypes.RungsInvalid.selector, 3));
        // the boundaries are allowed: a tranche minimum equal to the first rung, the top rung just under 2**63
        cfg = _cfg();
        cfg.risk.minTranche = cfg.risk.rungs[0];
        cfg.risk.rungs[2] = (1 << 63) - 1;
        IDealVault v = IDealVault(create(vaultInitCode(cfg)));
        IDealVaultTypes.Setup memory s = v.setup();
        assertEq(s.minTranche, cfg.risk.rungs[0], "minTranche");
        assertEq(s.rungs[2], (1 << 63) - 1, "rung 2");
    }

    function _refusedRoles(address owner_, address operator_, address guardian_, bytes memory err) internal {
        IDealVaultTypes.Config memory cfg = _cfg();
        (cfg.owner, cfg.operator, cfg.guardian) = (owner_, operator_, guardian_);
        _refused(cfg, err);
    }

    function test_config_roles_distinct_and_non_zero() public {
        (address o, address op, address g) = (k.owner, k.operator, k.guardian);
        bytes4 notDistinct = IDealVaultTypes.RolesNotDistinct.selector;
        bytes4 zero = IDealVaultTypes.ZeroAddress.selector;
        _refusedRoles(o, o, g, abi.encodeWithSelector(notDistinct, o));
        _refusedRoles(o, op, o, abi.encodeWithSelector(notDistinct, o));
        _refusedRoles(o, op, op, abi.encodeWithSelector(notDistinct, op));
        _refusedRoles(address(0), op, g, abi.encodeWithSelector(zero, "owner"));
        _refusedRoles(o, address(0), g, abi.encodeWithSelector(zero, "operator"));
        _refusedRoles(o, op, address(0), abi.encodeWithSelector(zero, "guardian"));
    }

    function test_config_venues_non_zero_and_distinct() public {
        IDealVaultTypes.Config memory cfg = _cfg();
        cfg.desk = address(0);
        _refused(cfg, abi.encodeWithSelector(IDealVaultTypes.ZeroAddress.selector, "desk"));
        cfg = _cfg();
        cfg.ethUsdFeed = address(0);
        _refused(cfg, abi.encodeWithSelector(IDealVaultTypes.ZeroAddress.selector, "ethUsdFeed"));
        cfg = _cfg();
        cfg.desk = cfg.pool;
        _refused(cfg, abi.encodeWithSelector(IDealVaultTypes.DuplicateAddress.selector, cfg.pool));
        cfg = _cfg();
        cfg.weth10 = cfg.weth9;
        _refused(cfg, abi.encodeWithSelector(IDealVaultTypes.DuplicateAddress.selector, cfg.weth9));
    }

    function test_config_decimals_router_weth() public {
        IDealVaultTypes.Config memory cfg = _cfg();
        vmm.mockCall(k.cusdc, abi.encodeWithSignature("decimals()"), abi.encode(uint8(18)));
        _refused(cfg, abi.encodeWithSelector(IDealVaultTypes.WrongDecimals.selector, k.cusdc, 6, 18));
        vmm.clearMockedCalls();
        vmm.mockCall(k.ethUsdFeed, abi.encodeWithSignature("decimals()"), abi.encode(uint8(18)));
        _refused(cfg, abi.encodeWithSelector(IDealVaultTypes.WrongDecimals.selector, k.ethUsdFeed, 8, 18));
        vmm.clearMockedCalls();
        vmm.mockCall(k.router, abi.encodeCall(IUniswapV2Router.WETH, ()), abi.encode(k.weth10));
        _refused(cfg, abi.encodeWithSelector(IDealVaultTypes.RouterWethMismatch.selector, k.weth10));
        vmm.clearMockedCalls();
        vmm.mockCall(k.usdtz, abi.encodeWithSignature("decimals()"), abi.encode(uint8(18)));
        _refused(cfg, abi.encodeWithSelector(IDealVaultTypes.WrongDecimals.selector, k.usdtz, 6, 18));
    }

    function _reserveWithout(address asset, bool aToken) internal {
        IAaveV3Pool.ReserveData memory d = IAaveV3Pool(k.pool).getReserveData(asset);
        if (aToken) d.aTokenAddress = address(0);
        else d.variableDebtTokenAddress = address(0);
        vmm.mockCall(k.pool, abi.encodeCall(IAaveV3Pool.getReserveData, (asset)), abi.encode(d));
    }

    function test_config_reserves_and_pairs_must_exist() public {
        IDealVaultTypes.Config memory cfg = _cfg();
        _reserveWithout(k.weth9, true);
        _refused(cfg, abi.encodeWithSelector(IDealVaultTypes.ZeroAddress.selector, "weth9 reserve"));
        vmm.clearMockedCalls();
        _reserveWithout(k.cusdt, false);
        _refused(cfg, abi.encodeWithSelector(IDealVaultTypes.ZeroAddress.selector, "cusdt reserve"));
        vmm.clearMockedCalls();
        _reserveWithout(k.cusdc, false);
        _refused(cfg, abi.encodeWithSelector(IDealVaultTypes.ZeroAddress.selector, "cusdc reserve"));
        vmm.clearMockedCalls();
        address factory = IUniswapV2Router(k.router).factory();
        vmm.mockCall(factory, abi.encodeCall(IUniswapV2Factory.getPair, (k.cusdt, k.usdtz)), abi.encode(address(0)));
        _refused(cfg, abi.encodeWithSelector(IDealVaultTypes.PairMissing.selector, k.cusdt));
        vmm.clearMockedCalls();
        vmm.mockCall(factory, abi.encodeCall(IUniswapV2Factory.getPair, (k.cusdc, k.usdtz)), abi.encode(address(0)));
        _refused(cfg, abi.encodeWithSelector(IDealVaultTypes.PairMissing.selector, k.cusdc));
    }

    /// @dev What the constructor found and wrote: the Setup (venues, token order) and every parameter.
    function test_config_setup_and_params_as_configured() public {
        IDealVaultTypes.Config memory cfg = _cfg();
        IDealVault v = IDealVault(create(vaultInitCode(cfg)));
        IDealVaultTypes.Setup memory s = v.setup();
        assertTrue(s.usdtzIs0T == (IUniswapV2Pair(k.pairUsdtzCusdt).token0() == k.usdtz), "usdtzIs0T");
        assertTrue(s.usdtzIs0C == (IUniswapV2Pair(k.pairUsdtzCusdc).token0() == k.usdtz), "usdtzIs0C");
        assertEq(uint160(s.venues.aWeth9), uint160(k.aWeth9), "aWeth9");
        assertEq(uint160(s.venues.aWeth10), uint160(k.aWeth10), "aWeth10");
        assertEq(uint160(s.venues.debtCusdt), uint160(k.debtCusdt), "debtCusdt");
        assertEq(uint160(s.venues.debtCusdc), uint160(k.debtCusdc), "debtCusdc");
        assertEq(uint160(s.venues.pairCusdt), uint160(k.pairUsdtzCusdt), "pairCusdt");
        assertEq(uint160(s.venues.pairCusdc), uint160(k.pairUsdtzCusdc), "pairCusdc");
        assertEq(s.coreBps + s.workingBps + s.opportunisticBps, 10_000, "buckets");
        assertEq(s.rungs[0], cfg.risk.rungs[0], "rung 0");
        assertEq(s.rungs[1], cfg.risk.rungs[1], "rung 1");
        IDealVaultLens l = IDealVaultLens(create(vm.getCode(LENS_ARTIFACT)));
        IDealVaultLens.Params memory p = l.params(address(v));
        IDealVaultTypes.RiskParams memory r = cfg.risk;
        assertEq(p.maxLtvBps, r.maxLtvBps, "maxLtvBps");
        assertEq(p.maxExposureBps, r.maxExposureBps, "maxExposureBps");
        assertEq(p.maxDeskFeeBps, r.maxDeskFeeBps, "maxDeskFeeBps");
        assertEq(p.oracleMaxAge, r.oracleMaxAge, "oracleMaxAge");
        assertEq(p.minDiscountBps, r.minDiscountBps, "minDiscountBps");
        assertEq(p.maxSlippageBps, r.maxSlippageBps, "maxSlippageBps");
        assertEq(p.sellFloorPrice, r.sellFloorPrice, "sellFloorPrice");
        assertEq(p.ethFloorPrice, r.ethFloorPrice, "ethFloorPrice");
        assertEq(p.maxOperatorLossBps, r.maxOperatorLossBps, "maxOperatorLossBps");
        assertEq(p.twapWindow, r.twapWindow, "twapWindow");
        assertEq(p.loosenDelay, r.loosenDelay, "loosenDelay");
        assertEq(uint160(v.owner()), uint160(k.owner), "owner");
        assertEq(uint160(v.operator()), uint160(k.operator), "operator");
        assertEq(uint160(v.guardian()), uint160(k.guardian), "guardian");
    }

    /// @dev Parameters outside their limits are refused at deployment as by setParam.
    function test_config_params_within_limits() public {
        IDealVaultTypes.Config memory cfg = _cfg();
        cfg.risk.maxLtvBps = 3001;
        _refused(cfg, abi.encodeWithSelector(IDealVaultTypes.CapAboveCeiling.selector, 3001, 3000));
        cfg = _cfg();
        cfg.risk.oracleMaxAge = 0;
        _refused(cfg, abi.encodeWithSelector(
            IDealVaultTypes.ParamInvalid.selector, IDealVaultTypes.Param.OracleMaxAge, 0));
        cfg = _cfg();
        cfg.risk.loosenDelay = 1 hours - 1;
        _refused(cfg, abi.encodeWithSelector(
            IDealVaultTypes.ParamInvalid.selector, IDealVaultTypes.Param.LoosenDelay, 1 hours - 1));
        cfg = _cfg();
        cfg.risk.minDiscountBps = 10_000;
        _refused(cfg, abi.encodeWithSelector(IDealVaultTypes.CapAboveCeiling.selector, 10_000, 9_999));
    }
}
