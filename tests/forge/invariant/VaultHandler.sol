// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {IDealVault, IDealVaultCore, IDealVaultExtension, IDealVaultTypes} from "../../../contracts/interfaces/IDealVault.sol";
import {IDealVaultLens} from "../../../contracts/interfaces/IDealVaultLens.sol";
import {Kit} from "../Fixture.sol";
import {Books, State, IRouter} from "./Base.sol";
import {LegCore} from "./LegCore.sol";

/// @title VaultHandler
/// @notice The legs, each with its own properties on top of LegCore's generic ones (books follow
///         what moved, TWAP / price limit / floor, the loss recomputed from raw deltas, the
///         timelock's outcome predicted), and the attacker's sandwiches around operator legs.
contract VaultHandler is LegCore {
    address internal world; // the WorldHandler (tells this model about repayments on behalf)
    uint256[3] internal rungs;
    uint256 internal minTranche;

    constructor(
        IDealVault v,
        IDealVaultLens l,
        Kit memory kit,
        uint256[2] memory cum0,
        uint256[2] memory ts0,
        uint256 splitValue_,
        uint256 splitPrice_
    ) LegCore(v, l, kit, cum0, ts0, splitValue_, splitPrice_) {
        IDealVaultLens.Params memory p = l.params(address(v));
        rungs = p.rungs;
        minTranche = p.minTranche;
    }

    function setWorld(address w) external {
        if (world == address(0)) world = w;
    }

    /// @dev The world handler: a third party repaid `scaled` of the vault's scaled debt on the pool.
    function notePending(uint256 i, uint256 scaled) external {
        require(msg.sender == world, "world only");
        pendingScaled[i] += scaled;
    }

    /// @dev A refused leg reverts the handler call (forge counts it), unless it broke a property.
    function _end(Leg memory g) internal view {
        if (!g.ok && bytes(violation).length == 0) revert LegRefused(g.id, g.ret);
    }

    function _rv() internal view returns (Books memory) {
        return _booksNow();
    }

    /// @dev The loss the leg booked equals the one recomputed from raw deltas (operator legs only).
    function _expectLoss(Leg memory g, int256 expected, string memory what) internal {
        uint256 want = g.role == OPERATOR && expected > 0 ? uint256(expected) : 0;
        _checkEq(g.loss, want, string.concat(what, ": booked operator loss != recomputed"));
    }

    function _ceilDiv(uint256 a, uint256 b) internal pure returns (uint256) {
        return a == 0 ? 0 : (a - 1) / b + 1;
    }

    /* LEGS */

    function supply(uint256 roleSeed, uint256 wSeed, uint256 a) external {
        (address w,) = _wrapper(wSeed);
        uint256 amount = _pick(a, _rv().workingEth);
        _end(_leg(SUPPLY, _role(roleSeed), abi.encodeCall(IDealVaultCore.supply, (w, amount)), 0, true));
    }

    function borrow(uint256 roleSeed, uint256 sSeed, uint256 a) external {
        (address st, uint256 i) = _stable(sSeed);
        State memory s = _read();
        (, uint256 price) = _oracle(s, type(uint256).max);
        uint256 roomAll = params[0] * _collWei(s) * price / 1e24;
        uint256 debt = _bookedDebt(s) + rob;
        uint256 amount = _pick(a, roomAll > debt ? roomAll - debt : 0);
        Leg memory g = _leg(BORROW, _role(roleSeed), abi.encodeCall(IDealVaultCore.borrow, (st, amount)), 0, true);
        if (g.ok) {
            uint256 arrived = g.a.bal[i] - g.b.bal[i];
            _checkEq(g.a.stableBooks[i] - g.b.stableBooks[i], arrived, "borrow: books != what arrived");
            _expectLoss(g, int256(amount) - int256(arrived), "borrow");
        }
        _end(g);
    }

    /// @dev mode: bits 0-1 readiness (no / wait / observe + wait), bits 2-4 minOut, bit 5 a past deadline.
    function buy(uint256 roleSeed, uint256 sSeed, uint256 a, uint256 mode) external {
        (address st, uint256 i) = _stable(sSeed);
        _prepareTwap(i, mode % 4);
        uint256 minOut = (mode >> 2) % 8 == 6 ? 1 : (mode >> 2) % 8 == 7 ? 1e30 : 0;
        uint256 deadline = (mode >> 5) % 2 == 1 && minOut == 1 ? block.timestamp - 1 : FAR;
        uint256 avail = i < 2 ? _stableBooks()[i] : 0;
        _doBuy(_role(roleSeed), st, i, _pick(a, avail), minOut, deadline);
    }

    function _prepareTwap(uint256 i, uint256 mode) internal {
        if (i > 1 || mode == 0) return;
        if (mode >= 2) {
            Leg memory g = _leg(OBSERVE, OPERATOR, abi.encodeCall(IDealVaultExtension.observe, ()), 0, false);
            if (!g.ok) return;
        }
        uint256 readyAt = obsTs[i] + params[9];
        if (readyAt > block.timestamp) {
            vm.warp(readyAt);
            vm.roll(block.number + 1);
        }
    }

    function _twap(State memory s, uint256 i, uint256 cum0, uint256 t0) internal pure returns (uint256) {
        if (s.ts <= t0) return 0;
        unchecked {
            return ((s.cum[i] - cum0) & MASK192) / (s.ts - t0);
        }
    }

    function _doBuy(uint8 role, address st, uint256 i, uint256 amount, uint256 minOut, uint256 deadline)
        internal
        returns (Leg memory g)
    {
        uint256 cum0 = i < 2 ? obsCum[i] : 0;
        uint256 t0 = i < 2 ? obsTs[i] : 0;
        g = _leg(BUY, role, abi.encodeCall(IDealVaultCore.buy, (st, amount, minOut, deadline)), 0, true);
        if (!g.ok) return g;
        State memory b = g.b;
        _check(b.ts >= t0 + params[9], "buy: used an observation younger than twapWindow");
        _check(_spotX112(b, i) * BPS <= _twap(b, i, cum0, t0) * (BPS + params[5]), "buy: spot above the TWAP band");
        uint256 got = g.a.balZ - b.balZ;
        _check(amount * 1e6 <= (BPS - params[4]) * 100 * got, "buy: paid above the price limit");
        _check(got >= minOut, "buy: got less than minOut");
        _checkEq(g.a.rv.usdtzHeld - b.rv.usdtzHeld, got, "buy: USDTz books != USDTz received");
        _checkEq(g.a.rv.usdtzCost - b.rv.usdtzCost, amount, "buy: cost basis != stable paid");
        _checkEq(b.bal[i] - g.a.bal[i], amount, "buy: stable paid != amount");
    }

    function redeem(uint256 roleSeed, uint256 sSeed, uint256 a) external {
        (address st, uint256 i) = _stable(sSeed);
        Books memory rv = _rv();
        uint256 size = rungs[rv.rung < 2 ? rv.rung : 2];
        uint256 amount = _pick(a, rv.usdtzHeld < size ? rv.usdtzHeld : size);
        Leg memory g = _leg(REDEEM, _role(roleSeed), abi.encodeCall(IDealVaultCore.redeem, (st, amount)), 0, false);
        if (g.ok) _redeemBooks(g, i, amount);
        _end(g);
    }

    function _redeemBooks(Leg memory g, uint256 i, uint256 amount) internal {
        State memory b = g.b;
        uint256 held = b.rv.usdtzHeld;
        uint256 cost = b.rv.usdtzCost;
        _check(amount >= minTranche || amount == held, "redeem: a tranche below minTranche ran");
        uint256 dz = b.balZ - g.a.balZ;
        _checkEq(held - g.a.rv.usdtzHeld, dz, "redeem: USDTz books != USDTz delivered");
        uint256 ds = g.a.bal[i] - b.bal[i];
        _checkEq(g.a.stableBooks[i] - b.stableBooks[i], ds, "redeem: stable books != stable received");
        uint256 costOut = dz >= held ? cost : _ceilDiv(cost * dz, held);
        _checkEq(cost - g.a.rv.usdtzCost, costOut, "redeem: cost basis out != average cost");
        _expectLoss(g, int256(costOut) - int256(ds), "redeem");
        if (sawRedemptionFailed) {
            _check(g.a.phase == HOLDING && g.a.rv.rung == 0 && g.a.rv.rungProgress == 0,
                "failed redemption: not HOLDING at rung 0");
        } else {
            _check(ds * BPS >= amount * (BPS - params[2]) && dz == amount, "redeem succeeded but short or above the fee cap");
        }
    }

    function sell(uint256 roleSeed, uint256 sSeed, uint256 a, uint256 mode) external {
        (address st, uint256 i) = _stable(sSeed);
        _prepareTwap(i, mode % 4);
        uint256 minOut = (mode >> 2) % 4 == 3 ? 1e30 : 0;
        _doSell(_role(roleSeed), st, i, _pick(a, _rv().usdtzHeld), minOut);
    }

    function _doSell(uint8 role, address st, uint256 i, uint256 amount, uint256 minOut) internal returns (Leg memory g) {
        uint256 cum0 = i < 2 ? obsCum[i] : 0;
        uint256 t0 = i < 2 ? obsTs[i] : 0;
        g = _leg(SELL, role, abi.encodeCall(IDealVaultCore.sell, (st, amount, minOut, FAR)), 0, false);
        if (!g.ok) return g;
        State memory b = g.b;
        uint256 held = b.rv.usdtzHeld;
        uint256 costOut = amount >= held ? b.rv.usdtzCost : _ceilDiv(b.rv.usdtzCost * amount, held);
        uint256 received = g.a.bal[i] - b.bal[i];
        _check(received * 1e6 >= params[6] * amount, "sell: below the floor");
        _check(received >= minOut, "sell: below minOut");
        _checkEq(g.a.stableBooks[i] - b.stableBooks[i], received, "sell: stable books != received");
        _checkEq(g.a.rv.usdtzHeld, held - amount, "sell: USDTz books");
        _checkEq(g.a.rv.usdtzCost, b.rv.usdtzCost - costOut, "sell: cost basis");
        if (role == OPERATOR) {
            _check(b.ts >= t0 + params[9], "operator sell: observation younger than twapWindow");
            _check(_spotX112(b, i) * BPS >= _twap(b, i, cum0, t0) * (BPS - params[5]),
                "operator sell: spot below the TWAP band");
        }
        _expectLoss(g, int256(costOut) - int256(received), "sell");
    }

    function repay(uint256 roleSeed, uint256 sSeed, uint256 a, bool useMax) external {
        (address st, uint256 i) = _stable(sSeed);
        uint256 amount = useMax ? type(uint256).max : _pick(a, i < 2 ? _stableBooks()[i] : 0);
        _end(_leg(REPAY, _role(roleSeed), abi.encodeCall(IDealVaultCore.repay, (st, amount)), 0, false));
    }

    function ownerRepay(uint256 roleSeed, uint256 sSeed, uint256 a) external {
        (address st, uint256 i) = _stable(sSeed);
        uint256 amount = _pick(a, i < 2 ? IERC20(debtTokens[i]).balanceOf(address(vault)) : 0);
        Leg memory g = _leg(OWNER_REPAY, _ownerRole(roleSeed), abi.encodeCall(IDealVaultExtension.ownerRepay, (st, amount)), 0, false);
        if (g.ok) {
            uint256 paid = g.b.own[i] - g.a.own[i];
            _check(paid > 0 && paid <= amount && paid <= g.b.debt[i], "ownerRepay: the owner paid a wrong amount");
            uint256 fell = g.b.debt[i] - g.a.debt[i];
            _check(fell + AAVE_ROUNDING >= paid && fell <= paid + AAVE_ROUNDING, "ownerRepay: debt fell by != paid");
            _checkEq(g.a.stableBooks[i], g.b.stableBooks[i], "ownerRepay moved the stable books");
            ownerRepaid += paid;
        }
        _end(g);
    }

    function addCollateral(uint256 roleSeed, uint256 wSeed, uint256 a) external {
        (address w,) = _wrapper(wSeed);
        uint256 amount = _pick(a, _rv().opportunisticEth);
        _end(_leg(ADD_COLL, _role(roleSeed), abi.encodeCall(IDealVaultCore.addCollateral, (w, amount)), 0, false));
    }

    function withdrawCollateral(uint256 roleSeed, uint256 wSeed, uint256 a) external {
        (address w, uint256 j) = _wrapper(wSeed);
        uint256 amount = _pick(a, j < 2 ? _collBooks()[j] : 0);
        bool debt = IERC20(debtTokens[0]).balanceOf(address(vault)) + IERC20(debtTokens[1]).balanceOf(address(vault)) > 0;
        _end(_leg(WITHDRAW_COLL, _role(roleSeed), abi.encodeCall(IDealVaultCore.withdrawCollateral, (w, amount)), 0, debt));
    }

    /// @dev The reference price of a deleverage: the feed if Fresh; for the owner otherwise
    ///      ethFloorPrice; for the operator the last answer if Stale (0: Invalid, refused).
    function _refPrice(State memory s, uint8 role) internal view returns (uint256) {
        (uint256 status, uint256 ans) = _oracle(s, params[3]);
        if (status == 0) return ans;
        if (role == OWNER) return params[7];
        return status == 1 ? ans : 0;
    }

    function deleverage(uint256 roleSeed, uint256 wSeed, uint256 sSeed, uint256 a, uint256 mode) external {
        (address w, uint256 j) = _wrapper(wSeed);
        (address st, uint256 i) = _stable(sSeed);
        uint8 role = _role(roleSeed);
        uint256 amount = _pick(a, mode % 2 == 0 ? _deleverageRoom(j, i, role) : j < 2 ? _collBooks()[j] : 0);
        _doDeleverage(role, w, j, st, i, amount, (mode >> 1) % 4 == 3 ? 1e30 : 0);
    }

    /// @dev The most collateral a deleverage may sell: value x (1 - slip) <= the stable's debt x 1.01.
    function _deleverageRoom(uint256 j, uint256 i, uint8 role) internal view returns (uint256) {
        if (j > 1 || i > 1) return 0;
        State memory s = _read();
        uint256 px = _refPrice(s, role == OWNER ? OWNER : OPERATOR);
        if (px == 0) return s.coll[j];
        uint256 room = s.debt[i] * 10_100 * 1e20 / (px * (BPS - params[5]));
        return room < s.coll[j] ? room : s.coll[j];
    }

    function _doDeleverage(uint8 role, address w, uint256 j, address st, uint256 i, uint256 amount, uint256 minOut)
        internal
        returns (Leg memory g)
    {
        g = _leg(DELEVERAGE, role, abi.encodeCall(IDealVaultCore.deleverage, (w, st, amount, minOut, FAR)), 0, false);
        if (!g.ok) return g;
        _check(!(role == OPERATOR && g.status == 2), "operator deleverage ran with an invalid oracle");
        uint256 value = amount * _refPrice(g.b, role) / 1e20;
        uint256 bound = value * (BPS - params[5]) / BPS;
        uint256 received = sawFromWethPair;
        _check(received >= bound && received >= minOut, "deleverage received less than the bound");
        _check(value * (BPS - params[5]) <= g.b.debt[i] * (BPS + 100), "deleverage sold more collateral than the debt needs");
        _checkEq(g.b.coll[j] - g.a.coll[j], amount, "deleverage: collateral books");
        _expectLoss(g, int256(value) - int256(received), "deleverage");
    }

    function close(uint256 roleSeed, uint256 really) external {
        // a close ends the deal (every later leg reverts): 3 in 4 attempts come from a stranger
        uint8 role = really % 4 == 0 ? _role(roleSeed) : STRANGER;
        Leg memory g = _leg(CLOSE, role, abi.encodeCall(IDealVaultCore.close, ()), 0, false);
        if (g.ok) _closeBooks(g);
        _end(g);
    }

    function _closeBooks(Leg memory g) internal {
        State memory b = g.b;
        _checkEq(_poolDebt(b), 0, "closed with debt");
        _checkEq(g.a.phase, CLOSED, "close: phase");
        _checkEq(g.a.rv.coreEth, core, "close moved the core");
        uint256 left;
        for (uint256 j; j < 2; ++j) {
            uint256 payable_ = b.abal[j] < b.liq[j] ? b.abal[j] : b.liq[j];
            uint256 want;
            if (b.coll[j] == 0 || payable_ == b.abal[j]) want = 0;
            else if (payable_ > 0) want = b.coll[j] - (payable_ < b.coll[j] ? payable_ : b.coll[j]);
            else want = b.coll[j];
            _checkEq(g.a.coll[j], want, "close: collateral left booked");
            left += want;
        }
        (int256 pnlEth, int256 pnlUsd, uint256 surplus, uint256 writtenOff, uint256 collLeft, uint8 status) =
            abi.decode(sawClosed, (int256, int256, uint256, uint256, uint256, uint8));
        int256 wantEth = int256(_ethBooks(b) + b.coll[0] + b.coll[1] + ethReturned) - int256(fundedCapital);
        uint256 stable = b.stableBooks[0] + b.stableBooks[1];
        int256 wantUsd = wantEth * int256(g.price) / 1e18 + (int256(stable) - int256(ownerRepaid) - int256(rob)) * 100;
        _check(pnlEth == wantEth && pnlUsd == wantUsd, "Closed: realized PnL");
        _checkEq(surplus, stable, "Closed: stableSurplus");
        _checkEq(writtenOff, b.rv.usdtzCost, "Closed: writtenOffUsdtz");
        _checkEq(collLeft, left, "Closed: collateralLeft");
        _checkEq(status, g.status, "Closed: oracleStatus");
        _expectLoss(g, int256(b.rv.usdtzCost), "close");
    }

    /// @dev which: hold / resume / pause / unpause / observe (then maybe wait the TWAP window).
    function admin(uint256 which, uint256 roleSeed, bool wait) external {
        uint256 w = which % 9;
        if (w >= 7) {
            Leg memory o = _leg(OBSERVE, _role(roleSeed), abi.encodeCall(IDealVaultExtension.observe, ()), 0, false);
            if (o.ok) {
                _check(obsTs[0] == block.timestamp && obsTs[1] == block.timestamp, "observe: no new observation");
                _check(!sawLegCompleted, "observe emitted LegCompleted");
                if (wait) {
                    vm.warp(block.timestamp + params[9]);
                    vm.roll(block.number + 1);
                }
            }
            _end(o);
            return;
        }
        uint8 kind = [HOLD, RESUME, PAUSE, UNPAUSE, HOLD, RESUME, UNPAUSE][w];
        uint8 role = kind == HOLD || kind == PAUSE ? _guardRole(roleSeed) : _ownerRole(roleSeed);
        bytes memory data = kind == HOLD ? abi.encodeCall(IDealVaultExtension.hold, ())
            : kind == RESUME ? abi.encodeCall(IDealVaultExtension.resume, ())
            : kind == PAUSE ? abi.encodeCall(IDealVaultExtension.pause, ()) : abi.encodeCall(IDealVaultExtension.unpause, ());
        Leg memory g = _leg(kind, role, data, 0, false);
        if (g.ok && kind == HOLD) {
            _check(g.a.phase == HOLDING && uint256(g.a.rv.phaseBeforeHolding) == g.b.phase, "hold: phases");
        }
        if (g.ok && kind == RESUME) _checkEq(g.a.phase, uint256(g.b.rv.phaseBeforeHolding), "resume: phase");
        if (g.ok && kind == PAUSE) _check(g.a.paused, "pause: not paused");
        if (g.ok && kind == UNPAUSE) _check(!g.a.paused, "unpause: still paused");
        _end(g);
    }

    /// @dev The owner's withdraw: surplus before CLOSED, in HOLDING also the idle ETH buckets
    ///      (opportunistic, working, core), anything after CLOSED.
    function withdraw(uint256 roleSeed, uint256 what, uint256 a, bool idle) external {
        State memory s = _read();
        uint256 wh = what % 6; // ETH, ETH, cUSDT, USDTz, WETH9, aWETH9
        address token;
        uint256 bal;
        uint256 books;
        if (wh < 2) (token, bal, books) = (address(0), s.ethVault, _ethBooks(s));
        else if (wh == 2) (token, bal, books) = (k.cusdt, s.bal[0], s.stableBooks[0]);
        else if (wh == 3) (token, bal, books) = (k.usdtz, s.balZ, s.rv.usdtzHeld);
        else if (wh == 4) (token, bal, books) = (k.weth9, IERC20(k.weth9).balanceOf(address(vault)), 0);
        else (token, bal, books) = (aTokens[0], s.abal[0], s.coll[0]);
        uint256 surplus = s.phase == CLOSED ? bal : bal > books ? bal - books : 0;
        uint256 amount = _pick(a, idle && wh < 2 && s.phase == HOLDING ? bal : surplus);
        Leg memory g = _leg(WITHDRAW, _ownerRole(roleSeed), abi.encodeCall(IDealVaultExtension.withdraw, (token, amount)), 0, false);
        if (g.ok) _withdrawBooks(g, wh, amount, bal, books, surplus);
        _end(g);
    }

    function _withdrawBooks(Leg memory g, uint256 wh, uint256 amount, uint256 bal, uint256 books, uint256 surplus)
        internal
    {
        uint256 phase = g.b.phase;
        _check(phase == CLOSED || wh != 5 || amount == 0, "aTokens withdrawn before CLOSED");
        uint256 fromBooks;
        if (phase != CLOSED) fromBooks = amount > surplus ? amount - surplus : 0;
        else fromBooks = books > bal - amount ? books - (bal - amount) : 0;
        _check(phase == HOLDING || phase == CLOSED || fromBooks == 0, "withdrew booked value outside HOLDING");
        _check(sawWithdrawnCount == 1 && sawWithdrawnAmount == amount && sawWithdrawnFromBooks == fromBooks,
            "withdraw: Withdrawn event");
        if (fromBooks == 0) return;
        if (wh >= 2) {
            uint256 afterBooks = wh == 2 ? g.a.stableBooks[0] : wh == 3 ? g.a.rv.usdtzHeld : wh == 5 ? g.a.coll[0] : 0;
            _checkEq(afterBooks, books - fromBooks, "withdraw after CLOSED: books");
            return;
        }
        Books memory rb = g.b.rv;
        uint256 fOpp = fromBooks < rb.opportunisticEth ? fromBooks : rb.opportunisticEth;
        uint256 fWork = fromBooks - fOpp < rb.workingEth ? fromBooks - fOpp : rb.workingEth;
        uint256 fCore = fromBooks - fOpp - fWork;
        _check(g.a.rv.opportunisticEth == rb.opportunisticEth - fOpp && g.a.rv.workingEth == rb.workingEth - fWork
            && g.a.rv.coreEth == rb.coreEth - fCore, "withdraw: bucket order");
        core -= fCore;
        ethReturned += fromBooks;
    }

    function fundOrSplit(uint256 roleSeed, bool again) external {
        uint8 role = _role(roleSeed);
        if (again) {
            _end(_leg(SPLIT_, role, abi.encodeCall(IDealVaultCore.split, ()), 0, false));
        } else {
            _end(_leg(FUND, role == OPERATOR ? OWNER : role, abi.encodeCall(IDealVaultExtension.fund, ()), 1 ether, false));
        }
    }

    /* PARAMETERS: the timelock, every outcome predicted */

    /// @dev plan: set / accept / revoke one call, or a cycle (tighten, queue a loosening, then an
    ///      early or timely accept, a revoke, a new tightening or nothing).
    function param(uint256 plan, uint256 pSeed, uint256 how, uint256 frac, uint256 roleSeed, bool wait, uint256 then)
        external
    {
        uint256 pl = plan % 7;
        uint256 p = pSeed % 16;
        p = p < 11 ? p : [8, 8, 5, 9, 6][p - 11];
        frac = frac % BPS + 1;
        if (pl < 2) return _paramStep(0, p, how % 9, frac, _ownerRole(roleSeed), wait);
        if (pl == 2) return _paramStep(1, p, how, frac, uint8(roleSeed % 4), wait);
        if (pl == 3) return _paramStep(2, p, how, frac, _guardRole(roleSeed), wait);
        _paramStep(0, p, 0, frac, OWNER, false);
        _paramStep(0, p, how % 9 == 4 ? 4 : 2, frac, OWNER, false);
        uint256 t = then % 7;
        if (t < 3) _paramStep(1, p, how, frac, uint8(roleSeed % 4), t > 0);
        else if (t < 5) _paramStep(2, p, how, frac, roleSeed % 2 == 0 ? GUARDIAN : OWNER, false);
        else if (t == 5) _paramStep(0, p, 0, frac, OWNER, false);
    }

    /// @dev op 0 setParam (how: 0-1 tight, 2-3 loose, 4 initial, 5 same, 6 past initial, 7 past
    ///      limit, 8 under floor), 1 acceptParam, 2 revokeParam.
    function _paramStep(uint256 op, uint256 p, uint256 how, uint256 frac, uint8 role, bool wait) internal {
        bytes memory want; // expected revert data; empty: success
        Leg memory g;
        if (op == 0) {
            uint256 value = _paramValue(p, how, frac);
            want = _setOutcome(p, value, role);
            g = _leg(SET_PARAM, role, abi.encodeCall(IDealVaultExtension.setParam, (IDealVaultTypes.Param(p), value)), 0, false);
            if (g.ok && want.length == 0) {
                _checkEq(lens.params(address(vault)).maxLtvBps, params[0], "setParam: lens params");
                bool looser = _higher(p) ? value < params[p] : value > params[p];
                if (looser) _check(queuedAt[p] == block.timestamp + params[10] && queuedValue[p] == value, "setParam: queue");
                else _check(params[p] == value && queuedAt[p] == 0, "setParam: not set at once");
            }
        } else if (op == 1) {
            if (wait && queuedAt[p] > block.timestamp) {
                vm.warp(queuedAt[p]);
                vm.roll(block.number + 1);
            }
            uint256 qv = queuedValue[p];
            if (queuedAt[p] == 0) want = abi.encodeWithSelector(IDealVaultTypes.NothingQueued.selector, p);
            else if (block.timestamp < queuedAt[p]) {
                want = abi.encodeWithSelector(IDealVaultTypes.QueuedUntil.selector, p, queuedAt[p]);
            }
            g = _leg(ACCEPT_PARAM, role, abi.encodeCall(IDealVaultExtension.acceptParam, (IDealVaultTypes.Param(p))), 0, false);
            if (g.ok && want.length == 0) _check(params[p] == qv && queuedAt[p] == 0, "acceptParam: not applied");
        } else {
            if (role != OWNER && role != GUARDIAN) {
                want = abi.encodeWithSelector(IDealVaultTypes.NotGuardian.selector, _addr(role));
            } else if (queuedAt[p] == 0) {
                want = abi.encodeWithSelector(IDealVaultTypes.NothingQueued.selector, p);
            }
            g = _leg(REVOKE_PARAM, role, abi.encodeCall(IDealVaultExtension.revokeParam, (IDealVaultTypes.Param(p))), 0, false);
            if (g.ok && want.length == 0) _check(queuedAt[p] == 0, "revokeParam: still queued");
        }
        if (want.length > 0) {
            _check(!g.ok && keccak256(g.ret) == keccak256(want),
                string.concat("param ", _name(g.id), ": expected another revert, got ", g.ok ? "success" : vm.toString(g.ret)));
        } else {
            _check(g.ok, string.concat("param ", _name(g.id), ": expected success, reverted ", vm.toString(g.ret)));
        }
    }

    function _paramValue(uint256 p, uint256 how, uint256 frac) internal view returns (uint256) {
        bool hi = _higher(p);
        uint256 cur = params[p];
        uint256 init = initial[p];
        uint256 lim = limitOf(p);
        uint256 flo = floorOf(p);
        if (how < 2) {
            uint256 step = ((hi ? lim - cur : cur - flo) * frac) / BPS;
            step = step > 0 ? step : 1;
            return hi ? (cur + step < lim ? cur + step : lim) : (cur - flo > step ? cur - step : flo);
        }
        if (how < 4) {
            uint256 span = hi ? cur - init : init - cur;
            uint256 step = span * frac / BPS;
            step = step > 0 ? step : 1;
            return hi ? cur - step : cur + step;
        }
        if (how == 4) return init;
        if (how == 5) return cur;
        if (how == 6) return hi ? init - 1 : init + 1;
        if (how == 7) return lim + 1;
        return flo > 0 ? flo - 1 : 0;
    }

    function _setOutcome(uint256 p, uint256 value, uint8 role) internal view returns (bytes memory) {
        bool hi = _higher(p);
        uint256 cur = params[p];
        uint256 init = initial[p];
        if (role != OWNER) return abi.encodeWithSelector(IDealVaultTypes.NotOwner.selector, _addr(role));
        if (value > limitOf(p)) return abi.encodeWithSelector(IDealVaultTypes.CapAboveCeiling.selector, value, limitOf(p));
        if (value < floorOf(p)) return abi.encodeWithSelector(IDealVaultTypes.ParamInvalid.selector, p, value);
        if (hi ? value >= cur : value <= cur) return "";
        if (hi ? value < init : value > init) {
            return abi.encodeWithSelector(IDealVaultTypes.LoosenedPastInitial.selector, p, value, init);
        }
        return "";
    }

    /* THE ATTACKER: trades the pair a leg uses before it, the leg runs, trades everything back */

    /// @dev shape: bits 0-7 kind (buy / sell / deleverage), 8-15 role (4 in 5 operator), 16-23
    ///      stablecoin, 24-31 wrapper, 32-39 push (bps of the pair's reserve), 40 reverse, 48-55 gap
    ///      (0-2 same block, 3: 1 s, 4: the TWAP window, 5: ten windows), 56 readiness.
    function sandwich(uint256 shape, uint256 a) external {
        uint256 kd = shape % 3;
        uint256 i = (shape >> 16) % 3 < 2 ? 0 : 1;
        if (kd < 2) _prepareTwap(i, 2 + (shape >> 56) % 2);
        (address tin, address tout) = _sandwichPath(kd, i, (shape >> 40) % 2 == 1);
        uint256 amountIn = IERC20(tin).balanceOf(kd == 2 ? wethPairs[i] : usdtzPairs[i])
            * [uint256(5), 10, 20, 30, 50, 100, 300, 1000, 5000][(shape >> 32) % 9] / BPS;
        uint256 got = _attSwap(tin, tout, amountIn > 0 ? amountIn : 1);
        _gap((shape >> 48) % 6);
        _sandwiched(kd, (shape >> 8) % 5 == 4 ? OWNER : OPERATOR, i, (shape >> 24) % 3 < 2 ? 0 : 1, a);
        uint256 back = _attSwap(tout, tin, got);
        sandwiches++;
        if (back > amountIn) attackerWins++;
    }

    function _gap(uint256 g) internal {
        if (g < 3) return;
        vm.warp(block.timestamp + (g == 3 ? 1 : g == 4 ? params[9] : 10 * params[9]));
        vm.roll(block.number + 1);
    }

    function _sandwiched(uint256 kd, uint8 role, uint256 i, uint256 j, uint256 a) internal {
        if (kd == 0) {
            _doBuy(role, stables[i], i, _pick(a % 5, _stableBooks()[i]), 0, FAR);
        } else if (kd == 1) {
            _doSell(role, stables[i], i, _pick(a % 5, _rv().usdtzHeld), 0);
        } else {
            _doDeleverage(role, wrappers[j], j, stables[i], i, _pick(a % 5, _deleverageRoom(j, i, role)), 0);
        }
    }

    function _sandwichPath(uint256 kd, uint256 i, bool reverse) internal view returns (address, address) {
        address z = kd == 2 ? k.weth9 : k.usdtz;
        address s = stables[i];
        // pump before a buy, dump before a sell or a deleverage (reverse: the other way)
        bool sToZ = kd == 0 ? !reverse : reverse;
        if (kd == 2) sToZ = reverse;
        return sToZ ? (s, z) : (z, s);
    }

    function _attSwap(address tin, address tout, uint256 amount) internal returns (uint256) {
        address[] memory path = new address[](2);
        path[0] = tin;
        path[1] = tout;
        vm.prank(k.attacker);
        try IRouter(k.router).swapExactTokensForTokens(amount, 0, path, k.attacker, FAR) returns (uint256[] memory out) {
            return out[1];
        } catch {
            return 0;
        }
    }
}
