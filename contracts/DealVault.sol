// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

import {IDealVaultCore} from "./interfaces/IDealVault.sol";
import {IAaveV3Pool} from "./interfaces/IAaveV3Pool.sol";
import {IUniswapV2Router} from "./interfaces/IUniswapV2Router.sol";
import {IUniswapV2Factory, IUniswapV2Pair} from "./interfaces/IUniswapV2Pair.sol";
import {IWETH} from "./interfaces/IWETH.sol";
import {IAggregatorV3} from "./interfaces/IAggregatorV3.sol";
import {IRedemptionDesk} from "./interfaces/IRedemptionDesk.sol";
import {OracleLib} from "./libraries/OracleLib.sol";
import {RiskLib} from "./libraries/RiskLib.sol";
import {ParamTable} from "./libraries/ParamTable.sol";
import {DealVaultBase} from "./DealVaultBase.sol";
import {DealVaultExtension} from "./DealVaultExtension.sol";

/// @title DealVault
/// @notice The vault's core: the loop's legs (supply, borrow, buy, redeem, repay,
///         withdrawCollateral), run here without indirection. Every other function of IDealVault
///         is served by the extension this constructor creates (DealVaultExtension), whose code the
///         fallback runs by DELEGATECALL on this contract's storage: one address, one ABI
///         (IDealVault), two bytecodes under EIP-170's limit. See IDealVault for the roles, the
///         leg x phase table, the caps, the loss budget and the units; every view is in the lens
///         (DealVaultLens).
/// @dev Trust: the extension's address is an immutable set here to a contract this constructor
///      deployed from known code, so the DELEGATECALL target can never change. The extension shares
///      DealVaultBase (the rules, the books) and DealVaultStorage (the layout) with this contract.
contract DealVault is DealVaultBase, IDealVaultCore {
    using OracleLib for OracleLib.Price;

    /// @dev redeem's venue calls get fixed gas (no call can starve the rest of the leg, and the
    ///      caller cannot starve the desk); their return data is cut at 256 bytes.
    uint256 private constant APPROVE_GAS = 80_000;
    uint256 private constant DESK_GAS = 300_000;
    uint256 private constant AFTER_DESK_GAS = 100_000;
    uint256 private constant REDEEM_GAS = (2 * APPROVE_GAS + DESK_GAS) * 64 / 63 + AFTER_DESK_GAS;

    /// @inheritdoc IDealVaultCore
    address public immutable extension;

    /* CONSTRUCTOR */

    constructor(Config memory cfg) DealVaultBase(_buildSetup(cfg)) {
        _writeParams(cfg.risk);
        owner_ = cfg.owner;
        operator_ = cfg.operator;
        guardian_ = cfg.guardian;
        for (uint256 s; s < 4; ++s) {
            initialWords[s] = _word(s);
        }
        keep1 = 1;
        keep2 = 1;
        keep3 = 1;
        keep4 = 1;
        emit OwnershipTransferred(address(0), cfg.owner);
        emit OperatorSet(address(0), cfg.operator);
        emit GuardianSet(address(0), cfg.guardian);
        extension = address(new DealVaultExtension(_buildSetup(cfg)));
    }

    /// @dev Constructor: the whole Config checked, then the Setup found from it (the aTokens and
    ///      debt tokens from the pool, the USDTz pairs and their token order from the router's factory).
    function _buildSetup(Config memory cfg) private view returns (Setup memory s) {
        _checkConfig(cfg);
        s.venues = _findVenues(cfg);
        s.usdtzIs0T = IUniswapV2Pair(s.venues.pairCusdt).token0() == cfg.usdtz;
        s.usdtzIs0C = IUniswapV2Pair(s.venues.pairCusdc).token0() == cfg.usdtz;
        RiskParams memory r = cfg.risk;
        s.coreBps = r.coreBps;
        s.workingBps = r.workingBps;
        s.opportunisticBps = r.opportunisticBps;
        s.rungs = r.rungs;
        s.minTranche = r.minTranche;
    }

    /// @dev Constructor: non-zero, distinct venues and roles; decimals; the router's WETH; buckets,
    ///      rungs and the tranche minimum.
    function _checkConfig(Config memory cfg) private view {
        address[9] memory venue = [
            cfg.weth9, cfg.weth10, cfg.cusdt, cfg.cusdc, cfg.usdtz, cfg.pool, cfg.router, cfg.desk, cfg.ethUsdFeed
        ];
        string[9] memory names = ["weth9", "weth10", "cusdt", "cusdc", "usdtz", "pool", "router", "desk", "ethUsdFeed"];
        for (uint256 i; i < 9; ++i) {
            _nonZero(venue[i], names[i]);
            for (uint256 j; j < i; ++j) {
                if (venue[i] == venue[j]) revert DuplicateAddress(venue[i]);
            }
        }
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
        if (r.rungs[0] == 0) revert RungsInvalid(0);
        if (r.rungs[1] <= r.rungs[0]) revert RungsInvalid(1);
        // < 2**63: the ladder's progress (below two top rungs) fits its uint64 book
        if (r.rungs[2] <= r.rungs[1] || r.rungs[2] >= 1 << 63) revert RungsInvalid(2);
        if (r.minTranche == 0 || r.minTranche > r.rungs[0]) revert RungsInvalid(3);
    }

    /// @dev Constructor: the aTokens and debt tokens from the pool, the USDTz pairs from the router's factory.
    function _findVenues(Config memory cfg) private view returns (Venues memory v) {
        v.weth9 = cfg.weth9;
        v.weth10 = cfg.weth10;
        v.cusdt = cfg.cusdt;
        v.cusdc = cfg.cusdc;
        v.usdtz = cfg.usdtz;
        v.pool = cfg.pool;
        v.router = cfg.router;
        v.desk = cfg.desk;
        v.ethUsdFeed = cfg.ethUsdFeed;
        IAaveV3Pool aave = IAaveV3Pool(cfg.pool);
        v.aWeth9 = aave.getReserveData(cfg.weth9).aTokenAddress;
        v.aWeth10 = aave.getReserveData(cfg.weth10).aTokenAddress;
        v.debtCusdt = aave.getReserveData(cfg.cusdt).variableDebtTokenAddress;
        v.debtCusdc = aave.getReserveData(cfg.cusdc).variableDebtTokenAddress;
        _nonZero(v.aWeth9, "weth9 reserve");
        _nonZero(v.debtCusdt, "cusdt reserve");
        _nonZero(v.debtCusdc, "cusdc reserve");
        address factory = IUniswapV2Router(cfg.router).factory();
        v.pairCusdt = IUniswapV2Factory(factory).getPair(cfg.cusdt, cfg.usdtz);
        v.pairCusdc = IUniswapV2Factory(factory).getPair(cfg.cusdc, cfg.usdtz);
        if (v.pairCusdt == address(0)) revert PairMissing(cfg.cusdt);
        if (v.pairCusdc == address(0)) revert PairMissing(cfg.cusdc);
    }

    /// @dev Constructor: the eleven parameters, in Param order, through the table setParam uses.
    function _writeParams(RiskParams memory r) private {
        uint256[11] memory value = [
            uint256(r.maxLtvBps),
            r.maxExposureBps,
            r.maxDeskFeeBps,
            r.oracleMaxAge,
            r.minDiscountBps,
            r.maxSlippageBps,
            r.sellFloorPrice,
            r.ethFloorPrice,
            r.maxOperatorLossBps,
            r.twapWindow,
            r.loosenDelay
        ];
        for (uint256 p; p < ParamTable.COUNT; ++p) {
            _checkLimits(p, value[p]);
            (uint256 slot, uint256 shift, uint256 mask) = ParamTable.locate(p);
            _writeWord(slot, shift, mask, value[p]);
        }
    }

    /// @notice Accepts ETH only from the wrappers' unwraps (cheap: WETH9 sends with a 2300 stipend).
    ///         ETH forced in by selfdestruct is simply never booked.
    receive() external payable {
        if (msg.sender != weth9 && msg.sender != weth10) revert EthNotAccepted(msg.sender);
    }

    /// @notice Every IDealVaultExtension function: the extension's code on this storage.
    /// @dev Payable for `fund`; the extension's non-payable functions still refuse value
    ///      (CALLVALUE is this call's). An unknown selector reverts in the extension.
    fallback() external payable {
        address target = extension;
        assembly {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), target, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }

    /* LEGS */

    /// @inheritdoc IDealVaultCore
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
        if (phase_ == Phase.SPLIT) phase_ = Phase.WORKING;
        emit Supplied(wrapper, amount);

        _wrapAndSupply(wrapper, amount);
        _finish(Leg.Supply, CHECK_LTV | CHECK_EXPOSURE, _unread(), NO_DEBT_READ);
    }

    /// @inheritdoc IDealVaultCore
    function borrow(address stable, uint256 amount) external nonReentrant {
        _onlyOperator();
        _riskAdding(M_ACTIVE);
        address debtToken = _debtToken(stable);
        if (amount == 0) revert ZeroAmount();
        _syncDebt();

        uint256 before = _selfBalance(stable);
        IAaveV3Pool(pool).borrow(stable, amount, VARIABLE_RATE, 0, address(this));
        // what arrived: a stablecoin that charges a transfer fee delivers less; the books take only
        // that, and the shortfall is a realized loss (the debt is the full amount)
        uint256 received = _selfBalance(stable) - before;
        _setStable(stable, stableOf(stable) + received);
        _bookScaled(stable, debtToken);
        emit Borrowed(stable, amount, received);
        if (received < amount) _realize(Leg.Borrow, amount - received);
        _finish(Leg.Borrow, CHECK_LTV | CHECK_EXPOSURE, _unread(), NO_DEBT_READ);
    }

    /// @inheritdoc IDealVaultCore
    // slither-disable-next-line reentrancy-no-eth
    function buy(address stable, uint256 amountIn, uint256 minOut, uint256 deadline) external nonReentrant {
        _onlyOperator();
        _riskAdding(M_ACTIVE);
        _debtToken(stable);
        uint256 available = stableOf(stable);
        if (amountIn == 0) revert ZeroAmount();
        if (amountIn > available) revert InsufficientBucket(B_STABLE, available, amountIn);
        // the spot price an attacker can move in this block, against the TWAP it cannot
        _twapCheck(stable, true);

        uint256 limitE6 = (BPS - minDiscountBps) * 100;
        uint256 received = _swap(stable, usdtz, amountIn, minOut, deadline);
        // amountIn > 0, so received 0 fails too
        if (amountIn * 1e6 > limitE6 * received) {
            revert PriceAboveLimit(received > 0 ? Math.ceilDiv(amountIn * 1e6, received) : type(uint256).max, limitE6);
        }

        // amountIn <= available checked above
        _setStable(stable, available - amountIn);
        usdtzHeld = _u80(usdtzHeld + received);
        usdtzCost = _u64(usdtzCost + amountIn);
        if (phase_ == Phase.WORKING) phase_ = Phase.POSITIONED;
        emit Bought(stable, amountIn, received, amountIn * 1e6 / received);
        _finish(Leg.Buy, CHECK_LTV | CHECK_EXPOSURE, _unread(), NO_DEBT_READ);
    }

    /// @inheritdoc IDealVaultCore
    // slither-disable-next-line reentrancy-no-eth
    function redeem(address stable, uint256 amount) external nonReentrant returns (bool ok) {
        _onlyOperatorOrOwner();
        _phaseIn(M_USDTZ);
        _debtToken(stable);
        uint256 held = usdtzHeld;
        if (amount == 0) revert ZeroAmount();
        if (amount > held) revert InsufficientBucket(B_USDTZ, held, amount);
        // a dust tranche (failing on purpose) must not reset the ladder; the last remainder may be small
        if (amount < minTranche && amount != held) revert TrancheBelowMinimum(amount, minTranche);
        uint8 k = rung;
        uint256 size = _rungSize(k);
        if (amount > size) revert TrancheAboveRung(amount, size);

        // External calls first here: the outcome decides the books. Every call is guarded, so
        // nothing below reverts for a venue failure.
        (bool called, bytes memory reason, uint256 delivered, uint256 received) = _redeemAtDesk(stable, amount);
        ok = called;
        if (delivered > held) delivered = held;

        // books: what actually moved, success or not
        uint256 cost = usdtzCost;
        // costOut <= cost; delivered <= held
        uint256 costOut = RiskLib.costOut(cost, delivered, held);
        usdtzCost = uint64(cost - costOut);
        usdtzHeld = uint80(held - delivered);
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
            if (phase_ == Phase.POSITIONED) phase_ = Phase.MONETIZING;
            emit Redeemed(k, stable, amount, received);
        } else {
            rung = 0;
            rungProgress = 0;
            emit RedemptionFailed(k, amount, reason);
            if (phase_ != Phase.HOLDING) _enterHolding(0);
        }
        if (costOut > received) _realize(Leg.Redeem, costOut - received);
        _finishLight(Leg.Redeem);
    }

    /// @inheritdoc IDealVaultCore
    // slither-disable-next-line reentrancy-no-eth
    function repay(address stable, uint256 amount) external nonReentrant {
        _onlyOperatorOrOwner();
        _phaseIn(M_REDUCE);
        address debtToken = _debtToken(stable);
        _syncDebt();
        uint256 available = stableOf(stable);
        if (amount == type(uint256).max) amount = Math.min(available, _selfBalance(debtToken));
        if (amount < 1) revert ZeroAmount(); // `< 1`: balance-derived (see ownerRepay)
        if (amount > available) revert InsufficientBucket(B_STABLE, available, amount);

        uint256 repaid = _repay(stable, amount);
        // repaid <= amount <= available
        _setStable(stable, available - repaid);
        _bookScaled(stable, debtToken);
        emit Repaid(stable, repaid, address(this));
        _finishLight(Leg.Repay);
    }

    /// @inheritdoc IDealVaultCore
    function withdrawCollateral(address wrapper, uint256 amount) external nonReentrant {
        _onlyOperatorOrOwner();
        _aToken(wrapper);
        _syncDebt();
        uint256 debt = _poolDebt();
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
        if (withDebt) _finish(Leg.WithdrawCollateral, CHECK_LTV | CHECK_EXPOSURE, _unread(), debt);
        else _finishLight(Leg.WithdrawCollateral);
    }

    /// @inheritdoc IDealVaultCore
    function split() external nonReentrant {
        _onlyOperatorOrOwner();
        _phaseIn(M_FUNDED);
        uint256 funded = fundedCapital;
        if (funded == 0) revert ZeroAmount();
        OracleLib.Price memory px = OracleLib.read(ethUsdFeed, oracleMaxAge);
        // the loss budget's base: the funded capital at a Fresh price, 6 dp USD
        uint256 value = funded * px.fresh(oracleMaxAge) / RiskLib.STABLE_TO_E26;

        uint256 core = funded * coreBps / BPS;
        uint256 working = funded * workingBps / BPS;
        // opportunistic takes the rounding remainder so the three sum to the funded capital exactly
        uint256 opportunistic = funded - core - working;
        // each <= funded, a uint80
        coreEth = uint80(core);
        workingEth = uint80(working);
        opportunisticEth = uint80(opportunistic);
        splitValue = _u64(value);
        phase_ = Phase.SPLIT;
        emit Split(core, working, opportunistic, value);
        _observe();
        _finish(Leg.Split, 0, px, 0);
    }

    /// @inheritdoc IDealVaultCore
    // slither-disable-next-line reentrancy-no-eth
    function sell(address stable, uint256 amountIn, uint256 minOut, uint256 deadline) external nonReentrant {
        _onlyOperatorOrOwner();
        _phaseIn(M_USDTZ);
        _debtToken(stable);
        uint256 held = usdtzHeld;
        if (amountIn == 0) revert ZeroAmount();
        if (amountIn > held) revert InsufficientBucket(B_USDTZ, held, amountIn);
        // the owner's sell is a crisis exit: no TWAP bound, no budget
        if (msg.sender != owner_) _twapCheck(stable, false);
        uint256 floorE6 = sellFloorPrice;

        uint256 cost = RiskLib.costOut(usdtzCost, amountIn, held);
        uint256 received = _swap(usdtz, stable, amountIn, minOut, deadline);
        if (received * 1e6 < floorE6 * amountIn) revert PriceBelowFloor(received * 1e6 / amountIn, floorE6);

        // amountIn <= held, cost <= usdtzCost
        usdtzHeld = uint80(held - amountIn);
        usdtzCost = uint64(usdtzCost - cost);
        _setStable(stable, stableOf(stable) + received);
        emit Sold(stable, amountIn, received, received * 1e6 / amountIn);
        if (cost > received) _realize(Leg.Sell, cost - received);
        _finishLight(Leg.Sell);
    }

    /// @inheritdoc IDealVaultCore
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
        _finishLight(Leg.AddCollateral);
    }

    /// @inheritdoc IDealVaultCore
    function deleverage(address wrapper, address stable, uint256 collateralAmount, uint256 minOut, uint256 deadline)
        external
        nonReentrant
    {
        _onlyOperatorOrOwner();
        _phaseIn(M_REDUCE);
        _aToken(wrapper);
        address debtToken = _debtToken(stable);
        {
            uint256 available = collateralOf(wrapper);
            if (collateralAmount == 0) revert ZeroAmount();
            if (collateralAmount > available) revert InsufficientBucket(B_COLLATERAL, available, collateralAmount);
        }
        OracleLib.Price memory px = OracleLib.read(ethUsdFeed, oracleMaxAge);
        uint256 price = _referencePrice(px);
        // the collateral's value at the reference price, 6 dp; the sale must pay value x (1 - slippage)
        uint256 value = collateralAmount * price / RiskLib.STABLE_TO_E26;
        _syncDebt();
        minOut = _deleverageMinOut(value, debtToken, minOut);
        uint256 collBefore = _collateral();
        uint256 debtBefore = _poolDebt();

        // collateralAmount <= collateralOf(wrapper) checked above
        _setCollateral(wrapper, collateralOf(wrapper) - collateralAmount);
        uint256 received = _sellAndRepay(wrapper, stable, debtToken, collateralAmount, minOut, deadline);
        if (value > received) _realize(Leg.Deleverage, value - received);

        uint256 debtAfter =
            _ltvNotRaised(collBefore, collBefore > collateralAmount ? collBefore - collateralAmount : 0, debtBefore, price);
        _finish(Leg.Deleverage, 0, px, debtAfter);
    }

    /// @inheritdoc IDealVaultCore
    function close() external nonReentrant {
        _onlyOperatorOrOwner();
        _phaseIn(M_SPLIT | M_REDUCE);
        _syncDebt();
        uint256 debt = _poolDebt();
        if (debt != 0) revert DebtOutstanding(debt);

        phase_ = Phase.CLOSED;
        (uint256 credited9, uint256 left9) = _closeCollateral(weth9, aWeth9);
        (uint256 credited10, uint256 left10) = _closeCollateral(weth10, aWeth10);
        workingEth = _u80(workingEth + credited9 + credited10);

        OracleLib.Price memory px = OracleLib.read(ethUsdFeed, oracleMaxAge);
        int256 pnlEth = int256(uint256(coreEth) + workingEth + opportunisticEth + left9 + left10 + ethReturned)
            - int256(uint256(fundedCapital));
        uint256 stable = uint256(stableT) + stableC;
        int256 pnlUsd = pnlEth * int256(px.valueOrZero()) / 1e18
            + (int256(stable) - int256(uint256(ownerRepaid)) - int256(uint256(repaidOnBehalf))) * 100;
        uint256 writtenOff = usdtzCost;
        realizedPnlEth = int88(pnlEth);
        realizedPnlUsd = int88(pnlUsd);
        writtenOffUsdtz = uint64(writtenOff);
        usdtzCost = 0;
        emit Closed(pnlEth, pnlUsd, stable, writtenOff, left9 + left10, px.status);
        // the operator may not write off more than the budget (USDTz it could still redeem or sell)
        if (writtenOff != 0) _realize(Leg.Close, writtenOff);
        // the debt is zero (checked above) and close does not borrow
        _finish(Leg.Close, 0, px, 0);
    }

    /* VIEWS */

    /// @inheritdoc IDealVaultCore
    function extSloads(bytes32[] calldata slots) external view returns (bytes32[] memory words) {
        uint256 n = slots.length;
        words = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            bytes32 slot = slots[i];
            assembly ("memory-safe") {
                mstore(add(words, shl(5, add(i, 1))), sload(slot))
            }
        }
    }

    /* INTERNAL */

    /// @dev approve exact -> desk.redeem -> approve 0, none of which may revert the leg; returns
    ///      the USDTz that left and the `stable` that arrived (balance deltas).
    function _redeemAtDesk(address stable, uint256 amount)
        internal
        returns (bool ok, bytes memory reason, uint256 delivered, uint256 received)
    {
        // every venue call below gets its full fixed gas, and the leg keeps enough to finish after
        if (gasleft() < REDEEM_GAS) revert GasTooLow(gasleft(), REDEEM_GAS);
        uint256 zBefore = _selfBalance(usdtz);
        uint256 sBefore = _selfBalance(stable);
        (ok, reason) = _approveUsdtz(desk, amount);
        bool approved = ok;
        if (ok) (ok, reason) = _call(desk, abi.encodeCall(IRedemptionDesk.redeem, (stable, amount)), DESK_GAS);
        uint256 zAfter = _selfBalance(usdtz);
        uint256 sAfter = _selfBalance(stable);
        delivered = zBefore > zAfter ? zBefore - zAfter : 0;
        received = sAfter > sBefore ? sAfter - sBefore : 0;
        // A desk that took all of `amount` used up the allowance (transferFrom debits it): reset
        // only otherwise (the same end state as an unconditional approve(0), without its call and
        // event). Best effort: a failed reset leaves at most `amount` approved to the desk only, on
        // a token then frozen or paused.
        if (approved && delivered < amount) _approveUsdtz(desk, 0);
    }

    /// @dev USDTz approve that cannot revert (FiatToken reverts when paused or the holder is
    ///      blacklisted); a token without a bool return value is fine, one returning false fails.
    function _approveUsdtz(address spender, uint256 amount) internal returns (bool ok, bytes memory reason) {
        (ok, reason) = _call(usdtz, abi.encodeCall(IERC20.approve, (spender, amount)), APPROVE_GAS);
        if (ok && reason.length != 0 && (reason.length < 32 || abi.decode(reason, (uint256)) != 1)) {
            ok = false;
            reason = abi.encodeWithSelector(ApproveFailed.selector, usdtz);
        }
    }

    /// @dev A call with `gasLimit` gas whose return data is cut at 256 bytes: a venue can neither
    ///      burn the leg's gas nor make copying its revert reason run out of gas.
    function _call(address target, bytes memory data, uint256 gasLimit) internal returns (bool ok, bytes memory ret) {
        assembly ("memory-safe") {
            ok := call(gasLimit, target, 0, add(data, 0x20), mload(data), 0, 0)
            let size := returndatasize()
            if gt(size, 256) { size := 256 }
            ret := mload(0x40)
            mstore(ret, size)
            returndatacopy(add(ret, 0x20), 0, size)
            mstore(0x40, add(add(ret, 0x20), and(add(size, 31), not(31))))
        }
    }

    /// @dev deleverage's minOut: at least value x (1 - maxSlippage), and that bound no more than the
    ///      stable's debt needs (an operator cannot turn collateral into cash).
    function _deleverageMinOut(uint256 value, address debtToken, uint256 minOut) internal view returns (uint256) {
        uint256 atLeast = value * (BPS - maxSlippageBps);
        uint256 bound = atLeast / BPS;
        uint256 debtOfStable = _selfBalance(debtToken);
        // exact: value x (1 - slippage) > debt x (1 + margin), cross-multiplied
        if (atLeast > debtOfStable * (BPS + DELEVERAGE_MARGIN_BPS)) revert DeleverageTooLarge(bound, debtOfStable);
        return minOut < bound ? bound : minOut;
    }

    /// @dev deleverage's venue part: sell the collateral, repay with all of it, book the rest.
    function _sellAndRepay(
        address wrapper,
        address stable,
        address debtToken,
        uint256 amount,
        uint256 minOut,
        uint256 deadline
    ) internal returns (uint256 received) {
        received = _sellCollateral(wrapper, stable, amount, minOut, deadline);
        uint256 repaid = _repay(stable, received);
        // repaid <= received (the pool takes at most what it was approved for)
        _setStable(stable, stableOf(stable) + received - repaid);
        _bookScaled(stable, debtToken);
        emit Deleveraged(wrapper, stable, amount, received, repaid);
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
        return _swap(weth9, stable, withdrawn, minOut, deadline);
    }

    /// @dev Price-free: debtAfter / collAfter <= debtBefore / collBefore, cross-multiplied.
    function _ltvNotRaised(uint256 collBefore, uint256 collAfter, uint256 debtBefore, uint256 price)
        internal
        view
        returns (uint256 debtAfter)
    {
        debtAfter = _poolDebt();
        if (debtAfter * collBefore > debtBefore * collAfter) {
            revert LtvIncreased(
                RiskLib.ltvBps(debtBefore, collBefore, price), RiskLib.ltvBps(debtAfter, collAfter, price)
            );
        }
    }

    /// @dev Withdraws what the pool can pay now of a wrapper's collateral at close and unwraps it;
    ///      credits at most the booked amount (supply interest and donated aTokens stay as unbooked
    ///      surplus). A reserve that is drained or paused delays the rest, it never blocks close:
    ///      `left` stays booked, as aTokens the owner can withdraw after CLOSED.
    function _closeCollateral(address wrapper, address aToken) internal returns (uint256 credited, uint256 left) {
        uint256 booked = collateralOf(wrapper);
        if (booked < 1) return (0, 0); // `< 1`: slither taints the books written from measured deltas
        uint256 aBalance = _selfBalance(aToken);
        // what the reserve holds is what it can pay out now
        uint256 payable_ = Math.min(aBalance, _balance(wrapper, aToken));
        // payable_ <= aBalance: `>=` is "all of it" (no strict equality on balance-derived values)
        bool all = payable_ >= aBalance;
        left = booked;
        if (payable_ > 0) {
            (bool ok, bytes memory ret) = pool.call(
                abi.encodeCall(IAaveV3Pool.withdraw, (wrapper, all ? type(uint256).max : payable_, address(this)))
            );
            if (ok && ret.length >= 32) {
                uint256 withdrawn = abi.decode(ret, (uint256));
                IWETH(wrapper).withdraw(withdrawn);
                credited = Math.min(withdrawn, booked);
                left = all ? 0 : booked - credited;
            }
        } else if (aBalance < 1) {
            left = 0; // fully liquidated (`< 1`: balance-derived)
        }
        _setCollateral(wrapper, left);
    }

    /// @dev deleverage's price: the oracle if Fresh; otherwise the operator is bound by the feed's
    ///      latest valid answer (the last fresh price; none: InvalidPrice) and the owner by its floor.
    function _referencePrice(OracleLib.Price memory px) internal view returns (uint256) {
        if (px.status == OracleStatus.Fresh) return uint256(px.answer);
        if (msg.sender == owner_) return ethFloorPrice;
        if (px.status == OracleStatus.Stale) return uint256(px.answer);
        revert InvalidPrice(px.answer);
    }

    /// @dev balanceOf that never reverts (0 on failure).
    function _balance(address token, address who) internal view returns (uint256) {
        (bool ok, bytes memory ret) = token.staticcall(abi.encodeCall(IERC20.balanceOf, (who)));
        return ok && ret.length >= 32 ? abi.decode(ret, (uint256)) : 0;
    }

    function _rungSize(uint256 k) internal view returns (uint256) {
        return k == 0 ? rung0 : k == 1 ? rung1 : rung2;
    }

    function _nonZero(address a, string memory which) internal pure {
        if (a == address(0)) revert ZeroAddress(which);
    }

    function _decimals(address token, uint256 expected) internal view {
        uint8 actual = IERC20Metadata(token).decimals();
        if (actual != expected) revert WrongDecimals(token, expected, actual);
    }

    function _u56(uint256 v) internal pure returns (uint56) {
        return SafeCast.toUint56(v);
    }
}
