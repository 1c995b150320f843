// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {IDealVault} from "../../../contracts/interfaces/IDealVault.sol";
import {IDealVaultLens} from "../../../contracts/interfaces/IDealVaultLens.sol";
import {IAaveV3Pool} from "../../../contracts/interfaces/IAaveV3Pool.sol";
import {Kit} from "../Fixture.sol";
import {HandlerBase, State, IFeedAdmin, IFiatTokenAdmin, IDeskAdmin, IConfigurator, IRouter} from "./Base.sol";
import {VaultHandler} from "./VaultHandler.sol";

/// @title WorldHandler
/// @notice The outside world moves: the ETH/USD feed (moves, zero, negative, absurd, stale, ahead of
///         the clock), USDTz freezes of the vault, desk halts, fees and droughts, Aave reserve freezes,
///         a WETH reserve borrowed dry and refilled, repayments of the vault's debt by a third party
///         (pool.repay onBehalfOf the vault: the caps' debt must not fall), time jumps, third-party
///         trades and donations of every kind. Each action is what the kit's role holders can do.
contract WorldHandler is HandlerBase {
    VaultHandler internal immutable legs;

    uint256 public drains;
    uint256 public repaymentsOnBehalf;

    constructor(IDealVault v, IDealVaultLens l, Kit memory kit, VaultHandler h) HandlerBase(v, l, kit) {
        legs = h;
    }

    function priceMove(uint256 seed) external {
        int256[4] memory odd = [int256(0), -1, 1e17, 2_999e8];
        int256 answer = seed % 8 == 0 ? odd[(seed >> 8) % 4] : int256(500 + (seed >> 8) % 7_501) * 1e8;
        vm.prank(k.feedOwner);
        IFeedAdmin(k.ethUsdFeed).setAnswer(answer);
    }

    /// @dev The latest answer again, updated `age` (> oracleMaxAge) seconds ago, or ahead of the clock.
    function feedRound(uint256 seed, bool future) external {
        (, int256 answer,,,) = IFeedAdmin(k.ethUsdFeed).latestRoundData();
        uint256 at;
        if (future) {
            at = block.timestamp + [uint256(1), 60, 3_600, 86_400][seed % 4];
        } else {
            uint256 age = 3_601 + seed % (10 * 86_400);
            at = block.timestamp > age ? block.timestamp - age : 1;
        }
        vm.prank(k.feedOwner);
        IFeedAdmin(k.ethUsdFeed).setRound(answer, at);
    }

    function usdtzFreeze(bool frozen) external {
        vm.prank(k.issuer);
        if (frozen) IFiatTokenAdmin(k.usdtz).blacklist(address(vault));
        else IFiatTokenAdmin(k.usdtz).unBlacklist(address(vault));
    }

    function deskHalt(bool halted) external {
        vm.prank(k.issuer);
        if (halted) IDeskAdmin(k.desk).halt();
        else IDeskAdmin(k.desk).resume();
    }

    /// @dev Other redeemers empty the desk's stock of one or both stablecoins (down to `leave`), or it is refilled.
    function deskDry(uint256 which, bool leave, bool refill) external {
        for (uint256 i; i < 2; ++i) {
            if (which % 3 != 2 && which % 3 != i) continue;
            IERC20 t = IERC20(stables[i]);
            if (refill) {
                vm.prank(k.trader);
                t.transfer(k.desk, 20_000_000e6);
                continue;
            }
            uint256 keep = leave ? 1_000e6 : 0;
            uint256 bal = t.balanceOf(k.desk);
            if (bal > keep) {
                vm.prank(k.desk);
                t.transfer(k.issuer, bal - keep);
            }
        }
    }

    function deskFee(uint256 seed) external {
        vm.prank(k.deskOperator);
        IDeskAdmin(k.desk).setFee([uint256(0), 10, 50, 51, 500][seed % 5], 0);
    }

    function reserveFreeze(uint256 asset, bool frozen) external {
        address[4] memory assets = [k.weth9, k.weth10, k.cusdt, k.cusdc];
        vm.prank(k.aaveAdmin);
        IConfigurator(k.poolConfigurator).setReserveFreeze(assets[asset % 4], frozen);
    }

    /// @dev The drainer borrows a WETH reserve's whole liquidity (against the other wrapper), or
    ///      repays its debt to refill it.
    function wethDrain(uint256 asset, bool refill) external {
        uint256 j = asset % 3 < 2 ? 0 : 1;
        address w = wrappers[j];
        vm.startPrank(k.drainer);
        if (refill) {
            IAaveV3Pool(k.pool).repay(w, type(uint256).max, 2, k.drainer);
        } else {
            uint256 liq = IERC20(w).balanceOf(aTokens[j]);
            if (liq > 0) {
                IAaveV3Pool(k.pool).supply(wrappers[1 - j], 2 * liq + 1 ether, k.drainer, 0);
                IAaveV3Pool(k.pool).borrow(w, liq, 2, 0, k.drainer);
                _checkEq(IERC20(w).balanceOf(aTokens[j]), 0, "drained WETH reserve still has liquidity");
                drains++;
            }
        }
        vm.stopPrank();
    }

    /// @dev A third party repays part or all of the vault's debt directly on the pool: the caps'
    ///      debt, LTV, NAV and exposure the lens reports do not move (never a looser cap).
    function repayOnBehalf(uint256 which, uint256 fracSeed) external {
        uint256 i = which % 3 < 2 ? 0 : 1;
        State memory b = _read();
        if (b.debt[i] == 0) return;
        IDealVaultLens.RiskView memory rb = lens.riskView(address(vault));
        uint256 amount = b.debt[i] * [uint256(1), 100, 2_500, 9_999, 10_000, 10_001][fracSeed % 6] / BPS;
        if (amount == 0) amount = 1;
        uint256 before = IERC20(stables[i]).balanceOf(k.benefactor);
        vm.prank(k.benefactor);
        IAaveV3Pool(k.pool).repay(stables[i], amount, 2, address(vault));
        uint256 paid = before - IERC20(stables[i]).balanceOf(k.benefactor);
        State memory a = _read();
        IDealVaultLens.RiskView memory ra = lens.riskView(address(vault));
        legs.notePending(i, b.sdebt[i] - a.sdebt[i]);
        repaymentsOnBehalf++;
        uint256 fell = b.debt[i] - a.debt[i];
        _check(fell + AAVE_ROUNDING >= paid && fell <= paid + AAVE_ROUNDING, "repay on behalf: debt fell by != paid");
        _checkEq(ra.debt, rb.debt, "repay on behalf moved the caps' debt");
        _checkEq(ra.ltvBps, rb.ltvBps, "repay on behalf moved the LTV");
        _checkEq(ra.nav, rb.nav, "repay on behalf moved the NAV");
        _checkEq(ra.exposureBps, rb.exposureBps, "repay on behalf moved the exposure");
    }

    function timeJump(uint256 seed) external {
        vm.warp(block.timestamp + [uint256(1), 60, 3_599, 3_601, 86_400, 30 * 86_400][seed % 6]);
        vm.roll(block.number + 1);
    }

    function thirdPartyTrade(uint256 which, bool toUsdtz, uint256 amount) external {
        address s = stables[which % 2];
        address[] memory path = new address[](2);
        (path[0], path[1]) = toUsdtz ? (s, k.usdtz) : (k.usdtz, s);
        vm.prank(k.trader);
        IRouter(k.router).swapExactTokensForTokens((1 + amount % 3_000_000) * 1e6, 0, path, k.trader, FAR);
    }

    /// @dev Forced ETH (never booked) or a token sent to the vault by its holders.
    function donate(uint256 what, uint256 amount) external {
        uint256 w = what % 6;
        amount = 1 + amount % 1e6;
        if (w == 0) {
            vm.deal(address(vault), address(vault).balance + amount * 1e12);
            return;
        }
        address[5] memory tokens = [k.cusdt, k.cusdc, k.usdtz, k.weth9, k.weth10];
        address[5] memory from = [k.trader, k.trader, k.trader, k.attacker, k.drainer];
        vm.prank(from[w - 1]);
        IERC20(tokens[w - 1]).transfer(address(vault), w >= 4 ? amount * 1e12 : amount);
    }
}
