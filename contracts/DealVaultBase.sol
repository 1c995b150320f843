// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

import {IDealVaultTypes} from "./interfaces/IDealVault.sol";
import {IAaveV3Pool, IScaledBalanceToken} from "./interfaces/IAaveV3Pool.sol";
import {IUniswapV2Router} from "./interfaces/IUniswapV2Router.sol";
import {IWETH} from "./interfaces/IWETH.sol";
import {OracleLib} from "./libraries/OracleLib.sol";
import {RiskLib} from "./libraries/RiskLib.sol";
import {ParamTable} from "./libraries/ParamTable.sol";
import {TwapLib} from "./libraries/TwapLib.sol";
import {DealVaultStorage} from "./DealVaultStorage.sol";

/// @title DealVaultBase
/// @notice What the core (DealVault) and its extension (DealVaultExtension) share: the immutables
///         (the same values in both: the core passes its Setup to the extension it creates), the
///         rules every leg follows, the books, the venue calls and `_finish`. Each rule is written
///         once, here; each contract's bytecode holds only the parts it uses.
/// @dev Every leg runs in the same order: checks (role, phase, pause, amounts against the books),
///      state (books), event, external calls (venues), then the leg's post-conditions (the price
///      checks on what arrived, the realized loss against the budget) and `_finish`: for a leg that
///      checks caps, one oracle read, the aToken reads, the debt from the scaled books at the pool's
///      index, and the pool cross-check, then its cap assertions; for every leg the core invariant
///      and `LegCompleted`. A violation reverts the whole leg. A leg that checks no cap reads no
///      market data (see IDealVaultTypes.Snapshot).
///      Assumptions: the pool, router, desk and tokens are the configured contracts; they may fail
///      or revert, or call back (every entry point is nonReentrant), but Aave pulls at most the
///      approved amount and the router pays `to`. Raw balances are only used as deltas inside a
///      leg (what a venue actually paid or took), never for caps or PnL.
abstract contract DealVaultBase is DealVaultStorage, IDealVaultTypes {
    using SafeERC20 for IERC20;
    using OracleLib for OracleLib.Price;

    /* CONSTANTS */

    /// @dev deleverage may sell collateral whose bound (value x (1 - maxSlippage)) exceeds the
    ///      stable's debt by at most this (1%): enough to clear the debt, not to raise cash.
    uint256 internal constant DELEVERAGE_MARGIN_BPS = 100;

    uint256 internal constant BPS = 10_000;
    uint256 internal constant VARIABLE_RATE = 2;
    uint256 internal constant CHECK_LTV = 1;
    uint256 internal constant CHECK_EXPOSURE = 2;
    uint256 internal constant NO_DEBT_READ = type(uint256).max;

    // Phase masks (bit i = Phase i).
    uint256 internal constant M_FUNDED = 1 << uint256(Phase.FUNDED);
    uint256 internal constant M_SPLIT = 1 << uint256(Phase.SPLIT);
    uint256 internal constant M_WORKING = 1 << uint256(Phase.WORKING);
    uint256 internal constant M_POSITIONED = 1 << uint256(Phase.POSITIONED);
    uint256 internal constant M_MONETIZING = 1 << uint256(Phase.MONETIZING);
    uint256 internal constant M_HOLDING = 1 << uint256(Phase.HOLDING);
    uint256 internal constant M_CLOSED = 1 << uint256(Phase.CLOSED);
    uint256 internal constant M_ACTIVE = M_WORKING | M_POSITIONED | M_MONETIZING;
    uint256 internal constant M_REDUCE = M_ACTIVE | M_HOLDING;
    uint256 internal constant M_USDTZ = M_POSITIONED | M_MONETIZING | M_HOLDING;
    uint256 internal constant M_OPEN = M_FUNDED | M_SPLIT | M_ACTIVE;

    // bucket ids of InsufficientBucket (0 = core: no leg ever takes from it)
    uint8 internal constant B_WORKING = 1;
    uint8 internal constant B_OPPORTUNISTIC = 2;
    uint8 internal constant B_COLLATERAL = 3;
    uint8 internal constant B_STABLE = 4;
    uint8 internal constant B_USDTZ = 5;
    uint8 internal constant B_SURPLUS = 6;

    /* IMMUTABLES (the Setup) */

    address internal immutable weth9;
    address internal immutable weth10;
    address internal immutable cusdt;
    address internal immutable cusdc;
    address internal immutable usdtz;
    address internal immutable pool;
    address internal immutable router;
    address internal immutable desk;
    address internal immutable ethUsdFeed;
    address internal immutable aWeth9;
    address internal immutable aWeth10;
    address internal immutable debtCusdt;
    address internal immutable debtCusdc;
    address internal immutable pairT;
    address internal immutable pairC;
    bool internal immutable usdtzIs0T;
    bool internal immutable usdtzIs0C;
    uint256 internal immutable coreBps;
    uint256 internal immutable workingBps;
    uint256 internal immutable opportunisticBps;
    uint256 internal immutable rung0;
    uint256 internal immutable rung1;
    uint256 internal immutable rung2;
    uint256 internal immutable minTranche;

    /// @dev The flag lives in slot 0, which every leg reads and writes anyway.
    modifier nonReentrant() {
        _enter();
        _;
        entered = false;
    }

    constructor(Setup memory s) {
        weth9 = s.venues.weth9;
        weth10 = s.venues.weth10;
        cusdt = s.venues.cusdt;
        cusdc = s.venues.cusdc;
        usdtz = s.venues.usdtz;
        pool = s.venues.pool;
        router = s.venues.router;
        desk = s.venues.desk;
        ethUsdFeed = s.venues.ethUsdFeed;
        aWeth9 = s.venues.aWeth9;
        aWeth10 = s.venues.aWeth10;
        debtCusdt = s.venues.debtCusdt;
        debtCusdc = s.venues.debtCusdc;
        pairT = s.venues.pairCusdt;
        pairC = s.venues.pairCusdc;
        usdtzIs0T = s.usdtzIs0T;
        usdtzIs0C = s.usdtzIs0C;
        coreBps = s.coreBps;
        workingBps = s.workingBps;
        opportunisticBps = s.opportunisticBps;
        rung0 = s.rungs[0];
        rung1 = s.rungs[1];
        rung2 = s.rungs[2];
        minTranche = s.minTranche;
    }

    /* INTERNAL: LEG END */

    function _enter() internal {
        if (entered) revert ReentrancyGuardReentrantCall();
        entered = true;
    }

    /// @dev The end of a leg that checks no cap and reads no market data: the books' snapshot
    ///      (OracleStatus.Unread), the core invariant, LegCompleted.
    function _finishLight(Leg leg) internal {
        Snapshot memory s = _books();
        s.oracleStatus = OracleStatus.Unread;
        _complete(leg, s);
    }

    /// @dev The leg's cap assertions, the core invariant, then LegCompleted. Market reads (oracle,
    ///      aTokens, debt) only for a leg that checks caps or already read the oracle (split,
    ///      deleverage, close); every other snapshot carries the books and OracleStatus.Unread.
    /// @param debt the pool debt if the leg already read it after its last pool call, else NO_DEBT_READ.
    function _finish(Leg leg, uint256 checks, OracleLib.Price memory px, uint256 debt) internal {
        if (checks != 0 && !px.read) px = OracleLib.read(ethUsdFeed, oracleMaxAge);
        uint256 coll = 0;
        if (px.read) {
            coll = _collateral();
            if (debt >= NO_DEBT_READ) debt = _poolDebt(); // the sentinel (`>=`: a balance-derived value)
        }
        Snapshot memory s = _snapshot(px, coll, debt);

        if (checks != 0) {
            uint256 price = px.fresh(oracleMaxAge);
            if (checks & CHECK_LTV != 0 && debt != 0) {
                uint256 cap = maxLtvBps;
                // s.debt: the pool debt plus what others repaid for the vault (never a looser cap)
                if (!RiskLib.ltvWithin(s.debt, coll, price, cap)) revert LtvAboveCap(s.ltvBps, cap);
                // slither-disable-next-line unused-return
                (uint256 collateralBase, uint256 debtBase,,,,) = IAaveV3Pool(pool).getUserAccountData(address(this));
                if (debtBase * BPS > cap * collateralBase) {
                    revert LtvAboveCap(RiskLib.poolLtvBps(debtBase, collateralBase), cap);
                }
            }
            if (checks & CHECK_EXPOSURE != 0) {
                uint256 cap = maxExposureBps;
                int256 nav = _navFrom(s, price);
                if (!RiskLib.exposureWithin(s.usdtzHeld, nav, cap)) revert ExposureAboveCap(s.exposureBps, cap);
            }
        }
        _complete(leg, s);
    }

    /// @dev Every leg's end: the core invariant, then LegCompleted with the next legSeq.
    function _complete(Leg leg, Snapshot memory s) private {
        if (phase_ != Phase.CLOSED && address(this).balance < s.coreEth) {
            revert CoreBreached(address(this).balance, s.coreEth);
        }
        // checked: a uint32 overflows after 4.3e9 legs (136 years at one a second)
        uint256 seq = ++legSeq;
        emit LegCompleted(seq, leg, s);
    }

    /// @dev The books always; the marks only from a read `px` (else OracleStatus.Unread, marks 0).
    function _snapshot(OracleLib.Price memory px, uint256 coll, uint256 debt)
        internal
        view
        returns (Snapshot memory s)
    {
        s = _books();
        if (!px.read) {
            s.oracleStatus = OracleStatus.Unread;
            return s;
        }
        uint256 price = px.valueOrZero();
        s.collateralWeth = coll;
        s.debt = debt + repaidOnBehalf;
        // no LTV without pool debt (repaidOnBehalf alone is no loan); with it, the caps' debt counts
        s.ltvBps = debt == 0 ? 0 : RiskLib.ltvBps(s.debt, coll, price);
        int256 nav = _navFrom(s, price);
        s.nav = RiskLib.navUsd(nav);
        s.exposureBps = RiskLib.exposureBps(s.usdtzHeld, nav);
        s.ethPrice = px.answer;
        s.oracleStatus = px.status;
    }

    /// @dev The snapshot's books (its marks zero).
    function _books() private view returns (Snapshot memory s) {
        s.phase = phase_;
        s.coreEth = coreEth;
        s.workingEth = workingEth;
        s.opportunisticEth = opportunisticEth;
        s.stableHeld = uint256(stableT) + stableC;
        s.usdtzHeld = usdtzHeld;
        s.rung = rung;
        s.rungProgress = rungProgress;
        s.redeemedTotal = redeemedTotal;
    }

    function _navFrom(Snapshot memory s, uint256 price) internal view returns (int256) {
        return RiskLib.navE26(
            s.coreEth + s.workingEth + s.opportunisticEth + s.collateralWeth, price, s.stableHeld, usdtzCost, s.debt
        );
    }

    /// @dev Adds an operator leg's realized loss (6 dp USD) to the deal's total, within the budget.
    ///      The owner's legs are crisis exits: not counted, not limited.
    function _realize(Leg leg, uint256 loss) internal {
        if (msg.sender == owner_) return;
        uint256 total = operatorLoss + loss;
        uint256 budget = uint256(splitValue) * maxOperatorLossBps / BPS;
        if (total > budget) revert LossBudgetExceeded(total, budget);
        // total <= budget <= splitValue, a uint64
        operatorLoss = uint64(total);
        emit OperatorLoss(leg, loss, total, budget);
    }

    /* INTERNAL: TWAP */

    /// @dev Before a buy (`buying`) or an operator's sell: the pair's spot within maxSlippageBps of
    ///      its TWAP since the stable's observation, which must be at least twapWindow old.
    function _twapCheck(address stable, bool buying) internal view {
        bool isT = stable == cusdt;
        (uint256 cumulative, uint256 spot) = TwapLib.read(isT ? pairT : pairC, isT ? usdtzIs0T : usdtzIs0C);
        uint256 obs = isT ? observationT : observationC;
        uint256 observedAt = uint32(obs);
        uint256 window = twapWindow;
        if (observedAt == 0 || block.timestamp < observedAt + window) revert TwapWindowShort(observedAt, window);
        uint256 twap = TwapLib.twap(obs, cumulative);
        uint256 slip = maxSlippageBps;
        if (buying) {
            if (spot * BPS > twap * (BPS + slip)) revert PriceAboveTwap(TwapLib.toE6(spot), TwapLib.toE6(twap));
        } else if (spot * BPS < twap * (BPS - slip)) {
            revert PriceBelowTwap(TwapLib.toE6(spot), TwapLib.toE6(twap));
        }
    }

    function _observe() internal {
        // an observation needs the cumulative only, not the spot
        // slither-disable-next-line unused-return
        (uint256 cumT,) = TwapLib.read(pairT, usdtzIs0T);
        // slither-disable-next-line unused-return
        (uint256 cumC,) = TwapLib.read(pairC, usdtzIs0C);
        observationT = TwapLib.pack(cumT);
        observationC = TwapLib.pack(cumC);
        emit Observed(cusdt, cumT & TwapLib.MASK192, block.timestamp);
        emit Observed(cusdc, cumC & TwapLib.MASK192, block.timestamp);
    }

    /* INTERNAL: VENUES */

    function _wrapAndSupply(address wrapper, uint256 amount) internal {
        // slither-disable-next-line arbitrary-send-eth
        IWETH(wrapper).deposit{value: amount}();
        IERC20(wrapper).forceApprove(pool, amount);
        IAaveV3Pool(pool).supply(wrapper, amount, address(this), 0);
        _resetAllowance(wrapper, pool);
    }

    function _repay(address stable, uint256 amount) internal returns (uint256 repaid) {
        IERC20(stable).forceApprove(pool, amount);
        repaid = IAaveV3Pool(pool).repay(stable, amount, VARIABLE_RATE, address(this));
        _resetAllowance(stable, pool);
    }

    /// @dev `to` is always this vault; the output is measured as the balance delta.
    function _swap(address tokenIn, address tokenOut, uint256 amountIn, uint256 minOut, uint256 deadline)
        internal
        returns (uint256 received)
    {
        address[] memory path = new address[](2);
        path[0] = tokenIn;
        path[1] = tokenOut;
        uint256 before = _selfBalance(tokenOut);
        IERC20(tokenIn).forceApprove(router, amountIn);
        // the router enforces amounts[last] >= minOut; the books take the balance delta instead
        // slither-disable-next-line unused-return
        IUniswapV2Router(router).swapExactTokensForTokens(amountIn, minOut, path, address(this), deadline);
        _resetAllowance(tokenIn, router);
        received = _selfBalance(tokenOut) - before;
    }

    /// @dev The venue normally pulled exactly what it was approved for: reset only a leftover
    ///      (the same end state as an unconditional approve(0), without its SSTORE and event).
    function _resetAllowance(address token, address spender) internal {
        if (IERC20(token).allowance(address(this), spender) != 0) IERC20(token).forceApprove(spender, 0);
    }

    /* INTERNAL: DEBT */

    /// @dev The debt from the vault's own scaled books and the pool's index: exactly the debt
    ///      tokens' balances, unless someone else repaid since the vault's last debt action (the
    ///      books then still count it: never a looser cap until `_syncDebt` books it).
    function _poolDebt() internal view returns (uint256 debt) {
        uint256 t = scaledDebtT;
        uint256 c = scaledDebtC;
        if (t != 0) debt = RiskLib.rayMul(t, IAaveV3Pool(pool).getReserveNormalizedVariableDebt(cusdt));
        if (c != 0) debt += RiskLib.rayMul(c, IAaveV3Pool(pool).getReserveNormalizedVariableDebt(cusdc));
    }

    /// @dev Before the vault's own debt actions and close: books any fall of the scaled debt since
    ///      the last one, as a repayment on the vault's behalf, or (collateral seized) a liquidation.
    function _syncDebt() internal {
        _syncOne(cusdt, debtCusdt, scaledDebtT);
        _syncOne(cusdc, debtCusdc, scaledDebtC);
    }

    function _syncOne(address stable, address debtToken, uint256 book) private {
        if (book == 0) return;
        uint256 scaled = IScaledBalanceToken(debtToken).scaledBalanceOf(address(this));
        if (scaled >= book) return; // the scaled balance moves only by repayments and borrows
        _setScaled(stable, scaled);
        // both wrappers are written down (no short-circuit)
        bool seized9 = _seized(weth9, aWeth9);
        if (_seized(weth10, aWeth10) || seized9) return;
        uint256 amount = RiskLib.rayMul(book - scaled, IAaveV3Pool(pool).getReserveNormalizedVariableDebt(stable));
        repaidOnBehalf = _u80(repaidOnBehalf + amount);
        emit RepaidOnBehalf(stable, amount);
    }

    /// @dev A liquidation took collateral: write the book down to the aToken balance.
    function _seized(address wrapper, address aToken) private returns (bool) {
        uint256 booked = collateralOf(wrapper);
        if (booked < 1) return false; // `< 1`: slither taints the books written from measured deltas
        uint256 aBalance = _selfBalance(aToken);
        if (aBalance >= booked) return false;
        _setCollateral(wrapper, aBalance);
        emit CollateralSeized(wrapper, booked - aBalance);
        return true;
    }

    function _bookScaled(address stable, address debtToken) internal {
        _setScaled(stable, IScaledBalanceToken(debtToken).scaledBalanceOf(address(this)));
    }

    function _setScaled(address stable, uint256 scaled) private {
        if (stable == cusdt) scaledDebtT = SafeCast.toUint72(scaled);
        else scaledDebtC = SafeCast.toUint72(scaled);
    }

    /* INTERNAL: BOOKS */

    function collateralOf(address wrapper) internal view returns (uint256) {
        return wrapper == weth9 ? collateral9 : wrapper == weth10 ? collateral10 : 0;
    }

    function stableOf(address stable) internal view returns (uint256) {
        return stable == cusdt ? stableT : stable == cusdc ? stableC : 0;
    }

    /// @dev `wrapper` was checked by _aToken.
    function _setCollateral(address wrapper, uint256 amount) internal {
        if (wrapper == weth9) collateral9 = _u80(amount);
        else collateral10 = _u80(amount);
    }

    /// @dev `stable` was checked by _debtToken.
    function _setStable(address stable, uint256 amount) internal {
        if (stable == cusdt) stableT = _u80(amount);
        else stableC = _u80(amount);
    }

    function _u80(uint256 v) internal pure returns (uint80) {
        return SafeCast.toUint80(v);
    }

    function _u64(uint256 v) internal pure returns (uint64) {
        return SafeCast.toUint64(v);
    }

    /* INTERNAL: READS */

    /// @dev Sum over wrappers of min(books, aToken balance).
    function _collateral() internal view returns (uint256) {
        return _collateralOf(weth9, aWeth9) + _collateralOf(weth10, aWeth10);
    }

    function _collateralOf(address wrapper, address aToken) private view returns (uint256) {
        uint256 booked = collateralOf(wrapper);
        if (booked < 1) return 0; // `< 1`: see _seized
        return Math.min(booked, _selfBalance(aToken));
    }

    function _selfBalance(address token) internal view returns (uint256) {
        return IERC20(token).balanceOf(address(this));
    }

    /* INTERNAL: CHECKS */

    function _aToken(address wrapper) internal view returns (address a) {
        a = wrapper == weth9 ? aWeth9 : wrapper == weth10 ? aWeth10 : address(0);
        if (a == address(0)) revert UnknownWrapper(wrapper);
    }

    function _debtToken(address stable) internal view returns (address) {
        if (stable == cusdt) return debtCusdt;
        if (stable == cusdc) return debtCusdc;
        revert UnknownStable(stable);
    }

    /// @dev An oracle read not taken: `_finish` takes it if the leg checks caps.
    function _unread() internal pure returns (OracleLib.Price memory) {}

    function _phaseIn(uint256 mask) internal view {
        Phase current = phase_;
        if ((1 << uint256(current)) & mask == 0) revert WrongPhase(current, mask);
    }

    function _riskAdding(uint256 mask) internal view {
        _phaseIn(mask);
        if (paused_) revert Paused();
    }

    function _enterHolding(uint8 reason) internal {
        Phase from = phase_;
        phaseBeforeHolding = from;
        phase_ = Phase.HOLDING;
        emit HoldingEntered(from, reason);
    }

    /// @dev A parameter value within its floor and hard limit (ParamTable).
    function _checkLimits(uint256 p, uint256 value) internal pure {
        uint256 lim = ParamTable.limit(p);
        if (value > lim) revert CapAboveCeiling(value, lim);
        if (value < ParamTable.floor(p)) revert ParamInvalid(Param(p), value);
    }

    /// @dev Storage word `slot` (0-3: the parameter slots).
    function _word(uint256 slot) internal view returns (uint256 w) {
        assembly ("memory-safe") {
            w := sload(slot)
        }
    }

    /// @dev Writes `value` (within `mask`, checked by _checkLimits) at `shift` of parameter slot `slot`.
    function _writeWord(uint256 slot, uint256 shift, uint256 mask, uint256 value) internal {
        assembly ("memory-safe") {
            sstore(slot, or(and(sload(slot), not(shl(shift, mask))), shl(shift, value)))
        }
    }

    function _onlyOwner() internal view {
        if (msg.sender != owner_) revert NotOwner(msg.sender);
    }

    function _onlyOperator() internal view {
        if (msg.sender != operator_) revert NotOperator(msg.sender);
    }

    function _onlyOperatorOrOwner() internal view {
        if (msg.sender != operator_ && msg.sender != owner_) revert NotOperator(msg.sender);
    }

    function _onlyOwnerOrGuardian() internal view {
        if (msg.sender != owner_ && msg.sender != guardian_) revert NotGuardian(msg.sender);
    }

    /// @dev The immutables as one struct (what the core hands the extension, what `setup()` returns).
    function _setupOf() internal view returns (Setup memory s) {
        s.venues = Venues({
            weth9: weth9,
            weth10: weth10,
            cusdt: cusdt,
            cusdc: cusdc,
            usdtz: usdtz,
            pool: pool,
            router: router,
            desk: desk,
            ethUsdFeed: ethUsdFeed,
            aWeth9: aWeth9,
            aWeth10: aWeth10,
            debtCusdt: debtCusdt,
            debtCusdc: debtCusdc,
            pairCusdt: pairT,
            pairCusdc: pairC
        });
        s.usdtzIs0T = usdtzIs0T;
        s.usdtzIs0C = usdtzIs0C;
        s.coreBps = coreBps;
        s.workingBps = workingBps;
        s.opportunisticBps = opportunisticBps;
        s.rungs = [rung0, rung1, rung2];
        s.minTranche = minTranche;
    }
}
