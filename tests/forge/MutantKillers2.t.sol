// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

import {IDealVault, IDealVaultTypes} from "../../contracts/interfaces/IDealVault.sol";
import {IAaveV3Pool} from "../../contracts/interfaces/IAaveV3Pool.sol";
import {IUniswapV2Router} from "../../contracts/interfaces/IUniswapV2Router.sol";
import {IDealVaultLens} from "../../contracts/interfaces/IDealVaultLens.sol";
import {Fixture, IPairReserves, ISwapRouter} from "./Fixture.sol";
import {IERC20Min, IFeedAdmin, IPriceFeedView, KillerBase, VmMock} from "./MutantKillers.t.sol";
import {Vm} from "./utils/Vm.sol";

/// @title MutantKillers2Test
/// @notice The second batch of tests written to kill survivors of `make mutate` (the whole 288-mutant
///         campaign of 30 Nov 2026; tools/mutate/triage.yaml names each mutant and its test): exact
///         refusals (error and arguments), the books after a leg, the roles' two-step transfers, the
///         pool-side and deleverage boundaries. Unit-style: no invariant runs.
contract MutantKillers2Test is KillerBase {
    bytes32 internal constant APPROVAL = keccak256("Approval(address,address,uint256)");

    function setUp() public {
        _deployVault();
    }

    /* helpers (and KillerBase's) */

    function _price() internal view returns (uint256) {
        (, int256 answer,,,) = IPriceFeedView(k.ethUsdFeed).latestRoundData();
        return uint256(answer);
    }

    function _view() internal view returns (IDealVaultLens.RiskView memory) {
        return lens.riskView(address(vault));
    }

    /// @dev The attacker trades the WETH9/cUSDT pair to a spot of ~targetE6 cUSDT per ETH (selling WETH9).
    function _moveWethPairDown(uint256 targetE6) internal {
        address pair = IUniswapV2FactoryMin(IUniswapV2Router(k.router).factory()).getPair(k.weth9, k.cusdt);
        (uint112 r0, uint112 r1,) = IPairReserves(pair).getReserves();
        bool w0 = IPairReserves(pair).token0() == k.weth9;
        (uint256 rw, uint256 rs) = w0 ? (uint256(r0), uint256(r1)) : (uint256(r1), uint256(r0));
        uint256 rwNew = Math.sqrt(rw * rs / targetE6 * 1e18);
        require(rwNew > rw, "the pair is already below the target");
        address[] memory path = new address[](2);
        (path[0], path[1]) = (k.weth9, k.cusdt);
        vm.prank(k.attacker);
        ISwapRouter(k.router).swapExactTokensForTokens((rwNew - rw) * 1000 / 997, 0, path, k.attacker, 2 ** 64);
    }

    /// @dev The benefactor repays `amount` of the vault's `stable` debt on the pool.
    function _repayOnBehalf(address stable, uint256 amount) internal {
        vm.prank(k.benefactor);
        IAaveV3Pool(k.pool).repay(stable, amount, 2, address(vault));
    }

    /* the redeem leg's gas floor */

    /// @dev redeem refuses to start with less gas than its venue calls need: GasTooLow(gasleft, REDEEM_GAS),
    ///      REDEEM_GAS = (2 x 80,000 + 300,000) x 64 / 63 + 100,000 = 567,301.
    function test_redeem_with_too_little_gas_is_refused() public {
        _positioned();
        uint256 needed = (2 * uint256(80_000) + 300_000) * 64 / 63 + 100_000;
        assertEq(needed, 567_301, "REDEEM_GAS");
        vm.prank(k.operator);
        (bool ok, bytes memory ret) =
            address(vault).call{gas: 560_000}(abi.encodeWithSignature("redeem(address,uint256)", k.cusdt, risk.minTranche));
        assertTrue(!ok, "refused");
        assertEq(ret.length, 68, "GasTooLow(uint256,uint256)");
        assertTrue(bytes4(ret) == IDealVaultTypes.GasTooLow.selector, "GasTooLow");
        (uint256 available, uint256 need) = abi.decode(_tail(ret), (uint256, uint256));
        assertEq(need, needed, "needed");
        assertTrue(available < needed, "available");
    }

    function _tail(bytes memory ret) internal pure returns (bytes memory out) {
        out = new bytes(ret.length - 4);
        for (uint256 i; i < out.length; ++i) {
            out[i] = ret[i + 4];
        }
    }

    /* refusals, each with its own error */

    /// @dev Zero amounts are ZeroAmount, before any venue call (which would refuse them otherwise).
    function test_zero_amounts_are_refused_up_front() public {
        vm.startPrank(k.operator);
        vm.expectRevert(IDealVaultTypes.ZeroAmount.selector);
        vault.supply(k.weth9, 0);
        vault.supply(k.weth9, 10 ether);
        vault.borrow(k.cusdt, 1_000 * USD6);
        vm.expectRevert(IDealVaultTypes.ZeroAmount.selector);
        vault.buy(k.cusdt, 0, 0, 2 ** 64);
        vm.expectRevert(IDealVaultTypes.ZeroAmount.selector);
        vault.withdrawCollateral(k.weth9, 0);
        vm.expectRevert(IDealVaultTypes.ZeroAmount.selector);
        vault.addCollateral(k.weth9, 0);
        vm.stopPrank();
    }

    /// @dev Unknown wrappers and stablecoins are refused as such, in the legs that check no book first.
    function test_unknown_wrapper_and_stable_in_the_reducing_legs() public {
        _positioned();
        vm.startPrank(k.operator);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.UnknownStable.selector, k.weth10));
        vault.redeem(k.weth10, risk.minTranche);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.UnknownWrapper.selector, k.cusdt));
        vault.withdrawCollateral(k.cusdt, 1);
        vm.stopPrank();
    }

    /// @dev USDTz beyond the book is refused with the USDTz bucket (5) in redeem and sell; more than the
    ///      opportunistic bucket in addCollateral with bucket 2.
    function test_bucket_refusals_name_their_bucket() public {
        _supplyBorrow(10 ether, 1_000 * USD6);
        vm.prank(k.operator);
        vault.buy(k.cusdt, 1_000 * USD6, 0, 2 ** 64);
        uint256 held = _view().usdtzHeld;
        assertGe(held, risk.minTranche, "held");
        assertTrue(held + 1 < risk.rungs[0], "below the first rung");
        vm.prank(k.operator);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.InsufficientBucket.selector, 5, held, held + 1));
        vault.redeem(k.cusdt, held + 1);
        vm.prank(k.owner);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.InsufficientBucket.selector, 5, held, held + 1));
        vault.sell(k.cusdt, held + 1, 0, 2 ** 64);
        uint256 opp = _view().opportunisticEth;
        vm.prank(k.operator);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.InsufficientBucket.selector, 2, opp, opp + 1));
        vault.addCollateral(k.weth9, opp + 1);
    }

    /// @dev sell is a USDTz leg: refused as WrongPhase before USDTz is held.
    function test_sell_before_usdtz_is_wrong_phase() public {
        _supplyBorrow(10 ether, 1_000 * USD6);
        vm.prank(k.owner);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.WrongPhase.selector, IDealVaultTypes.Phase.WORKING, 0x38));
        vault.sell(k.cusdt, 1, 0, 2 ** 64);
    }

    /* legs complete */

    /// @dev split and sell are legs: each ends with its LegCompleted (legSeq + 1).
    function test_split_and_sell_complete_as_legs() public {
        assertEq(_view().legSeq, 2, "fund, split");
        _supplyBorrow(10 ether, 1_000 * USD6);
        vm.prank(k.operator);
        vault.buy(k.cusdt, 1_000 * USD6, 0, 2 ** 64);
        _movePair(900_000); // above the sell floor
        uint256 seq = _view().legSeq;
        vm.prank(k.owner);
        vault.sell(k.cusdt, USD6, 0, 2 ** 64);
        assertEq(_view().legSeq, seq + 1, "sell");
    }

    /* close with USDTz still held */

    /// @dev close writes the USDTz still held off at cost (writtenOffUsdtz, the operator's loss, cost 0);
    ///      after CLOSED the owner's USDTz withdrawal takes the book down to what is left.
    function test_close_writes_usdtz_off_and_closed_withdraw_follows() public {
        _supplyBorrow(10 ether, 1_000 * USD6);
        vm.prank(k.operator);
        vault.buy(k.cusdt, 500 * USD6, 0, 2 ** 64);
        vm.prank(k.operator);
        vault.repay(k.cusdt, type(uint256).max);
        uint256 owed = IERC20Min(k.debtCusdt).balanceOf(address(vault));
        assertGt(owed, 0, "debt left");
        vm.prank(k.owner);
        vault.ownerRepay(k.cusdt, owed + 10 * USD6);
        IDealVaultLens.RiskView memory b = _view();
        assertEq(b.usdtzCost, 500 * USD6, "cost");
        vm.prank(k.operator);
        vault.close();
        IDealVaultLens.RiskView memory a = _view();
        assertEq(a.writtenOffUsdtz, 500 * USD6, "written off");
        assertEq(a.usdtzCost, 0, "cost gone");
        assertEq(a.operatorLoss, 500 * USD6, "the operator's loss");
        assertEq(a.usdtzHeld, b.usdtzHeld, "still held");
        uint256 bal = IERC20Min(k.usdtz).balanceOf(address(vault));
        assertEq(bal, b.usdtzHeld, "no surplus");
        vm.prank(k.owner);
        vault.withdraw(k.usdtz, 100 * USD6);
        assertEq(_view().usdtzHeld, bal - 100 * USD6, "book follows");
    }

    /* deleverage boundaries */

    /// @dev deleverage's bound: proceeds bound x 10,000 may reach the stable's debt x 10,100 exactly
    ///      (DELEVERAGE_MARGIN_BPS = 100), not one more; the proceeds above the debt are booked as stable.
    function test_deleverage_margin_boundary_and_leftover_booked() public {
        vm.prank(k.operator);
        vault.supply(k.weth9, 10 ether);
        // a debt that is a multiple of 99, so that value x 9,900 == debt x 10,100 has a solution
        vm.prank(k.operator);
        vault.borrow(k.cusdt, 990 * USD6);
        uint256 debt = IERC20Min(k.debtCusdt).balanceOf(address(vault));
        if (debt % 99 != 0) {
            vm.prank(k.operator);
            vault.borrow(k.cusdt, 99 - debt % 99);
            debt = IERC20Min(k.debtCusdt).balanceOf(address(vault));
        }
        assertEq(debt % 99, 0, "debt % 99");
        uint256 price = _price();
        // value = floor(c x price / 1e20): the smallest c for a value is ceil(value x 1e20 / price)
        uint256 exact = debt * 101 / 99; // value x 9,900 == debt x 10,100
        uint256 over = exact + 1; // value x 9,900 > debt x 10,100
        uint256 cOver = Math.ceilDiv(over * 1e20, price);
        vm.prank(k.operator);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.DeleverageTooLarge.selector, over * 9_900 / 10_000, debt));
        vault.deleverage(k.weth9, k.cusdt, cOver, 0, 2 ** 64);
        uint256 cExact = Math.ceilDiv(exact * 1e20, price);
        assertEq(cExact * price / 1e20, exact, "value");
        uint256 stableBefore = _view().stableHeld;
        vm.prank(k.operator);
        vault.deleverage(k.weth9, k.cusdt, cExact, 0, 2 ** 64);
        IDealVaultLens.RiskView memory a = _view();
        assertEq(a.poolDebt, 0, "the debt repaid");
        assertGt(a.stableHeld, stableBefore, "leftover booked");
        assertEq(a.stableHeld, IERC20Min(k.cusdt).balanceOf(address(vault)), "stable books = balance");
    }

    /* the core invariant */

    /// @dev Every leg before CLOSED ends by checking that the vault holds its core ETH (CoreBreached):
    ///      ETH taken out of the vault behind the books' back (vm.deal) is caught by the next leg.
    function test_core_breach_is_caught_by_the_next_leg() public {
        vm.deal(address(vault), core0 - 1);
        vm.prank(k.guardian);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.CoreBreached.selector, core0 - 1, core0));
        vault.hold();
    }

    /* exposure */

    /// @dev The exposure cap binds every risk-adding leg: tightened below the USDTz held, a borrow is refused.
    function test_exposure_cap_binds() public {
        _positioned();
        vm.prank(k.owner);
        vault.setParam(IDealVaultTypes.Param.MaxExposureBps, 100);
        vm.prank(k.operator);
        VmMock(address(vm)).expectPartialRevert(IDealVaultTypes.ExposureAboveCap.selector);
        vault.borrow(k.cusdt, 1_000 * USD6);
    }

    /* TWAP */

    /// @dev The operator's sell is refused while the spot is more than maxSlippage below the TWAP.
    function test_operator_sell_below_the_twap_is_refused() public {
        _positioned();
        _movePair(960_000);
        _observeAndWait();
        _movePair(900_000);
        vm.prank(k.operator);
        VmMock(address(vm)).expectPartialRevert(IDealVaultTypes.PriceBelowTwap.selector);
        vault.sell(k.cusdt, 1_000 * USD6, 0, 2 ** 64);
        // the owner's crisis exit has no TWAP bound
        vm.prank(k.owner);
        vault.sell(k.cusdt, 1_000 * USD6, 0, 2 ** 64);
    }

    /* the cUSDC debt */

    /// @dev A cUSDC debt alone is the pool debt: close is refused with it, exactly.
    function test_cusdc_debt_blocks_close() public {
        vm.startPrank(k.operator);
        vault.supply(k.weth9, 10 ether);
        vault.borrow(k.cusdc, 1_000 * USD6);
        uint256 debt = IERC20Min(k.debtCusdc).balanceOf(address(vault));
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.DebtOutstanding.selector, debt));
        vault.close();
        vm.stopPrank();
    }

    /// @dev A 1-unit cUSDC debt: its LTV is 1 bp (rounded up), and when someone else repays it the vault
    ///      books the repayment on its behalf at close (which then sees no debt).
    function test_one_unit_cusdc_debt_repaid_on_behalf() public {
        vm.startPrank(k.operator);
        vault.supply(k.weth9, 10 ether);
        vault.borrow(k.cusdc, 1);
        vm.stopPrank();
        IDealVaultLens.RiskView memory v = _view();
        assertEq(v.poolDebt, 1, "pool debt");
        assertEq(v.ltvBps, 1, "1 unit is 1 bp, rounded up");
        _repayOnBehalf(k.cusdc, 1);
        vm.prank(k.operator);
        vault.close();
        v = _view();
        assertEq(uint256(v.phase), uint256(IDealVaultTypes.Phase.CLOSED), "closed");
        assertEq(v.repaidOnBehalf, 1, "booked on behalf");
    }

    /// @dev A cUSDC repayment on the vault's behalf is booked at the vault's next debt action.
    function test_cusdc_repayment_on_behalf_is_booked() public {
        vm.startPrank(k.operator);
        vault.supply(k.weth9, 10 ether);
        vault.borrow(k.cusdc, 2_000 * USD6);
        vm.stopPrank();
        _repayOnBehalf(k.cusdc, 500 * USD6);
        vm.prank(k.owner);
        vault.ownerRepay(k.cusdc, 100 * USD6);
        IDealVaultLens.RiskView memory v = _view();
        assertGe(v.repaidOnBehalf + 1, 500 * USD6, "booked on behalf");
        assertLe(v.repaidOnBehalf, 500 * USD6 + 1, "booked on behalf (rounding)");
    }

    /* roles */

    function test_two_step_ownership() public {
        vm.prank(k.owner);
        vault.transferOwnership(k.stranger);
        assertEq(uint160(vault.pendingOwner()), uint160(k.stranger), "pending");
        vm.prank(k.attacker);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.NotPendingOwner.selector, k.attacker));
        vault.acceptOwnership();
        vm.prank(k.stranger);
        vault.acceptOwnership();
        assertEq(uint160(vault.owner()), uint160(k.stranger), "owner");
        assertEq(uint160(vault.pendingOwner()), 0, "no pending owner");
        // the operator and the guardian can never become the owner
        vm.prank(k.stranger);
        vault.transferOwnership(k.operator);
        vm.prank(k.operator);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.RolesNotDistinct.selector, k.operator));
        vault.acceptOwnership();
        vm.prank(k.stranger);
        vault.transferOwnership(k.guardian);
        vm.prank(k.guardian);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.RolesNotDistinct.selector, k.guardian));
        vault.acceptOwnership();
    }

    function test_renounce_ownership_clears_the_pending_owner() public {
        vm.prank(k.operator);
        vault.close();
        vm.prank(k.owner);
        vault.transferOwnership(k.stranger);
        vm.prank(k.owner);
        vault.renounceOwnership();
        assertEq(uint160(vault.owner()), 0, "no owner");
        assertEq(uint160(vault.pendingOwner()), 0, "no pending owner");
        vm.prank(k.stranger);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.NotPendingOwner.selector, k.stranger));
        vault.acceptOwnership();
    }

    function test_set_and_renounce_operator_and_guardian() public {
        vm.startPrank(k.owner);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.RolesNotDistinct.selector, k.owner));
        vault.setOperator(k.owner);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.RolesNotDistinct.selector, k.guardian));
        vault.setOperator(k.guardian);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.RolesNotDistinct.selector, k.operator));
        vault.setGuardian(k.operator);
        vault.setGuardian(k.benefactor);
        vm.stopPrank();
        assertEq(uint160(vault.guardian()), uint160(k.benefactor), "guardian set");
        vm.prank(k.stranger);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.NotOperator.selector, k.stranger));
        vault.renounceOperator();
        vm.prank(k.stranger);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.NotGuardian.selector, k.stranger));
        vault.renounceGuardian();
        vm.prank(k.operator);
        vault.renounceOperator();
        assertEq(uint160(vault.operator()), 0, "no operator");
        vm.prank(k.benefactor);
        vault.renounceGuardian();
        assertEq(uint160(vault.guardian()), 0, "no guardian");
    }

    /* the owner's withdrawals before CLOSED */

    /// @dev Before CLOSED a donated stablecoin is surplus the owner may take; collateral aTokens never are;
    ///      in HOLDING the owner's ETH exit is bounded by the three buckets.
    function test_owner_withdrawals_before_close() public {
        _supplyBorrow(10 ether, 1_000 * USD6);
        vm.prank(k.owner);
        IERC20Min(k.cusdt).transfer(address(vault), 100 * USD6);
        // the surplus is the balance above the stable's book (1,000 borrowed), not above another book
        vm.prank(k.owner);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.InsufficientBucket.selector, 6, 100 * USD6, 101 * USD6));
        vault.withdraw(k.cusdt, 101 * USD6);
        vm.prank(k.owner);
        vault.withdraw(k.cusdt, 100 * USD6);
        assertEq(IERC20Min(k.cusdt).balanceOf(address(vault)), 1_000 * USD6, "surplus taken, the book left");
        vm.prank(k.owner);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.InsufficientBucket.selector, 6, 0, 1));
        vault.withdraw(k.aWeth9, 1);
        vm.prank(k.guardian);
        vault.hold();
        uint256 books = FUND_WEI - 10 ether;
        vm.prank(k.owner);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.InsufficientBucket.selector, 6, books, books + 1));
        vault.withdraw(address(0), books + 1);
    }

    /* the oracle read */

    /// @dev A feed answering 1 (the smallest positive price) is Fresh; one returning short data is Invalid.
    function test_oracle_edge_answers() public {
        _setFeed(1);
        vm.prank(k.operator);
        vault.supply(k.weth9, 1 ether);
        assertEq(uint256(_view().oracleStatus), uint256(IDealVaultTypes.OracleStatus.Fresh), "fresh");
        VmMock(address(vm)).mockCall(k.ethUsdFeed, abi.encodeCall(IPriceFeedView.latestRoundData, ()), abi.encode(uint256(1)));
        vm.prank(k.operator);
        vm.expectRevert(abi.encodeWithSelector(IDealVaultTypes.InvalidPrice.selector, int256(0)));
        vault.supply(k.weth9, 1 ether);
    }

    /// @dev The lens values the collateral at the oracle price: wei x price / 1e18 (USD 8 dp).
    function test_collateral_value_at_the_oracle_price() public {
        vm.prank(k.operator);
        vault.supply(k.weth9, 10 ether);
        assertEq(_view().collateralValue, 10 ether * _price() / 1e18, "collateral value");
    }

    /* redeem's USDTz approval */

    /// @dev The vault approves the desk itself first (an allowance the desk may use), then every USDTz
    ///      approve answers `ret` (vm.mockCall): what the vault makes of a token's approve return value.
    function _redeemWithApproveAnswering(bytes memory ret) internal returns (bool ok, bytes memory reason) {
        _positioned();
        vm.prank(address(vault));
        IERC20Min(k.usdtz).approve(k.desk, risk.minTranche);
        VmMock(address(vm)).mockCall(k.usdtz, abi.encodeWithSelector(IERC20Min.approve.selector), ret);
        vm.recordLogs();
        vm.prank(k.operator);
        ok = vault.redeem(k.cusdt, risk.minTranche);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == address(vault) && logs[i].topics[0] == IDealVaultTypes.RedemptionFailed.selector) {
                (,, reason) = abi.decode(logs[i].data, (uint8, uint256, bytes));
            }
        }
    }

    /// @dev A token whose approve returns nothing (no bool) is fine: the tranche goes through.
    function test_approve_without_return_value_is_accepted() public {
        (bool ok,) = _redeemWithApproveAnswering("");
        assertTrue(ok, "redeemed");
        assertEq(_view().rungProgress, risk.minTranche, "progress");
    }

    /// @dev An approve that returns false fails the tranche with ApproveFailed(usdtz), desk not called.
    function test_approve_returning_false_fails_the_tranche() public {
        (bool ok, bytes memory reason) = _redeemWithApproveAnswering(abi.encode(false));
        assertTrue(!ok, "failed");
        assertTrue(keccak256(reason) == keccak256(abi.encodeWithSelector(IDealVaultTypes.ApproveFailed.selector, k.usdtz)), "reason");
        assertEq(uint256(_view().phase), uint256(IDealVaultTypes.Phase.HOLDING), "holding");
    }

    /// @dev A desk that took the whole tranche used the allowance up: no approve(0) after it (one
    ///      USDTz Approval in the leg, the exact one).
    function test_full_tranche_leaves_no_allowance_reset() public {
        _positioned();
        vm.recordLogs();
        vm.prank(k.operator);
        assertTrue(vault.redeem(k.cusdt, risk.minTranche), "redeemed");
        Vm.Log[] memory logs = vm.getRecordedLogs();
        uint256 approvals;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == k.usdtz && logs[i].topics[0] == APPROVAL
                    && address(uint160(uint256(logs[i].topics[1]))) == address(vault)) {
                approvals++;
                assertEq(abi.decode(logs[i].data, (uint256)), risk.minTranche, "the exact approval");
            }
        }
        assertEq(approvals, 1, "one approval");
        assertEq(IERC20Allowance(k.usdtz).allowance(address(vault), k.desk), 0, "allowance used up");
    }

    /* deleverage may not raise the LTV */

    /// @dev After a crash (ETH at a fifth of the split price: the vault's LTV ~125%, the pool's LTV low
    ///      because its stablecoin price fell too), a sale at the market (~1.03 x the oracle, within the
    ///      slippage bound) repays less debt per ETH than the position carries: LtvIncreased.
    function test_deleverage_that_raises_the_ltv_is_refused() public {
        uint256 p0 = _price();
        // 25% LTV at the split price
        _supplyBorrow(10 ether, 10 ether * p0 / 1e20 / 4);
        _setStableFeed(2e7); // the pool values the debt at 0.2
        uint256 p1 = p0 / 5;
        _setFeed(int256(p1));
        _moveWethPairDown(p1 * 103 / 100 / 100);
        vm.prank(k.operator);
        VmMock(address(vm)).expectPartialRevert(IDealVaultTypes.LtvIncreased.selector);
        vault.deleverage(k.weth9, k.cusdt, 0.1 ether, 0, 2 ** 64);
    }

    /* the pool-side LTV cap is inclusive */

    /// @dev A borrow that puts the pool's own LTV at exactly the cap (debtBase x 10,000 == 3,000 x
    ///      collateralBase) passes: the cap is inclusive on both sides.
    function test_pool_side_ltv_at_exactly_the_cap_passes() public {
        _setFeed(2_000e8);
        _setStableFeed(1e8);
        vm.prank(k.operator);
        vault.supply(k.weth9, 10 ether);
        (uint256 cb,,,,,) = IAaveV3Pool(k.pool).getUserAccountData(address(vault));
        assertEq(cb % 1_000, 0, "collateral base");
        // debtBase = debt x 1e8 / 1e6 = debt x 100
        uint256 debt = cb * 3 / 1_000;
        vm.prank(k.operator);
        vault.borrow(k.cusdt, debt);
        (uint256 cb2, uint256 db,,,,) = IAaveV3Pool(k.pool).getUserAccountData(address(vault));
        assertEq(db * 10_000, 3_000 * cb2, "exactly at the cap");
    }

    /* exposure with a NAV at or below zero */

    /// @dev The NAV falls below zero (losses realized, the debt repaid by someone else and booked, ETH
    ///      at a cent): with USDTz held a risk-adding leg is refused (ExposureAboveCap); once none is
    ///      held the same leg passes (no USDTz, no exposure).
    function test_exposure_with_the_nav_below_zero() public {
        _supplyBorrow(10 ether, 1_000 * USD6);
        _movePair(940_000);
        _observeAndWait();
        vm.prank(k.operator);
        vault.buy(k.cusdt, 1_000 * USD6, 0, 2 ** 64);
        _movePair(860_000);
        uint256 held = _view().usdtzHeld;
        vm.prank(k.owner);
        vault.sell(k.cusdt, held / 2, 0, 2 ** 64); // at a loss (the owner's: not the operator's budget)
        // the whole debt repaid on the vault's behalf, booked at the next debt action
        uint256 owed = IERC20Min(k.debtCusdt).balanceOf(address(vault));
        _repayOnBehalf(k.cusdt, owed);
        vm.prank(k.operator);
        vault.withdrawCollateral(k.weth9, 1 ether);
        assertGe(_view().repaidOnBehalf + 1, owed, "booked on behalf");
        _setFeed(1);
        IDealVaultLens.RiskView memory v = _view();
        assertEq(v.nav, 0, "nav <= 0");
        vm.prank(k.operator);
        VmMock(address(vm)).expectPartialRevert(IDealVaultTypes.ExposureAboveCap.selector);
        vault.supply(k.weth9, 1 ether);
        vm.prank(k.owner);
        vault.sell(k.cusdt, held - held / 2, 0, 2 ** 64);
        assertEq(_view().usdtzHeld, 0, "none held");
        vm.prank(k.operator);
        vault.supply(k.weth9, 1 ether);
    }

    /* closed: collateral left behind, then withdrawn as aTokens */

    /// @dev The drainer borrows the whole liquidity of the `w` reserve (against the other wrapper).
    function _drain(address w, address aToken, address other) internal {
        uint256 liq = IERC20Min(w).balanceOf(aToken);
        vm.startPrank(k.drainer);
        IAaveV3Pool(k.pool).supply(other, 2 * liq + 1 ether, k.drainer, 0);
        IAaveV3Pool(k.pool).borrow(w, liq, 2, 0, k.drainer);
        vm.stopPrank();
    }

    /// @dev One WETH reserve drained at close (the other wrapper is the drainer's collateral): that
    ///      wrapper's collateral stays booked; after CLOSED the owner withdraws its aTokens and the
    ///      book follows what is left.
    function _closedAtokenWithdrawal(address w, address aToken, address other) internal {
        vm.startPrank(k.operator);
        vault.supply(k.weth9, 10 ether);
        vault.supply(k.weth10, 5 ether);
        vm.stopPrank();
        _drain(w, aToken, other);
        vm.prank(k.operator);
        vault.close();
        uint256 booked = w == k.weth9 ? 10 ether : 5 ether;
        assertEq(_view().collateralBooked, booked, "left booked");
        vm.prank(k.owner);
        vault.withdraw(aToken, 1 ether);
        uint256 left = IERC20Min(aToken).balanceOf(address(vault));
        assertLe(left, booked - 1 ether + 1, "aTokens left");
        assertEq(_view().collateralBooked, left, "books = what is left");
    }

    function test_closed_aweth9_withdrawal_debits_the_book() public {
        _closedAtokenWithdrawal(k.weth9, k.aWeth9, k.weth10);
    }

    function test_closed_aweth10_withdrawal_debits_the_book() public {
        _closedAtokenWithdrawal(k.weth10, k.aWeth10, k.weth9);
    }

    /* a liquidation is not a repayment on behalf */

    /// @dev The pool liquidates the WETH9 collateral only (WETH10 untouched): at the vault's next debt
    ///      action the fall of the debt is booked as a seizure (WETH9 written down), not as a repayment
    ///      on the vault's behalf.
    function test_liquidation_of_one_wrapper_is_a_seizure() public {
        uint256 p0 = _price();
        vm.startPrank(k.operator);
        vault.supply(k.weth9, 10 ether);
        vault.supply(k.weth10, 10 ether);
        vault.borrow(k.cusdt, 20 ether * p0 / 1e20 / 4);
        vm.stopPrank();
        _setFeed(int256(p0 / 5));
        uint256 owed = IERC20Min(k.debtCusdt).balanceOf(address(vault));
        vm.startPrank(k.attacker);
        IERC20Min(k.cusdt).approve(k.pool, owed);
        IAaveV3PoolLiq(k.pool).liquidationCall(k.weth9, k.cusdt, address(vault), owed / 4, false);
        vm.stopPrank();
        uint256 a9 = IERC20Min(k.aWeth9).balanceOf(address(vault));
        assertTrue(a9 < 10 ether, "seized");
        vm.prank(k.owner);
        vault.ownerRepay(k.cusdt, 100 * USD6);
        IDealVaultLens.RiskView memory v = _view();
        assertEq(v.repaidOnBehalf, 0, "not a repayment on behalf");
        assertEq(v.collateralBooked, a9 + 10 ether, "WETH9 written down, WETH10 kept");
    }

    /* a collateral book over no aTokens (a seizure, or Aave's 1-wei rounding, left nothing) */

    /// @dev close writes a book whose aTokens are gone (balance 0: vm.mockCall) off without a pool call:
    ///      nothing credited, the book 0.
    function test_close_writes_off_a_book_without_atokens() public {
        vm.prank(k.operator);
        vault.supply(k.weth9, 10 ether);
        uint256 working = _view().workingEth;
        VmMock(address(vm)).mockCall(k.aWeth9, abi.encodeCall(IERC20Min.balanceOf, (address(vault))), abi.encode(uint256(0)));
        vm.prank(k.operator);
        vault.close();
        VmMock(address(vm)).clearMockedCalls();
        IDealVaultLens.RiskView memory v = _view();
        assertEq(v.collateralBooked, 0, "written off");
        assertEq(v.workingEth, working, "nothing credited");
        assertEq(address(vault).balance, FUND_WEI - 10 ether, "no ETH came back");
    }

    /// @dev A 1-wei WETH10 book over no aTokens is a seizure too: at the next debt action the fall of the
    ///      debt (a repayment by someone else here) is not booked as a repayment on the vault's behalf.
    function test_one_wei_book_without_atokens_is_a_seizure() public {
        vm.startPrank(k.operator);
        vault.supply(k.weth9, 10 ether);
        vault.supply(k.weth10, 1);
        vault.borrow(k.cusdt, 1_000 * USD6);
        vm.stopPrank();
        _repayOnBehalf(k.cusdt, 100 * USD6);
        VmMock(address(vm)).mockCall(k.aWeth10, abi.encodeCall(IERC20Min.balanceOf, (address(vault))), abi.encode(uint256(0)));
        vm.prank(k.owner);
        vault.ownerRepay(k.cusdt, 100 * USD6);
        IDealVaultLens.RiskView memory v = _view();
        assertEq(v.repaidOnBehalf, 0, "a seizure, not a repayment on behalf");
        assertEq(v.collateralBooked, 10 ether, "the 1-wei book written down");
    }
}

/// @title FundKillersTest
/// @notice A vault deployed and not yet funded: fund's refusal and books.
contract FundKillersTest is Fixture {
    function setUp() public {
        _loadKit();
        risk = _defaultRisk();
        vault = IDealVault(create(vaultInitCode(_kitConfig())));
        lens = IDealVaultLens(create(vm.getCode(LENS_ARTIFACT)));
        vm.deal(k.owner, FUND_WEI);
    }

    /// @dev Until split the funded capital is core; funding nothing is refused.
    function test_fund_books_core_and_refuses_zero() public {
        vm.prank(k.owner);
        vm.expectRevert(IDealVaultTypes.ZeroAmount.selector);
        vault.fund{value: 0}();
        vm.prank(k.owner);
        vault.fund{value: 10 ether}();
        IDealVaultLens.RiskView memory v = lens.riskView(address(vault));
        assertEq(v.coreEth, 10 ether, "core");
        assertEq(v.fundedCapital, 10 ether, "funded");
        assertEq(v.legSeq, 1, "one leg");
    }
}

interface IUniswapV2FactoryMin {
    function getPair(address a, address b) external view returns (address);
}

interface IERC20Allowance {
    function allowance(address owner, address spender) external view returns (uint256);
}

interface IAaveV3PoolLiq {
    function liquidationCall(address collateralAsset, address debtAsset, address user, uint256 debtToCover,
        bool receiveAToken) external;
}
