// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

import {IDealVault} from "./interfaces/IDealVault.sol";
import {IAaveV3Pool} from "./interfaces/IAaveV3Pool.sol";
import {IUniswapV2Router} from "./interfaces/IUniswapV2Router.sol";
import {IWETH} from "./interfaces/IWETH.sol";
import {IAggregatorV3} from "./interfaces/IAggregatorV3.sol";
import {IRedemptionDesk} from "./interfaces/IRedemptionDesk.sol";
import {OracleLib} from "./libraries/OracleLib.sol";
import {RiskLib} from "./libraries/RiskLib.sol";

/// @title DealVault
/// @notice See IDealVault for the roles, the leg x phase table, the caps and the units.
/// @dev Every leg runs in the same order: checks (role, phase, pause, amounts against the books),
///      state (books), event, external calls (venues), then `_finish`: for a leg that checks caps,
///      one oracle read, the aToken and debt-token reads and the pool cross-check, then its cap
///      assertions; for every leg the core invariant and `LegCompleted`. Caps are post-conditions,
///      so they are asserted after the external calls; a violation reverts the whole leg. A leg
///      that checks no cap reads no market data (see IDealVault.Snapshot).
///      Assumptions: the pool, router, desk and tokens are the configured contracts; they may fail
///      or revert, or call back (every entry point is nonReentrant), but Aave pulls at most the
///      approved amount and the router pays `to`. Raw balances are only used as deltas inside a
///      leg (what a venue actually paid or took), never for caps or PnL.
contract DealVault is IDealVault {
    using SafeERC20 for IERC20;
    using OracleLib for OracleLib.Price;

    /* CONSTANTS */

    /// @notice Hard ceiling on maxLtvBps (30%).
    uint256 public constant MAX_LTV_BPS = 3000;
    /// @notice Hard ceiling on maxExposureBps (25% of NAV).
    uint256 public constant MAX_EXPOSURE_BPS = 2500;

    uint256 private constant BPS = 10_000;
    uint256 private constant VARIABLE_RATE = 2;
    uint256 private constant CHECK_LTV = 1;
    uint256 private constant CHECK_EXPOSURE = 2;
    uint256 private constant NO_DEBT_READ = type(uint256).max;

    // Phase masks (bit i = Phase i).
    uint256 private constant M_FUNDED = 1 << uint256(Phase.FUNDED);
    uint256 private constant M_SPLIT = 1 << uint256(Phase.SPLIT);
    uint256 private constant M_WORKING = 1 << uint256(Phase.WORKING);
    uint256 private constant M_POSITIONED = 1 << uint256(Phase.POSITIONED);
    uint256 private constant M_MONETIZING = 1 << uint256(Phase.MONETIZING);
    uint256 private constant M_HOLDING = 1 << uint256(Phase.HOLDING);
    uint256 private constant M_ACTIVE = M_WORKING | M_POSITIONED | M_MONETIZING;
    uint256 private constant M_REDUCE = M_ACTIVE | M_HOLDING;
    uint256 private constant M_USDTZ = M_POSITIONED | M_MONETIZING | M_HOLDING;
    uint256 private constant M_OPEN = M_FUNDED | M_SPLIT | M_ACTIVE;

    // bucket ids of InsufficientBucket (0 = core: no leg ever takes from it)
    uint8 private constant B_WORKING = 1;
    uint8 private constant B_OPPORTUNISTIC = 2;
    uint8 private constant B_COLLATERAL = 3;
    uint8 private constant B_STABLE = 4;
    uint8 private constant B_USDTZ = 5;
    uint8 private constant B_SURPLUS = 6;

    /* IMMUTABLES */

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
    /// @notice address(0) when the pool has no WETH10 reserve (WETH10 is then unknown as wrapper).
    address internal immutable aWeth10;
    address internal immutable debtCusdt;
    address internal immutable debtCusdc;
    uint256 internal immutable coreBps;
    uint256 internal immutable workingBps;
    uint256 private immutable _rung0;
    uint256 private immutable _rung1;
    uint256 private immutable _rung2;

    /* ROLES AND STATE (packed) */

    /// @dev Slot 0 is read and written by every leg anyway (phase, legSeq), so the reentrancy
    ///      guard lives there too: no extra cold slot per leg (OpenZeppelin's guard has its own).
    address public owner;
    Phase public phase;
    Phase internal phaseBeforeHolding;
    bool public paused;
    uint8 internal rung;
    /// @dev bit 0: cUSDT may be owed, bit 1: cUSDC may be owed. A borrow sets the bit, a repay that
    ///      leaves a zero debt-token balance clears it. Debt exists only through the vault's own
    ///      borrow (it never delegates credit), so a clear bit means a zero debt read can be skipped
    ///      (two cold proxy calls per leg).
    uint8 internal debtMask;
    bool private entered;
    uint32 internal legSeq;
    /// @dev here, not beside the guardian: buy reads slot 0 anyway (one cold slot less per buy)
    uint16 public minDiscountBps;

    address public operator;
    uint16 public maxLtvBps;
    uint16 public maxExposureBps;
    uint16 public maxDeskFeeBps;
    uint16 public maxSlippageBps;
    uint32 public oracleMaxAge;

    address public guardian;

    address public pendingOwner;

    uint256 public sellFloorPrice;
    uint256 public ethFloorPrice;

    /* BOOKS */

    // Four slots, grouped by what a leg reads together: every leg reads the buckets (core check,
    // snapshot), the checked legs the collateral, the USDTz legs the stable and USDTz slots. Each
    // slot also holds a `keep` word set to 1 at deployment, so a book slot is never zero and no
    // leg pays the 20,000-gas zero -> non-zero SSTORE. Widths (every write is a checked downcast,
    // SafeCast, or bounded by one): uint80 holds 1,208,925 ETH or 1.2e18 USD per deal; uint64
    // 1.8e13 USD; uint56 7.2e10 USD of fees; the ladder's progress is below two top rungs, which the
    // constructor keeps under 2**63.
    uint80 internal coreEth;
    uint80 internal workingEth;
    uint80 internal opportunisticEth;
    uint16 private keep1 = 1;
    uint80 internal collateral9;
    uint80 internal collateral10;
    uint80 internal fundedCapital;
    uint16 private keep2 = 1;
    uint80 internal stableT;
    uint80 internal stableC;
    uint80 internal usdtzHeld;
    uint16 private keep3 = 1;
    uint64 internal usdtzCost;
    uint64 internal rungProgress;
    uint64 internal redeemedTotal;
    uint56 internal feesPaid;
    uint8 private keep4 = 1;
    uint256 internal ownerRepaid;
    int256 internal realizedPnlEth;
    int256 internal realizedPnlUsd;
    uint256 internal writtenOffUsdtz;

    /// @notice Reentrancy (OpenZeppelin's error, same selector).
    error ReentrancyGuardReentrantCall();

    modifier nonReentrant() {
        _enter();
        _;
        _exit();
    }

    /* CONSTRUCTOR */

    constructor(Config memory cfg) {
        _nonZero(cfg.weth9, "weth9");
        _nonZero(cfg.weth10, "weth10");
        _nonZero(cfg.cusdt, "cusdt");
        _nonZero(cfg.cusdc, "cusdc");
        _nonZero(cfg.usdtz, "usdtz");
        _nonZero(cfg.pool, "pool");
        _nonZero(cfg.router, "router");
        _nonZero(cfg.desk, "desk");
        _nonZero(cfg.ethUsdFeed, "ethUsdFeed");
        _nonZero(cfg.owner, "owner");
        _nonZero(cfg.operator, "operator");
        _nonZero(cfg.guardian, "guardian");
        if (cfg.owner == cfg.operator || cfg.owner == cfg.guardian) revert RolesNotDistinct(cfg.owner);
        if (cfg.operator == cfg.guardian) revert RolesNotDistinct(cfg.operator);

        _decimals(cfg.weth9, 18);
        _decimals(cfg.weth10, 18);
        _decimals(cfg.cusdt, 6);
        _decimals(cfg.cusdc, 6);
        _decimals(cfg.usdtz, 6);
        uint8 feedDecimals = IAggregatorV3(cfg.ethUsdFeed).decimals();
        if (feedDecimals != 8) revert WrongDecimals(cfg.ethUsdFeed, 8, feedDecimals);

        address routerWeth = IUniswapV2Router(cfg.router).WETH();
        if (routerWeth != cfg.weth9) revert RouterWethMismatch(routerWeth);

        RiskParams memory r = cfg.risk;
        if (uint256(r.coreBps) + r.workingBps + r.opportunisticBps != BPS) {
            revert BucketSplitInvalid(uint256(r.coreBps) + r.workingBps + r.opportunisticBps);
        }
        _ceiling(r.maxLtvBps, MAX_LTV_BPS);
        _ceiling(r.maxExposureBps, MAX_EXPOSURE_BPS);
        _ceiling(r.maxDeskFeeBps, BPS);
        _ceiling(r.minDiscountBps, BPS - 1);
        _ceiling(r.maxSlippageBps, BPS - 1);
        _ceiling(r.sellFloorPrice, 1e6);
        if (r.rungs[0] == 0) revert RungsInvalid(0);
        if (r.rungs[1] <= r.rungs[0]) revert RungsInvalid(1);
        // < 2**63: the ladder's progress (below two top rungs) fits its uint64 book
        if (r.rungs[2] <= r.rungs[1] || r.rungs[2] >= 1 << 63) revert RungsInvalid(2);

        IAaveV3Pool p = IAaveV3Pool(cfg.pool);
        address a9 = p.getReserveData(cfg.weth9).aTokenAddress;
        address dT = p.getReserveData(cfg.cusdt).variableDebtTokenAddress;
        address dC = p.getReserveData(cfg.cusdc).variableDebtTokenAddress;
        _nonZero(a9, "weth9 reserve");
        _nonZero(dT, "cusdt reserve");
        _nonZero(dC, "cusdc reserve");

        weth9 = cfg.weth9;
        weth10 = cfg.weth10;
        cusdt = cfg.cusdt;
        cusdc = cfg.cusdc;
        usdtz = cfg.usdtz;
        pool = cfg.pool;
        router = cfg.router;
        desk = cfg.desk;
        ethUsdFeed = cfg.ethUsdFeed;
        aWeth9 = a9;
        aWeth10 = p.getReserveData(cfg.weth10).aTokenAddress;
        debtCusdt = dT;
        debtCusdc = dC;
        coreBps = r.coreBps;
        workingBps = r.workingBps;
        _rung0 = r.rungs[0];
        _rung1 = r.rungs[1];
        _rung2 = r.rungs[2];

        owner = cfg.owner;
        operator = cfg.operator;
        guardian = cfg.guardian;
        maxLtvBps = r.maxLtvBps;
        maxExposureBps = r.maxExposureBps;
        maxDeskFeeBps = r.maxDeskFeeBps;
        minDiscountBps = r.minDiscountBps;
        maxSlippageBps = r.maxSlippageBps;
        oracleMaxAge = r.oracleMaxAge;
        sellFloorPrice = r.sellFloorPrice;
        ethFloorPrice = r.ethFloorPrice;
        emit OwnershipTransferred(address(0), cfg.owner);
        emit OperatorSet(address(0), cfg.operator);
        emit GuardianSet(address(0), cfg.guardian);
    }

    /// @notice Accepts ETH only from the wrappers' unwraps (cheap: WETH9 sends with a 2300 stipend).
    ///         ETH forced in by selfdestruct is simply never booked.
    receive() external payable {
        if (msg.sender != weth9 && msg.sender != weth10) revert EthNotAccepted(msg.sender);
    }

    /* OWNER */

    function fund() external payable nonReentrant {
        _onlyOwner();
        _phaseIn(M_FUNDED);
        if (msg.value == 0) revert ZeroAmount();
        uint256 funded = fundedCapital + msg.value;
        fundedCapital = _u80(funded);
        emit Funded(msg.sender, msg.value, funded);
        _finish(Leg.Fund, 0, _noPrice(), NO_DEBT_READ);
    }

    function ownerRepay(address stable, uint256 amount) external nonReentrant {
        _onlyOwner();
        _phaseIn(M_REDUCE);
        address debtToken = _debtToken(stable);
        uint256 debt = _selfBalance(debtToken);
        if (amount > debt) amount = debt;
        if (amount < 1) revert ZeroAmount(); // `< 1`, not `== 0`: a balance-derived value (slither incorrect-equality)

        IERC20(stable).safeTransferFrom(msg.sender, address(this), amount);
        uint256 repaid = _repay(stable, amount);
        // repaid <= amount (the pool takes at most what it was approved for)
        ownerRepaid += repaid;
        if (repaid < amount) IERC20(stable).safeTransfer(msg.sender, amount - repaid);
        _clearDebtBit(stable, debtToken);
        emit Repaid(stable, repaid, msg.sender);
        _finish(Leg.OwnerRepay, 0, _noPrice(), NO_DEBT_READ);
    }

    function resume() external nonReentrant {
        _onlyOwner();
        _phaseIn(M_HOLDING);
        Phase to = phaseBeforeHolding;
        phase = to;
        emit Resumed(to);
        _finish(Leg.Resume, 0, _noPrice(), NO_DEBT_READ);
    }

    function pause() external {
        _onlyOwnerOrGuardian();
        paused = true;
        emit PauseChanged(true, msg.sender);
    }

    function unpause() external {
        _onlyOwner();
        paused = false;
        emit PauseChanged(false, msg.sender);
    }

    function hold() external nonReentrant {
        _onlyOwnerOrGuardian();
        _phaseIn(M_OPEN);
        _enterHolding(msg.sender == owner ? 1 : 2);
        _finish(Leg.Hold, 0, _noPrice(), NO_DEBT_READ);
    }

    function withdraw(address token, uint256 amount) external nonReentrant {
        _onlyOwner();
        if (phase != Phase.CLOSED) {
            uint256 available = _surplus(token);
            if (amount > available) revert InsufficientBucket(B_SURPLUS, available, amount);
        }
        emit Withdrawn(token, amount);
        if (token == address(0)) {
            (bool ok,) = msg.sender.call{value: amount}("");
            if (!ok) revert EthTransferFailed();
        } else {
            IERC20(token).safeTransfer(msg.sender, amount);
        }
    }

    function setMaxLtvBps(uint16 value) external {
        _tighten(Param.MaxLtvBps, maxLtvBps, value, false);
        maxLtvBps = value;
    }

    function setMaxExposureBps(uint16 value) external {
        _tighten(Param.MaxExposureBps, maxExposureBps, value, false);
        maxExposureBps = value;
    }

    function setMaxDeskFeeBps(uint16 value) external {
        _tighten(Param.MaxDeskFeeBps, maxDeskFeeBps, value, false);
        maxDeskFeeBps = value;
    }

    function setOracleMaxAge(uint32 value) external {
        _tighten(Param.OracleMaxAge, oracleMaxAge, value, false);
        oracleMaxAge = value;
    }

    function setMinDiscountBps(uint16 value) external {
        _tighten(Param.MinDiscountBps, minDiscountBps, value, true);
        _ceiling(value, BPS - 1);
        minDiscountBps = value;
    }

    function setMaxSlippageBps(uint16 value) external {
        _tighten(Param.MaxSlippageBps, maxSlippageBps, value, false);
        maxSlippageBps = value;
    }

    function setSellFloorPrice(uint256 value) external {
        _tighten(Param.SellFloorPrice, sellFloorPrice, value, true);
        _ceiling(value, 1e6);
        sellFloorPrice = value;
    }

    function setEthFloorPrice(uint256 value) external {
        _tighten(Param.EthFloorPrice, ethFloorPrice, value, true);
        ethFloorPrice = value;
    }

    function setOperator(address newOperator) external {
        _onlyOwner();
        _newRole(newOperator, guardian);
        emit OperatorSet(operator, newOperator);
        operator = newOperator;
    }

    function setGuardian(address newGuardian) external {
        _onlyOwner();
        _newRole(newGuardian, operator);
        emit GuardianSet(guardian, newGuardian);
        guardian = newGuardian;
    }

    function transferOwnership(address newOwner) external {
        _onlyOwner();
        pendingOwner = newOwner;
        emit OwnershipTransferStarted(msg.sender, newOwner);
    }

    function acceptOwnership() external {
        if (msg.sender != pendingOwner) revert NotPendingOwner(msg.sender);
        if (msg.sender == operator || msg.sender == guardian) revert RolesNotDistinct(msg.sender);
        emit OwnershipTransferred(owner, msg.sender);
        owner = msg.sender;
        pendingOwner = address(0);
    }

    function renounceOwnership() external {
        _onlyOwner();
        emit OwnershipTransferred(msg.sender, address(0));
        owner = address(0);
        pendingOwner = address(0);
    }

    function renounceOperator() external {
        if (msg.sender != operator) revert NotOperator(msg.sender);
        emit OperatorSet(msg.sender, address(0));
        operator = address(0);
    }

    function renounceGuardian() external {
        if (msg.sender != guardian) revert NotGuardian(msg.sender);
        emit GuardianSet(msg.sender, address(0));
        guardian = address(0);
    }

    /* LEGS */

    function split() external nonReentrant {
        _onlyOperatorOrOwner();
        _phaseIn(M_FUNDED);
        uint256 funded = fundedCapital;
        if (funded == 0) revert ZeroAmount();

        uint256 core = funded * coreBps / BPS;
        uint256 working = funded * workingBps / BPS;
        // opportunistic takes the rounding remainder so the three sum to the funded capital exactly
        uint256 opportunistic = funded - core - working;
        // each <= funded, a uint80
        coreEth = uint80(core);
        workingEth = uint80(working);
        opportunisticEth = uint80(opportunistic);
        phase = Phase.SPLIT;
        emit Split(core, working, opportunistic);
        _finish(Leg.Split, 0, _noPrice(), NO_DEBT_READ);
    }

    function supply(address wrapper, uint256 amount) external nonReentrant {
        _onlyOperator();
        _riskAdding(M_SPLIT | M_ACTIVE);
        _aToken(wrapper);
        uint256 available = workingEth;
        if (amount == 0) revert ZeroAmount();
        if (amount > available) revert InsufficientBucket(B_WORKING, available, amount);

        unchecked {
            // amount <= available checked above
            workingEth = uint80(available - amount);
        }
        _setCollateral(wrapper, collateralOf(wrapper) + amount);
        if (phase == Phase.SPLIT) phase = Phase.WORKING;
        emit Supplied(wrapper, amount);

        _wrapAndSupply(wrapper, amount);
        _finish(Leg.Supply, CHECK_LTV | CHECK_EXPOSURE, _noPrice(), NO_DEBT_READ);
    }

    function borrow(address stable, uint256 amount) external nonReentrant {
        _onlyOperator();
        _riskAdding(M_ACTIVE);
        _debtToken(stable);
        if (amount == 0) revert ZeroAmount();

        _setStable(stable, stableOf(stable) + amount);
        debtMask |= stable == cusdt ? 1 : 2;
        emit Borrowed(stable, amount);

        // Assumption: the pool pays exactly `amount` (Aave transfers the underlying as asked;
        // FiatToken has no transfer fee), so the books take `amount` without a balance read.
        IAaveV3Pool(pool).borrow(stable, amount, VARIABLE_RATE, 0, address(this));
        _finish(Leg.Borrow, CHECK_LTV | CHECK_EXPOSURE, _noPrice(), NO_DEBT_READ);
    }

    // slither-disable-next-line reentrancy-no-eth
    function buy(address stable, uint256 amountIn, uint256 minOut, uint256 deadline) external nonReentrant {
        _onlyOperator();
        _riskAdding(M_ACTIVE);
        _debtToken(stable);
        uint256 available = stableOf(stable);
        if (amountIn == 0) revert ZeroAmount();
        if (amountIn > available) revert InsufficientBucket(B_STABLE, available, amountIn);

        uint256 limitE6 = (BPS - minDiscountBps) * 100;
        // No router quote: inside this leg the swap pays exactly what getAmountsOut would quote
        // (same reserves, nothing runs in between), so a quote-based bound could never bind. What
        // binds is the discount limit on what arrived (a pumped pair fails it) and the caller's minOut.
        uint256 received = _swap(stable, usdtz, amountIn, minOut, deadline, _path(stable, usdtz));
        // amountIn > 0, so received 0 fails too
        if (amountIn * 1e6 > limitE6 * received) {
            revert PriceAboveLimit(received > 0 ? Math.ceilDiv(amountIn * 1e6, received) : type(uint256).max, limitE6);
        }

        // amountIn <= available checked above
        _setStable(stable, available - amountIn);
        usdtzHeld = _u80(usdtzHeld + received);
        usdtzCost = _u64(usdtzCost + amountIn);
        if (phase == Phase.WORKING) phase = Phase.POSITIONED;
        emit Bought(stable, amountIn, received, amountIn * 1e6 / received);
        _finish(Leg.Buy, CHECK_LTV | CHECK_EXPOSURE, _noPrice(), NO_DEBT_READ);
    }

    // slither-disable-next-line reentrancy-no-eth
    function redeem(address stable, uint256 amount) external nonReentrant returns (bool ok) {
        _onlyOperatorOrOwner();
        _phaseIn(M_USDTZ);
        _debtToken(stable);
        uint256 held = usdtzHeld;
        if (amount == 0) revert ZeroAmount();
        if (amount > held) revert InsufficientBucket(B_USDTZ, held, amount);
        uint8 k = rung;
        uint256 size = rungSize(k);
        if (amount > size) revert TrancheAboveRung(amount, size);

        // External calls first here: the outcome decides the books. Every call is guarded, so
        // nothing below reverts for a venue failure.
        (bool called, bytes memory reason, uint256 delivered, uint256 received) = _redeemAtDesk(stable, amount);
        ok = called;
        if (delivered > held) delivered = held;

        // books: what actually moved, success or not
        {
            uint256 cost = usdtzCost;
            // costOut <= cost; delivered <= held
            usdtzCost = uint64(cost - RiskLib.costOut(cost, delivered, held));
            usdtzHeld = uint80(held - delivered);
        }
        _setStable(stable, stableOf(stable) + received);
        if (delivered > received) feesPaid = _u56(feesPaid + delivered - received);

        uint256 minimum = Math.ceilDiv(amount * (BPS - maxDeskFeeBps), BPS);
        if (ok && received < minimum) {
            ok = false;
            reason = abi.encodeWithSelector(ShortPayment.selector, received, minimum);
        }
        if (ok) {
            redeemedTotal = _u64(redeemedTotal + delivered);
            uint256 progress = rungProgress + amount;
            if (progress >= size) {
                if (k < 2) rung = k + 1;
                progress = 0;
            }
            // progress < size + size <= 2 * rung2, checked at deployment to fit
            rungProgress = uint64(progress);
            if (phase == Phase.POSITIONED) phase = Phase.MONETIZING;
            emit Redeemed(k, stable, amount, received);
        } else {
            rung = 0;
            rungProgress = 0;
            emit RedemptionFailed(k, amount, reason);
            if (phase != Phase.HOLDING) _enterHolding(0);
        }
        _finish(Leg.Redeem, 0, _noPrice(), NO_DEBT_READ);
    }

    // slither-disable-next-line reentrancy-no-eth
    function sell(address stable, uint256 amountIn, uint256 minOut, uint256 deadline) external nonReentrant {
        _onlyOperatorOrOwner();
        _phaseIn(M_USDTZ);
        _debtToken(stable);
        uint256 held = usdtzHeld;
        if (amountIn == 0) revert ZeroAmount();
        if (amountIn > held) revert InsufficientBucket(B_USDTZ, held, amountIn);
        uint256 floorE6 = sellFloorPrice;

        uint256 cost = RiskLib.costOut(usdtzCost, amountIn, held);
        uint256 received = _swap(usdtz, stable, amountIn, minOut, deadline, _path(usdtz, stable));
        if (received * 1e6 < floorE6 * amountIn) revert PriceBelowFloor(received * 1e6 / amountIn, floorE6);

        // amountIn <= held, cost <= usdtzCost
        usdtzHeld = uint80(held - amountIn);
        usdtzCost = uint64(usdtzCost - cost);
        _setStable(stable, stableOf(stable) + received);
        emit Sold(stable, amountIn, received, received * 1e6 / amountIn);
        _finish(Leg.Sell, 0, _noPrice(), NO_DEBT_READ);
    }

    // slither-disable-next-line reentrancy-no-eth
    function repay(address stable, uint256 amount) external nonReentrant {
        _onlyOperatorOrOwner();
        _phaseIn(M_REDUCE);
        address debtToken = _debtToken(stable);
        uint256 available = stableOf(stable);
        if (amount == type(uint256).max) amount = Math.min(available, _selfBalance(debtToken));
        if (amount < 1) revert ZeroAmount(); // `< 1`: balance-derived (see ownerRepay)
        if (amount > available) revert InsufficientBucket(B_STABLE, available, amount);

        uint256 repaid = _repay(stable, amount);
        // repaid <= amount <= available
        _setStable(stable, available - repaid);
        _clearDebtBit(stable, debtToken);
        emit Repaid(stable, repaid, address(this));
        _finish(Leg.Repay, 0, _noPrice(), NO_DEBT_READ);
    }

    function addCollateral(address wrapper, uint256 amount) external nonReentrant {
        _onlyOperatorOrOwner();
        _phaseIn(M_REDUCE);
        _aToken(wrapper);
        uint256 available = opportunisticEth;
        if (amount == 0) revert ZeroAmount();
        if (amount > available) revert InsufficientBucket(B_OPPORTUNISTIC, available, amount);

        unchecked {
            // amount <= available checked above
            opportunisticEth = uint80(available - amount);
        }
        _setCollateral(wrapper, collateralOf(wrapper) + amount);
        emit CollateralAdded(wrapper, amount);

        _wrapAndSupply(wrapper, amount);
        _finish(Leg.AddCollateral, 0, _noPrice(), NO_DEBT_READ);
    }

    function withdrawCollateral(address wrapper, uint256 amount) external nonReentrant {
        _onlyOperatorOrOwner();
        _aToken(wrapper);
        uint256 debt = _totalDebt();
        bool withDebt = debt != 0;
        if (withDebt) _riskAdding(M_ACTIVE);
        else _phaseIn(M_REDUCE);
        uint256 available = collateralOf(wrapper);
        if (amount == 0) revert ZeroAmount();
        if (amount > available) revert InsufficientBucket(B_COLLATERAL, available, amount);

        unchecked {
            // amount <= available checked above
            _setCollateral(wrapper, available - amount);
        }
        workingEth = _u80(workingEth + amount);
        emit CollateralWithdrawn(wrapper, amount);

        // Aave withdraws exactly `amount` (not type(uint256).max)
        uint256 withdrawn = IAaveV3Pool(pool).withdraw(wrapper, amount, address(this));
        IWETH(wrapper).withdraw(withdrawn);
        // the debt read above still holds: an Aave withdraw of WETH does not move the stable's index
        _finish(Leg.WithdrawCollateral, withDebt ? CHECK_LTV | CHECK_EXPOSURE : 0, _noPrice(), debt);
    }

    function deleverage(address wrapper, address stable, uint256 collateralAmount, uint256 minOut, uint256 deadline)
        external
        nonReentrant
    {
        _onlyOperatorOrOwner();
        _phaseIn(M_REDUCE);
        _aToken(wrapper);
        _debtToken(stable);
        {
            uint256 available = collateralOf(wrapper);
            if (collateralAmount == 0) revert ZeroAmount();
            if (collateralAmount > available) revert InsufficientBucket(B_COLLATERAL, available, collateralAmount);
        }
        OracleLib.Price memory px = OracleLib.read(ethUsdFeed, oracleMaxAge);
        uint256 price = px.status == OracleStatus.Fresh ? uint256(px.answer) : ethFloorPrice;
        // no bound at all (floor unset): revert with the oracle's state
        if (price == 0) price = px.fresh(oracleMaxAge);
        {
            // wei * USD 8 dp / 1e18 -> 8 dp; / 100 -> 6 dp stable units; minus the slippage allowance
            uint256 bound = collateralAmount * price * (BPS - maxSlippageBps) / (1e20 * BPS);
            if (minOut < bound) minOut = bound;
        }
        uint256 collBefore = _collateral(true);
        uint256 debtBefore = _totalDebt();

        // collateralAmount <= collateralOf(wrapper) checked above
        _setCollateral(wrapper, collateralOf(wrapper) - collateralAmount);
        uint256 received = _sellCollateral(wrapper, stable, collateralAmount, minOut, deadline);
        uint256 repaid = _repay(stable, received);
        // repaid <= received (the pool takes at most what it was approved for)
        _setStable(stable, stableOf(stable) + received - repaid);
        emit Deleveraged(wrapper, stable, collateralAmount, received, repaid);

        uint256 debtAfter =
            _ltvNotRaised(collBefore, collBefore > collateralAmount ? collBefore - collateralAmount : 0, debtBefore, price);
        _finish(Leg.Deleverage, 0, px, debtAfter);
    }

    function close() external nonReentrant {
        _onlyOperatorOrOwner();
        _phaseIn(M_SPLIT | M_REDUCE);
        uint256 debt = _totalDebt();
        if (debt != 0) revert DebtOutstanding(debt);

        phase = Phase.CLOSED;
        uint256 credited = _closeCollateral(weth9, aWeth9) + _closeCollateral(weth10, aWeth10);
        workingEth = _u80(workingEth + credited);

        OracleLib.Price memory px = OracleLib.read(ethUsdFeed, oracleMaxAge);
        int256 pnlEth = int256(uint256(coreEth) + workingEth + opportunisticEth) - int256(uint256(fundedCapital));
        uint256 stable = uint256(stableT) + stableC;
        int256 pnlUsd = pnlEth * int256(px.valueOrZero()) / 1e18 + (int256(stable) - int256(ownerRepaid)) * 100;
        uint256 writtenOff = usdtzCost;
        realizedPnlEth = pnlEth;
        realizedPnlUsd = pnlUsd;
        writtenOffUsdtz = writtenOff;
        usdtzCost = 0;
        emit Closed(pnlEth, pnlUsd, stable, writtenOff, px.status);
        // the debt is zero (checked above) and close does not borrow
        _finish(Leg.Close, 0, px, 0);
    }

    /* VIEWS */

    function rungSize(uint256 k) public view returns (uint256) {
        return k == 0 ? _rung0 : k == 1 ? _rung1 : _rung2;
    }

    function riskView() external view returns (RiskView memory v) {
        OracleLib.Price memory px = OracleLib.read(ethUsdFeed, oracleMaxAge);
        Snapshot memory s = _snapshot(px, _collateral(false), _debt(false));
        uint256 price = px.valueOrZero();
        v.phase = s.phase;
        v.phaseBeforeHolding = phaseBeforeHolding;
        v.paused = paused;
        v.coreEth = s.coreEth;
        v.workingEth = s.workingEth;
        v.opportunisticEth = s.opportunisticEth;
        v.collateralWeth = s.collateralWeth;
        v.collateralValue = RiskLib.ethValue(s.collateralWeth, price);
        v.debt = s.debt;
        v.debtValue = s.debt * 100;
        v.ltvBps = s.ltvBps;
        // slither-disable-next-line unused-return
        try IAaveV3Pool(pool).getUserAccountData(address(this)) returns (
            uint256 collateralBase, uint256 debtBase, uint256, uint256, uint256, uint256 healthFactor
        ) {
            v.poolCollateralBase = collateralBase;
            v.poolDebtBase = debtBase;
            v.healthFactor = healthFactor;
        } catch {}
        v.stableHeld = s.stableHeld;
        v.usdtzHeld = s.usdtzHeld;
        v.usdtzCost = usdtzCost;
        v.nav = s.nav;
        v.exposureValue = s.usdtzHeld * 100;
        v.exposureBps = s.exposureBps;
        v.rung = s.rung;
        v.rungProgress = s.rungProgress;
        v.redeemedTotal = s.redeemedTotal;
        v.feesPaid = feesPaid;
        v.realizedPnlEth = realizedPnlEth;
        v.realizedPnlUsd = realizedPnlUsd;
        v.writtenOffUsdtz = writtenOffUsdtz;
        v.ethPrice = px.answer;
        v.priceUpdatedAt = px.updatedAt;
        v.oracleStatus = px.status;
        v.legSeq = legSeq;
        v.fundedCapital = fundedCapital;
        v.ownerRepaid = ownerRepaid;
    }

    /* INTERNAL: LEG END */

    /// @dev The leg's cap assertions, the core invariant, then LegCompleted. Market reads (oracle,
    ///      aTokens, debt tokens) only for a leg that checks caps or already read the oracle
    ///      (deleverage, close); every other snapshot carries the books and OracleStatus.Unread.
    /// @param debt the debt if the leg already read it after its last pool call, else NO_DEBT_READ.
    function _finish(Leg leg, uint256 checks, OracleLib.Price memory px, uint256 debt) internal {
        if (checks != 0 && !px.read) px = OracleLib.read(ethUsdFeed, oracleMaxAge);
        uint256 coll = 0;
        if (px.read) {
            coll = _collateral(true);
            if (debt >= NO_DEBT_READ) debt = _totalDebt(); // the sentinel (`>=`: a balance-derived value)
        }
        Snapshot memory s = _snapshot(px, coll, debt);

        if (checks != 0) {
            uint256 price = px.fresh(oracleMaxAge);
            if (checks & CHECK_LTV != 0 && debt != 0) {
                uint256 cap = maxLtvBps;
                if (!RiskLib.ltvWithin(debt, coll, price, cap)) revert LtvAboveCap(s.ltvBps, cap);
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
        if (phase != Phase.CLOSED && address(this).balance < s.coreEth) {
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
        s.phase = phase;
        s.coreEth = coreEth;
        s.workingEth = workingEth;
        s.opportunisticEth = opportunisticEth;
        s.stableHeld = uint256(stableT) + stableC;
        s.usdtzHeld = usdtzHeld;
        s.rung = rung;
        s.rungProgress = rungProgress;
        s.redeemedTotal = redeemedTotal;
        if (!px.read) {
            s.oracleStatus = OracleStatus.Unread;
            return s;
        }
        uint256 price = px.valueOrZero();
        s.collateralWeth = coll;
        s.debt = debt;
        s.ltvBps = RiskLib.ltvBps(debt, coll, price);
        int256 nav = _navFrom(s, price);
        s.nav = RiskLib.navUsd(nav);
        s.exposureBps = RiskLib.exposureBps(s.usdtzHeld, nav);
        s.ethPrice = px.answer;
        s.oracleStatus = px.status;
    }

    function _navFrom(Snapshot memory s, uint256 price) internal view returns (int256) {
        return RiskLib.navE26(
            s.coreEth + s.workingEth + s.opportunisticEth + s.collateralWeth, price, s.stableHeld, usdtzCost, s.debt
        );
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

    /// @dev After a repay leg: all of `stable`'s debt repaid (a warm read after the pool's repay)
    ///      clears its debtMask bit, so later legs skip its cold debt read; only a borrow sets it
    ///      again. (Deleverage leaves the bit; it only costs the next leg a read.)
    function _clearDebtBit(address stable, address debtToken) internal {
        if (_selfBalance(debtToken) < 1) debtMask &= stable == cusdt ? 2 : 1; // `< 1`: balance-derived
    }

    /// @dev `to` is always this vault; the output is measured as the balance delta.
    function _swap(
        address tokenIn,
        address tokenOut,
        uint256 amountIn,
        uint256 minOut,
        uint256 deadline,
        address[] memory path
    ) internal returns (uint256 received) {
        uint256 before = _selfBalance(tokenOut);
        IERC20(tokenIn).forceApprove(router, amountIn);
        // the router enforces amounts[last] >= minOut; the books take the balance delta instead
        // slither-disable-next-line unused-return
        IUniswapV2Router(router).swapExactTokensForTokens(amountIn, minOut, path, address(this), deadline);
        _resetAllowance(tokenIn, router);
        received = _selfBalance(tokenOut) - before;
    }

    /// @dev approve exact -> desk.redeem -> approve 0, none of which may revert the leg; returns
    ///      the USDTz that left and the `stable` that arrived (balance deltas).
    function _redeemAtDesk(address stable, uint256 amount)
        internal
        returns (bool ok, bytes memory reason, uint256 delivered, uint256 received)
    {
        uint256 zBefore = _selfBalance(usdtz);
        uint256 sBefore = _selfBalance(stable);
        (ok, reason) = _tryApprove(desk, amount);
        bool approved = ok;
        if (ok) (ok, reason) = desk.call(abi.encodeCall(IRedemptionDesk.redeem, (stable, amount)));
        uint256 zAfter = _selfBalance(usdtz);
        uint256 sAfter = _selfBalance(stable);
        delivered = zBefore > zAfter ? zBefore - zAfter : 0;
        received = sAfter > sBefore ? sAfter - sBefore : 0;
        // A desk that took all of `amount` used up the allowance (transferFrom debits it): reset
        // only otherwise (the same end state as an unconditional approve(0), without its call and
        // event). Best effort: a failed reset leaves at most `amount` approved to the desk only, on
        // a token then frozen or paused.
        if (approved && delivered < amount) _tryApprove(desk, 0);
    }

    /// @dev Pool withdraw, rewrap WETH10 into WETH9 (the router's WETH), sell on [WETH9, stable].
    function _sellCollateral(address wrapper, address stable, uint256 amount, uint256 minOut, uint256 deadline)
        internal
        returns (uint256)
    {
        // Aave withdraws exactly `amount` (not type(uint256).max)
        uint256 withdrawn = IAaveV3Pool(pool).withdraw(wrapper, amount, address(this));
        if (wrapper != weth9) {
            IWETH(wrapper).withdraw(withdrawn);
            // slither-disable-next-line arbitrary-send-eth
            IWETH(weth9).deposit{value: withdrawn}();
        }
        return _swap(weth9, stable, withdrawn, minOut, deadline, _path(weth9, stable));
    }

    /// @dev Price-free: debtAfter / collAfter <= debtBefore / collBefore, cross-multiplied.
    function _ltvNotRaised(uint256 collBefore, uint256 collAfter, uint256 debtBefore, uint256 price)
        internal
        view
        returns (uint256 debtAfter)
    {
        debtAfter = _totalDebt();
        if (debtAfter * collBefore > debtBefore * collAfter) {
            revert LtvIncreased(
                RiskLib.ltvBps(debtBefore, collBefore, price), RiskLib.ltvBps(debtAfter, collAfter, price)
            );
        }
    }

    /// @dev The venue normally pulled exactly what it was approved for: reset only a leftover
    ///      (the same end state as an unconditional approve(0), without its SSTORE and event).
    function _resetAllowance(address token, address spender) internal {
        if (IERC20(token).allowance(address(this), spender) != 0) IERC20(token).forceApprove(spender, 0);
    }

    /// @dev USDTz approve that cannot revert (FiatToken reverts when paused or the holder is blacklisted).
    function _tryApprove(address spender, uint256 amount) internal returns (bool ok, bytes memory reason) {
        (ok, reason) = usdtz.call(abi.encodeCall(IERC20.approve, (spender, amount)));
        if (ok && reason.length != 0 && (reason.length < 32 || abi.decode(reason, (uint256)) != 1)) {
            ok = false;
            reason = abi.encodeWithSelector(ApproveFailed.selector, usdtz);
        }
    }

    /// @dev Withdraws all of a wrapper's collateral at close and unwraps it; credits at most the
    ///      booked amount (supply interest and donated aTokens stay as unbooked surplus ETH).
    function _closeCollateral(address wrapper, address aToken) internal returns (uint256 credited) {
        uint256 booked = collateralOf(wrapper);
        if (booked < 1) return 0; // `< 1`: slither taints the books written from measured deltas
        _setCollateral(wrapper, 0);
        if (_selfBalance(aToken) < 1) return 0; // fully liquidated (`< 1`: balance-derived)
        uint256 withdrawn = IAaveV3Pool(pool).withdraw(wrapper, type(uint256).max, address(this));
        IWETH(wrapper).withdraw(withdrawn);
        credited = Math.min(withdrawn, booked);
    }

    /* INTERNAL: BOOKS */

    /// @notice Booked collateral of `wrapper` (WETH9/WETH10), wei.
    function collateralOf(address wrapper) public view returns (uint256) {
        return wrapper == weth9 ? collateral9 : wrapper == weth10 ? collateral10 : 0;
    }

    /// @notice Booked stablecoin (cUSDT/cUSDC), 6 dp.
    function stableOf(address stable) public view returns (uint256) {
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

    function _u56(uint256 v) internal pure returns (uint56) {
        return SafeCast.toUint56(v);
    }

    function _enter() internal {
        if (entered) revert ReentrancyGuardReentrantCall();
        entered = true;
    }

    function _exit() internal {
        entered = false;
    }

    /* INTERNAL: READS */

    /// @dev Sum over wrappers of min(books, aToken balance). `strict` bubbles a failing read.
    function _collateral(bool strict) internal view returns (uint256) {
        return _collateralOf(weth9, aWeth9, strict) + _collateralOf(weth10, aWeth10, strict);
    }

    function _collateralOf(address wrapper, address aToken, bool strict) internal view returns (uint256) {
        uint256 booked = collateralOf(wrapper);
        if (booked < 1) return 0; // `< 1`: see _closeCollateral
        return Math.min(booked, _balance(aToken, strict));
    }

    function _totalDebt() internal view returns (uint256) {
        return _debt(true);
    }

    /// @dev Sum of the variable debt token balances of the stables ever borrowed.
    function _debt(bool strict) internal view returns (uint256 debt) {
        uint8 mask = debtMask;
        if (mask & 1 != 0) debt = _balance(debtCusdt, strict);
        if (mask & 2 != 0) debt += _balance(debtCusdc, strict);
    }

    function _selfBalance(address token) internal view returns (uint256) {
        return IERC20(token).balanceOf(address(this));
    }

    function _balance(address token, bool strict) internal view returns (uint256) {
        if (strict) return _selfBalance(token);
        (bool ok, bytes memory ret) = token.staticcall(abi.encodeCall(IERC20.balanceOf, (address(this))));
        return ok && ret.length >= 32 ? abi.decode(ret, (uint256)) : 0;
    }

    function _surplus(address token) internal view returns (uint256) {
        uint256 booked;
        uint256 balance;
        if (token == address(0)) {
            booked = uint256(coreEth) + workingEth + opportunisticEth;
            balance = address(this).balance;
        } else {
            if (token == aWeth9 || token == aWeth10) return 0; // collateral, never surplus before CLOSED
            booked = token == usdtz ? usdtzHeld : stableOf(token);
            balance = _selfBalance(token);
        }
        return balance > booked ? balance - booked : 0;
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

    function _path(address a, address b) internal pure returns (address[] memory path) {
        path = new address[](2);
        path[0] = a;
        path[1] = b;
    }

    function _noPrice() internal pure returns (OracleLib.Price memory) {}

    function _phaseIn(uint256 mask) internal view {
        Phase current = phase;
        if ((1 << uint256(current)) & mask == 0) revert WrongPhase(current, mask);
    }

    function _riskAdding(uint256 mask) internal view {
        _phaseIn(mask);
        if (paused) revert Paused();
    }

    function _enterHolding(uint8 reason) internal {
        Phase from = phase;
        phaseBeforeHolding = from;
        phase = Phase.HOLDING;
        emit HoldingEntered(from, reason);
    }

    function _tighten(Param param, uint256 current, uint256 proposed, bool up) internal {
        _onlyOwner();
        if (up ? proposed < current : proposed > current) revert NotTighter(current, proposed);
        emit RiskParamSet(param, current, proposed);
    }

    function _newRole(address account, address other) internal view {
        if (account == address(0)) revert ZeroAddress("role");
        if (account == owner || account == other) revert RolesNotDistinct(account);
    }

    function _onlyOwner() internal view {
        if (msg.sender != owner) revert NotOwner(msg.sender);
    }

    function _onlyOperator() internal view {
        if (msg.sender != operator) revert NotOperator(msg.sender);
    }

    function _onlyOperatorOrOwner() internal view {
        if (msg.sender != operator && msg.sender != owner) revert NotOperator(msg.sender);
    }

    function _onlyOwnerOrGuardian() internal view {
        if (msg.sender != owner && msg.sender != guardian) revert NotGuardian(msg.sender);
    }

    function _nonZero(address a, string memory which) internal pure {
        if (a == address(0)) revert ZeroAddress(which);
    }

    function _decimals(address token, uint256 expected) internal view {
        uint8 actual = IERC20Metadata(token).decimals();
        if (actual != expected) revert WrongDecimals(token, expected, actual);
    }

    function _ceiling(uint256 value, uint256 ceiling) internal pure {
        if (value > ceiling) revert CapAboveCeiling(value, ceiling);
    }
}
