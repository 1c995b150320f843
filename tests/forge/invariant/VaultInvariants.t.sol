// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {IDealVaultTypes} from "../../../contracts/interfaces/IDealVault.sol";
import {IDealVaultLens} from "../../../contracts/interfaces/IDealVaultLens.sol";
import {IScaledBalanceToken} from "../../../contracts/interfaces/IAaveV3Pool.sol";
import {Books, IFiatTokenAdmin} from "./Base.sol";
import {Fixture} from "../Fixture.sol";
import {VaultHandler} from "./VaultHandler.sol";
import {WorldHandler} from "./WorldHandler.sol";

/// @title VaultInvariants
/// @notice forge's invariant campaign over the real vault on the kit's chain: random sequences of
///         VaultHandler's legs and WorldHandler's moves; after every call the properties below.
///         Per-call properties are checked inside the handlers (their first violation is asserted
///         empty here); the state-wide ones here, from raw reads against the handlers' model:
///         - books: the core never moves but through the owner's withdraw in HOLDING; ETH, USDTz
///           and stablecoin balances cover their books before CLOSED; no allowance left;
///         - the lens agrees with the raw truth (oracle status, debt = scaled books x index +
///           repaid on behalf, collateral, stable books, the TWAP observations);
///         - debt books: the vault's scaled books minus the pool's are exactly what third parties
///           repaid and the vault has not booked yet (they never fall on a repayment on its behalf);
///         - loss budget: the lens's operatorLoss = the sum of the OperatorLoss events <= the budget;
///         - parameters = the model (only tightened at once, loosened through the delay, never
///           past the constructor's value or a hard limit), the fixed ones unchanged;
///         - the owner's exit: from the state reached, hold -> ownerRepay every debt -> withdraw all
///           ETH -> close -> withdraw everything left succeeds (USDTz excepted while its issuer has
///           frozen the vault), empties the vault and gives the owner at least the booked ETH.
abstract contract VaultInvariants is Fixture {
    VaultHandler internal h;
    WorldHandler internal w;

    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    /// @dev The state every run starts from (after fund + split + the TWAP window).
    function _base() internal virtual;

    function setUp() public {
        _deployVault();
        _base();
        h = new VaultHandler(vault, lens, k, obsCum, obsTs, splitValue, splitPrice);
        w = new WorldHandler(vault, lens, k, h);
        h.setWorld(address(w));
    }

    function targetContracts() public view returns (address[] memory t) {
        t = new address[](2);
        t[0] = address(h);
        t[1] = address(w);
    }

    /// @dev Legs get most of the calls (listed twice), the world one call in three or so.
    function targetSelectors() public view returns (FuzzSelector[] memory s) {
        s = new FuzzSelector[](2);
        bytes4[] memory legs = new bytes4[](22);
        legs[0] = VaultHandler.supply.selector;
        legs[1] = VaultHandler.borrow.selector;
        legs[2] = VaultHandler.buy.selector;
        legs[3] = VaultHandler.redeem.selector;
        legs[4] = VaultHandler.sell.selector;
        legs[5] = VaultHandler.repay.selector;
        legs[6] = VaultHandler.ownerRepay.selector;
        legs[7] = VaultHandler.addCollateral.selector;
        legs[8] = VaultHandler.withdrawCollateral.selector;
        legs[9] = VaultHandler.deleverage.selector;
        legs[10] = VaultHandler.close.selector;
        legs[11] = VaultHandler.admin.selector;
        legs[12] = VaultHandler.withdraw.selector;
        legs[13] = VaultHandler.fundOrSplit.selector;
        legs[14] = VaultHandler.param.selector;
        legs[15] = VaultHandler.sandwich.selector;
        legs[16] = VaultHandler.supply.selector;
        legs[17] = VaultHandler.borrow.selector;
        legs[18] = VaultHandler.buy.selector;
        legs[19] = VaultHandler.redeem.selector;
        legs[20] = VaultHandler.sandwich.selector;
        legs[21] = VaultHandler.param.selector;
        s[0] = FuzzSelector(address(h), legs);
        bytes4[] memory world = new bytes4[](13);
        world[0] = WorldHandler.priceMove.selector;
        world[1] = WorldHandler.feedRound.selector;
        world[2] = WorldHandler.usdtzFreeze.selector;
        world[3] = WorldHandler.deskHalt.selector;
        world[4] = WorldHandler.deskDry.selector;
        world[5] = WorldHandler.deskFee.selector;
        world[6] = WorldHandler.reserveFreeze.selector;
        world[7] = WorldHandler.wethDrain.selector;
        world[8] = WorldHandler.repayOnBehalf.selector;
        world[9] = WorldHandler.timeJump.selector;
        world[10] = WorldHandler.thirdPartyTrade.selector;
        world[11] = WorldHandler.donate.selector;
        world[12] = WorldHandler.repayOnBehalf.selector;
        s[1] = FuzzSelector(address(w), world);
    }

    /// @dev Every check (the concrete contracts' invariant_vault runs it, with their run counts).
    function _checkAll() internal {
        assertTrue(bytes(h.violation()).length == 0, h.violation());
        assertTrue(bytes(w.violation()).length == 0, w.violation());
        IDealVaultLens.RiskView memory rv = lens.riskView(address(vault));
        _books(rv);
        _lensTruth(rv);
        _lossAndParams(rv);
        if (vm.envOr("DV_SKIP_EXIT", uint256(0)) == 0) _ownerExit(rv);
    }

    function _books(IDealVaultLens.RiskView memory rv) internal view {
        uint256 phase = uint256(vault.phase());
        // the lens reports the vault's storage books
        Books memory b = h.booksNow();
        assertTrue(uint256(rv.phaseBeforeHolding) == b.phaseBeforeHolding && rv.rung == b.rung
            && rv.coreEth == b.coreEth && rv.workingEth == b.workingEth && rv.opportunisticEth == b.opportunisticEth
            && rv.usdtzHeld == b.usdtzHeld && rv.usdtzCost == b.usdtzCost && rv.rungProgress == b.rungProgress
            && rv.repaidOnBehalf == b.repaidOnBehalf && rv.operatorLoss == b.operatorLoss, "riskView != the storage books");
        assertEq(uint256(rv.phase), phase, "riskView phase");
        assertTrue(rv.paused == vault.paused(), "riskView paused");
        assertEq(rv.fundedCapital, h.fundedCapital(), "fundedCapital moved");
        assertEq(rv.coreEth, h.core(), "the core moved");
        assertEq(rv.ethReturned, h.ethReturned(), "ethReturned");
        if (phase != 6) {
            uint256 eth = address(vault).balance;
            assertGe(eth, rv.coreEth, "ETH balance below the core");
            assertGe(eth, rv.coreEth + rv.workingEth + rv.opportunisticEth, "ETH balance below the ETH books");
            assertGe(IERC20(k.usdtz).balanceOf(address(vault)), rv.usdtzHeld, "USDTz books above the balance");
            uint256[2] memory sb = h.stableBooksNow();
            assertGe(IERC20(k.cusdt).balanceOf(address(vault)), sb[0], "cUSDT books above the balance");
            assertGe(IERC20(k.cusdc).balanceOf(address(vault)), sb[1], "cUSDC books above the balance");
        }
        uint256 n = h.watchCount();
        for (uint256 i; i < n; ++i) {
            assertEq(IERC20(h.watchToken(i)).allowance(address(vault), h.watchSpender(i)), 0, "the vault left an allowance");
        }
    }

    function _lensTruth(IDealVaultLens.RiskView memory rv) internal view {
        // the oracle status, recomputed
        (, int256 ans,, uint256 upd,) = IFeed(k.ethUsdFeed).latestRoundData();
        uint256 status = ans <= 0 || ans > 1e16 || upd > block.timestamp ? 2
            : block.timestamp - upd > h.params(3) ? 1 : 0;
        assertEq(uint256(rv.oracleStatus), status, "riskView oracle status");
        // debt: the scaled books x the index + repaid on behalf; the books minus the pool's scaled
        // balances = what others repaid and the vault has not booked yet
        uint256 slot0 = uint256(vm.load(address(vault), bytes32(0)));
        uint256[2] memory books = [slot0 & type(uint72).max, (slot0 >> 72) & type(uint72).max];
        address[2] memory st = [k.cusdt, k.cusdc];
        address[2] memory dt = [k.debtCusdt, k.debtCusdc];
        uint256 booked;
        uint256 poolDebt;
        for (uint256 i; i < 2; ++i) {
            uint256 scaled = IScaledBalanceToken(dt[i]).scaledBalanceOf(address(vault));
            assertEq(books[i] - scaled, h.pendingScaled(i), "scaled debt books - pool's != repaid by others");
            if (books[i] > 0) booked += (books[i] * IPoolIdx(k.pool).getReserveNormalizedVariableDebt(st[i]) + 5e26) / 1e27;
            poolDebt += IERC20(dt[i]).balanceOf(address(vault));
        }
        assertEq(rv.debt, booked + h.rob(), "riskView debt != books x index + repaid on behalf");
        assertEq(rv.poolDebt, poolDebt, "riskView poolDebt");
        assertEq(rv.repaidOnBehalf, h.rob(), "riskView repaidOnBehalf");
        assertEq(rv.ownerRepaid, h.ownerRepaid(), "riskView ownerRepaid");
        uint256 c;
        address[2] memory at = [k.aWeth9, k.aWeth10];
        uint256 cb;
        uint256[2] memory cbk = h.collBooksNow();
        for (uint256 j; j < 2; ++j) {
            uint256 books_ = cbk[j];
            uint256 abal = IERC20(at[j]).balanceOf(address(vault));
            cb += books_;
            if (books_ > 0) c += books_ < abal ? books_ : abal;
        }
        assertEq(rv.collateralWeth, c, "riskView collateralWeth");
        assertEq(rv.collateralBooked, cb, "riskView collateralBooked");
        uint256[2] memory sb = h.stableBooksNow();
        assertEq(rv.stableHeld, sb[0] + sb[1], "riskView stableHeld != the storage books");
        // the observations
        for (uint256 i; i < 2; ++i) {
            IDealVaultLens.Twap memory t = lens.twap(address(vault), st[i]);
            assertEq(t.observedAt, h.obsTs(i), "lens twap observedAt");
            assertEq(t.readyAt, h.obsTs(i) + h.params(9), "lens twap readyAt");
        }
    }

    function _lossAndParams(IDealVaultLens.RiskView memory rv) internal view {
        assertEq(rv.splitValue, h.splitValue(), "splitValue");
        assertEq(rv.splitValue, rv.fundedCapital * h.splitPrice() / 1e20, "splitValue != funded x price at split");
        assertEq(rv.lossBudget, h.splitValue() * h.params(8) / 10_000, "lossBudget");
        assertEq(rv.operatorLoss, h.opLoss(), "operatorLoss != the sum of OperatorLoss events");
        assertLe(h.opLoss(), h.splitValue() * h.initial(8) / 10_000, "operator loss past the budget");
        IDealVaultLens.Params memory p = lens.params(address(vault));
        uint256[11] memory now_ = [p.maxLtvBps, p.maxExposureBps, p.maxDeskFeeBps, p.oracleMaxAge, p.minDiscountBps,
            p.maxSlippageBps, p.sellFloorPrice, p.ethFloorPrice, p.maxOperatorLossBps, p.twapWindow, p.loosenDelay];
        (uint256[11] memory qv, uint256[11] memory qa) = lens.queuedParams(address(vault));
        for (uint256 i; i < 11; ++i) {
            assertEq(now_[i], h.params(i), "lens params != model");
            assertEq(qa[i], h.queuedAt(i), "lens queued validAt != model");
            if (qa[i] != 0) assertEq(qv[i], h.queuedValue(i), "lens queued value != model");
            if (_higherTighter(i)) assertGe(now_[i], h.initial(i), "a parameter looser than initial");
            else assertLe(now_[i], h.initial(i), "a parameter looser than initial");
        }
        assertEq(p.coreBps, risk.coreBps, "coreBps");
        assertEq(p.workingBps, risk.workingBps, "workingBps");
        assertEq(p.opportunisticBps, risk.opportunisticBps, "opportunisticBps");
        assertEq(p.minTranche, risk.minTranche, "minTranche");
        for (uint256 i; i < 3; ++i) {
            assertEq(p.rungs[i], risk.rungs[i], "rungs");
        }
    }

    function _higherTighter(uint256 p) internal pure returns (bool) {
        return p == 4 || p == 6 || p == 7 || p == 9 || p == 10;
    }

    /* THE OWNER'S EXIT, executed on a snapshot and reverted */

    function _ownerExit(IDealVaultLens.RiskView memory rv) internal {
        uint256 snap = vm.snapshotState();
        uint256 phase = uint256(rv.phase);
        uint256 owed = rv.coreEth + rv.workingEth + rv.opportunisticEth + rv.collateralBooked;
        uint256 before = k.owner.balance + IERC20(k.aWeth9).balanceOf(k.owner) + IERC20(k.aWeth10).balanceOf(k.owner);
        vm.startPrank(k.owner);
        if (phase != 5 && phase != 6) _exitCall(abi.encodeCall(IDealVaultExtensionExit.hold, ()), "hold");
        if (phase != 6) {
            address[2] memory st = [k.cusdt, k.cusdc];
            address[2] memory dt = [k.debtCusdt, k.debtCusdc];
            for (uint256 i; i < 2; ++i) {
                uint256 d = IERC20(dt[i]).balanceOf(address(vault));
                if (d > 0) _exitCall(abi.encodeCall(IDealVaultExtensionExit.ownerRepay, (st[i], d + 1e6)), "ownerRepay");
            }
            if (address(vault).balance > 0) {
                _exitCall(abi.encodeCall(IDealVaultExtensionExit.withdraw, (address(0), address(vault).balance)), "withdraw ETH");
            }
            _exitCall(abi.encodeCall(IDealVaultExtensionExit.close, ()), "close");
        }
        _exitWithdraw(address(0), address(vault).balance, "withdraw ETH after CLOSED");
        _exitWithdraw(k.aWeth9, IERC20(k.aWeth9).balanceOf(address(vault)), "withdraw aWETH9 after CLOSED");
        _exitWithdraw(k.aWeth10, IERC20(k.aWeth10).balanceOf(address(vault)), "withdraw aWETH10 after CLOSED");
        _exitWithdraw(k.cusdt, IERC20(k.cusdt).balanceOf(address(vault)), "withdraw cUSDT after CLOSED");
        _exitWithdraw(k.cusdc, IERC20(k.cusdc).balanceOf(address(vault)), "withdraw cUSDC after CLOSED");
        uint256 z = IERC20(k.usdtz).balanceOf(address(vault));
        if (z > 0) {
            (bool ok,) = address(vault).call(abi.encodeCall(IDealVaultExtensionExit.withdraw, (k.usdtz, z)));
            assertTrue(ok || IFiatTokenAdmin(k.usdtz).isBlacklisted(address(vault)), "owner exit: USDTz withdrawal failed");
        }
        vm.stopPrank();
        assertEq(address(vault).balance, 0, "owner exit: ETH left in the vault");
        assertEq(IERC20(k.aWeth9).balanceOf(address(vault)) + IERC20(k.aWeth10).balanceOf(address(vault)), 0,
            "owner exit: aTokens left in the vault");
        uint256 got = k.owner.balance + IERC20(k.aWeth9).balanceOf(k.owner) + IERC20(k.aWeth10).balanceOf(k.owner) - before;
        if (phase != 6) assertGe(got, owed, "owner exit recovered less than the booked ETH");
        vm.revertToStateAndDelete(snap);
    }

    function _exitCall(bytes memory data, string memory what) internal {
        (bool ok, bytes memory ret) = address(vault).call(data);
        if (!ok) {
            assertTrue(false, string.concat("owner exit: ", what, " failed: ", vm.toString(ret)));
        }
    }

    function _exitWithdraw(address token, uint256 amount, string memory what) internal {
        if (amount > 0) _exitCall(abi.encodeCall(IDealVaultExtensionExit.withdraw, (token, amount)), what);
    }
}

interface IFeed {
    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80);
}

interface IPoolIdx {
    function getReserveNormalizedVariableDebt(address asset) external view returns (uint256);
}

/// @dev The owner's exit calls (IDealVault's, declared here for abi.encodeCall).
interface IDealVaultExtensionExit {
    function hold() external;
    function ownerRepay(address stable, uint256 amount) external;
    function withdraw(address token, uint256 amount) external;
    function close() external;
}

/// @dev The runs of a profile are shared by the three bases (they run in parallel); every run is
///      depth 32. default (make test): 334 x 3 = 1,002 runs; long (make fuzz): 6,667 x 3 = 20,001;
///      mutate: 17 x 3 = 51.
contract VaultInvariantsSplit is VaultInvariants {
    function _base() internal override {}

    /// forge-config: default.invariant.runs = 334
    /// forge-config: long.invariant.runs = 6667
    /// forge-config: mutate.invariant.runs = 17
    function invariant_vault() public {
        _checkAll();
    }
}

contract VaultInvariantsPositioned is VaultInvariants {
    function _base() internal override {
        _positioned();
    }

    /// forge-config: default.invariant.runs = 334
    /// forge-config: long.invariant.runs = 6667
    /// forge-config: mutate.invariant.runs = 17
    function invariant_vault() public {
        _checkAll();
    }
}

contract VaultInvariantsUnderwater is VaultInvariants {
    function _base() internal override {
        _underwater();
    }

    /// forge-config: default.invariant.runs = 334
    /// forge-config: long.invariant.runs = 6667
    /// forge-config: mutate.invariant.runs = 17
    function invariant_vault() public {
        _checkAll();
    }
}
