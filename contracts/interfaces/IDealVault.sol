// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IDealVault
/// @notice One deal's ETH on Chain 138, with its risk caps enforced by the contract itself.
///
/// The vault is two contracts behind one address and one ABI (this interface): the core
/// (DealVault, IDealVaultCore) runs the legs; every other function (IDealVaultExtension: the
/// owner's and guardian's, the parameters, observe, the views) is code of the extension the core
/// created in its constructor, run by DELEGATECALL on the core's storage.
///
/// The loop: `fund` -> `split` (core / working / opportunistic buckets) -> `supply` working ETH as
/// WETH9/WETH10 collateral on Aave V3 -> `borrow` cUSDT/cUSDC -> `buy` USDTz below par on the
/// Uniswap V2 router -> `redeem` USDTz at par at the desk, in a ladder of tranches -> `repay` ->
/// `withdrawCollateral` -> `close` (PnL) -> `withdraw` (owner, to itself only).
/// Every view (the risk picture, the parameters, the books) lives in a lens (IDealVaultLens, one
/// per chain, for any number of vaults), which reads the vault's storage through `extSloads`.
///
/// Roles: owner (funds, sets parameters, pauses, holds, resumes, repays with its own stablecoin,
/// withdraws to itself; two-step transfer; may also run every leg that is not risk-adding, without
/// the loss budget), operator (runs the legs, within the loss budget), guardian (pauses, holds and
/// revokes a queued loosening; nothing else). Every role but the owner can renounce itself; the
/// owner only once the deal is CLOSED.
///
/// Leg kinds:
/// - Risk-adding (`supply`, `borrow`, `buy`, `withdrawCollateral` while debt remains): operator
///   only (`withdrawCollateral`: operator or owner), refused while paused or in HOLDING, need a
///   Fresh oracle, and must end within every cap: each asserts both the LTV (with the pool
///   cross-check while debt exists) and the exposure after it runs. `buy` also needs the pair's
///   spot price within `maxSlippageBps` of its own time-weighted price (see Observations).
/// - Risk-reducing (`redeem`, `sell`, `repay`, `ownerRepay`, `addCollateral`, `deleverage`,
///   `close`): operator or owner (`ownerRepay`: owner), need no Fresh oracle, run while paused and
///   in HOLDING. They never raise the debt, the LTV, or the USDTz held.
///
/// The loss budget (the per-deal bound on a leaked operator key): at `split` the vault books the
/// funded capital's value at the oracle price (`splitValue`, 6 dp USD); the budget is
/// `splitValue * maxOperatorLossBps / 10_000`. Every operator leg adds the loss it realizes,
/// measured against reference prices, to `operatorLoss`, and reverts `LossBudgetExceeded` if the
/// total would pass the budget. Reference prices: stablecoins at par, USDTz at its average cost,
/// ETH at the oracle's latest valid answer (the last fresh price). Losses per leg:
/// - `sell`: cost basis of the USDTz sold - stablecoin received;
/// - `redeem`: cost basis of the USDTz delivered - stablecoin received (fees, short payments);
/// - `deleverage`: collateral x reference price - stablecoin received;
/// - `borrow`: amount asked - amount that arrived (a stablecoin that charges a transfer fee);
/// - `close`: the USDTz written off at cost.
/// Gains never offset losses (the total only grows), so the bound holds whatever the order of the
/// legs and however anyone trades the pairs around them, within a block or across blocks. The
/// owner's legs are crisis exits: they realize losses without the budget.
///
/// Observations (the buy and sell price reference an attacker cannot move in one block): the vault
/// stores, per stablecoin pair, the Uniswap V2 cumulative price and its timestamp (at `split` and
/// at every `observe`). A buy (or an operator's sell) computes the pair's time-weighted price since
/// that observation, which must be at least `twapWindow` seconds old, and requires the spot price
/// before the swap to be within `maxSlippageBps` of it: above for a buy (`PriceAboveTwap`), below
/// for an operator's sell (`PriceBelowTwap`).
///
/// Parameters (`setParam`): a change that tightens acts at once; one that loosens is queued for
/// `loosenDelay` seconds (`acceptParam` then applies it; the owner or the guardian may
/// `revokeParam` meanwhile), and may go at most back to the constructor's value (never past the
/// hard ceilings, which the constructor enforces).
///
/// Leg x phase table (x = allowed; phase after the leg in brackets when it changes;
/// mask bit i = Phase i, as reported by `WrongPhase(current, allowedMask)`):
///
/// | leg                | FUNDED | SPLIT     | WORKING | POSITIONED   | MONETIZING | HOLDING   | CLOSED | mask |
/// |--------------------|--------|-----------|---------|--------------|------------|-----------|--------|------|
/// | fund               | x      |           |         |              |            |           |        | 0x01 |
/// | split              | x [S]  |           |         |              |            |           |        | 0x01 |
/// | supply             |        | x [W]     | x       | x            | x          |           |        | 0x1e |
/// | borrow             |        |           | x       | x            | x          |           |        | 0x1c |
/// | buy                |        |           | x [P]   | x            | x          |           |        | 0x1c |
/// | redeem  (success)  |        |           |         | x [M]        | x          | x (stays) |        | 0x38 |
/// | redeem  (failure)  |        |           |         | x [H]        | x [H]      | x (stays) |        | 0x38 |
/// | sell               |        |           |         | x            | x          | x         |        | 0x38 |
/// | repay, ownerRepay  |        |           | x       | x            | x          | x         |        | 0x3c |
/// | addCollateral      |        |           | x       | x            | x          | x         |        | 0x3c |
/// | withdrawCollateral |        |           | x       | x            | x          | x (no debt) |      | 0x3c |
/// | deleverage         |        |           | x       | x            | x          | x         |        | 0x3c |
/// | close              |        | x [C]     | x [C]   | x [C]        | x [C]      | x [C]     |        | 0x3e |
/// | hold               | x [H]  | x [H]     | x [H]   | x [H]        | x [H]      |           |        | 0x1f |
/// | resume             |        |           |         |              |            | x [before]|        | 0x20 |
/// | observe            | x      | x         | x       | x            | x          | x         |        | 0x3f |
/// | withdraw (owner)   | surplus| surplus   | surplus | surplus      | surplus    | surplus + idle ETH | all |  -   |
///
/// Pause blocks `supply`, `borrow`, `buy` and `withdrawCollateral` while debt remains; nothing else.
/// "surplus" = what the vault holds above its books (donations); aTokens never before CLOSED.
/// "idle ETH" = the ETH buckets (core, working, opportunistic): in HOLDING the owner can always
/// take its ETH back, whatever the pool or the oracle do (`ethReturned`).
///
/// Units: ETH in wei; stablecoins and USDTz in 6-decimal units; USD values in 8 decimals (the
/// feed's) except the loss budget and its books (6 dp, stablecoin units); prices of USDTz as
/// `priceE6` (1e6 = $1 per USDTz); bps of 10_000.
///
/// Caps (asserted at the end of the leg, exact integer cross-multiplication, never in bps):
/// - LTV: `debt * 1e20 * 10_000 <= maxLtvBps * collateralWei * price` (vault's books and oracle)
///   AND `totalDebtBase * 10_000 <= maxLtvBps * totalCollateralBase` (pool's getUserAccountData);
///   both must hold, so the stricter counts. `debt` is the sum of the variable debt token balances
///   plus `repaidOnBehalf` (what others repaid for the vault: it never loosens a cap);
///   `collateralWei` is, per wrapper, min(booked supply, aToken balance).
/// - Exposure: `usdtzHeld * 1e20 * 10_000 <= maxExposureBps * navE26` where
///   navE26 = (core + working + opportunistic + collateralWei) * price
///          + (stableHeld + usdtzCost - debt) * 1e20     (debt including repaidOnBehalf)
/// - Core: after every leg before CLOSED, `address(this).balance >= coreEth`.
/// The books (never raw balances) feed every cap and the PnL, so donations change nothing.
interface IDealVaultTypes {
    /* TYPES */

    enum Phase {
        FUNDED,
        SPLIT,
        WORKING,
        POSITIONED,
        MONETIZING,
        HOLDING,
        CLOSED
    }

    enum Leg {
        Split,
        Supply,
        Borrow,
        Buy,
        Redeem,
        Sell,
        Repay,
        OwnerRepay,
        AddCollateral,
        WithdrawCollateral,
        Deleverage,
        Close,
        Hold,
        Resume,
        Fund
    }

    /// @notice Fresh: 0 < answer <= 1e16, updatedAt <= block.timestamp and
    ///         block.timestamp - updatedAt <= oracleMaxAge. Stale: a valid answer older than that.
    ///         Invalid: call failed, answer <= 0 or absurd, or updatedAt in the future.
    ///         Unread: only in a `LegCompleted` snapshot of a leg that reads no market data (see
    ///         Snapshot); the lens's riskView always reads the feed.
    enum OracleStatus {
        Fresh,
        Stale,
        Invalid,
        Unread
    }

    /// @notice The owner-set risk parameters, in `setParam` / `RiskParamSet` order. Tighter is lower
    ///         for MaxLtvBps, MaxExposureBps, MaxDeskFeeBps, OracleMaxAge, MaxSlippageBps and
    ///         MaxOperatorLossBps; higher for MinDiscountBps, SellFloorPrice, EthFloorPrice,
    ///         TwapWindow and LoosenDelay.
    enum Param {
        MaxLtvBps,
        MaxExposureBps,
        MaxDeskFeeBps,
        OracleMaxAge,
        MinDiscountBps,
        MaxSlippageBps,
        SellFloorPrice,
        EthFloorPrice,
        MaxOperatorLossBps,
        TwapWindow,
        LoosenDelay
    }

    struct RiskParams {
        uint16 maxLtvBps; // <= 3000
        uint16 maxExposureBps; // <= 2500
        uint16 coreBps;
        uint16 workingBps;
        uint16 opportunisticBps; // the three sum to 10_000
        uint256[3] rungs; // 6 dp, strictly increasing, > 0, rungs[2] < 2**63
        uint16 maxDeskFeeBps; // <= 1000
        uint32 oracleMaxAge; // seconds, > 0
        uint16 minDiscountBps; // buy only at priceE6 <= (10_000 - minDiscountBps) * 100; < 10_000
        uint16 maxSlippageBps; // <= 1000: spot vs TWAP for buy/sell, deleverage vs the reference price
        uint256 sellFloorPrice; // priceE6 floor for selling USDTz, 0 < floor <= 1e6
        uint256 ethFloorPrice; // 8 dp USD, 0 < floor <= 1e16; the owner's deleverage bound when the oracle is not Fresh
        uint16 maxOperatorLossBps; // <= 1000: the loss budget, bps of the funded capital's value at split
        uint16 twapWindow; // seconds, 1..65_535: the minimum age of the observation a buy's TWAP starts from
        uint32 loosenDelay; // seconds, 1 hour..30 days: how long a loosening waits (the guardian's time to revoke it)
        uint256 minTranche; // 6 dp, 0 < minTranche <= rungs[0]: smallest redemption but the last one
    }

    struct Config {
        address weth9;
        address weth10;
        address cusdt;
        address cusdc;
        address usdtz;
        address pool;
        address router;
        address desk;
        address ethUsdFeed;
        address owner;
        address operator;
        address guardian;
        RiskParams risk;
    }

    /// @notice The vault's venues and tokens (its immutables), as configured and as found at
    ///         deployment (aTokens and debt tokens from the pool, pairs from the router's factory).
    struct Venues {
        address weth9;
        address weth10;
        address cusdt;
        address cusdc;
        address usdtz;
        address pool;
        address router;
        address desk;
        address ethUsdFeed;
        address aWeth9;
        address aWeth10; // address(0): the pool has no WETH10 reserve (WETH10 is then no wrapper)
        address debtCusdt;
        address debtCusdc;
        address pairCusdt; // the [cUSDT, USDTz] pair
        address pairCusdc;
    }

    /// @notice Everything fixed at deployment (the core's and the extension's immutables).
    struct Setup {
        Venues venues;
        bool usdtzIs0T; // USDTz is token0 of the cUSDT pair
        bool usdtzIs0C;
        uint256 coreBps;
        uint256 workingBps;
        uint256 opportunisticBps;
        uint256[3] rungs;
        uint256 minTranche;
    }

    /// @notice The state after a leg, emitted in `LegCompleted`.
    ///         The books (phase, buckets, rung, redeemed, stable, USDTz) are always there. The
    ///         marks (collateralWeth from the aTokens, debt from the debt tokens plus
    ///         repaidOnBehalf, ltvBps, nav, exposureBps, ethPrice) are read only by the legs that
    ///         need them: the risk-adding legs for their caps (supply, borrow, buy,
    ///         withdrawCollateral with debt), deleverage and close. Every other leg skips those
    ///         reads (about 50k gas): its snapshot has oracleStatus Unread and zero marks; the
    ///         lens's riskView at the leg's block gives them.
    struct Snapshot {
        Phase phase;
        uint256 coreEth;
        uint256 workingEth;
        uint256 opportunisticEth;
        uint256 collateralWeth;
        uint256 debt;
        uint256 ltvBps;
        uint256 nav;
        uint256 exposureBps;
        uint8 rung;
        uint256 rungProgress;
        uint256 redeemedTotal;
        uint256 stableHeld;
        uint256 usdtzHeld;
        int256 ethPrice;
        OracleStatus oracleStatus;
    }

    /* EVENTS */

    /// @notice Once per leg, after the leg's own event; `legSeq` starts at 1 and rises by one.
    event LegCompleted(uint256 indexed legSeq, Leg indexed leg, Snapshot snapshot);
    event Funded(address indexed from, uint256 amount, uint256 fundedCapital);
    /// @notice `splitValue`: the funded capital at the oracle price, 6 dp USD (the loss budget's base).
    event Split(uint256 coreEth, uint256 workingEth, uint256 opportunisticEth, uint256 splitValue);
    event Supplied(address indexed wrapper, uint256 amount);
    event CollateralAdded(address indexed wrapper, uint256 amount);
    event CollateralWithdrawn(address indexed wrapper, uint256 amount);
    /// @notice `received` is what arrived (booked); below `amount` only for a fee-charging stablecoin.
    event Borrowed(address indexed stable, uint256 amount, uint256 received);
    event Bought(address indexed stable, uint256 amountIn, uint256 amountOut, uint256 priceE6);
    event Sold(address indexed stable, uint256 amountIn, uint256 amountOut, uint256 priceE6);
    event Redeemed(uint8 rung, address indexed stable, uint256 amount, uint256 received);
    /// @notice A failed tranche: `reason` is (at most 256 bytes of) the revert data of the approve
    ///         or the desk, or an encoded `ApproveFailed(token)` / `ShortPayment(received, minimum)`.
    event RedemptionFailed(uint8 rung, uint256 amount, bytes reason);
    event Repaid(address indexed stable, uint256 amount, address indexed payer);
    /// @notice A repayment of the vault's debt made by someone else directly on the pool, found by
    ///         the debt token's scaled balance falling between the vault's own debt actions: booked
    ///         in `repaidOnBehalf` (like `ownerRepaid`: never profit, never a looser cap).
    event RepaidOnBehalf(address indexed stable, uint256 amount);
    /// @notice A liquidation: the scaled debt fell while an aToken balance was below its book; the
    ///         collateral book of `wrapper` is written down by `amount` (and nothing is booked as
    ///         repaid on behalf: the liquidator was paid with that collateral).
    event CollateralSeized(address indexed wrapper, uint256 amount);
    event Deleveraged(
        address indexed wrapper, address indexed stable, uint256 collateralAmount, uint256 received, uint256 repaid
    );
    /// @notice An operator leg realized `loss` (6 dp USD against the reference prices); `total` is
    ///         the deal's operator loss after it, `budget` the limit.
    event OperatorLoss(Leg indexed leg, uint256 loss, uint256 total, uint256 budget);
    /// @notice `collateralLeft`: booked collateral the pool could not pay out at close (an illiquid
    ///         or paused reserve), still held as aTokens; the owner withdraws them after CLOSED.
    event Closed(
        int256 realizedPnlEth,
        int256 realizedPnlUsd,
        uint256 stableSurplus,
        uint256 writtenOffUsdtz,
        uint256 collateralLeft,
        OracleStatus oracleStatus
    );
    /// @notice reason: 0 = failed redemption, 1 = owner, 2 = guardian.
    event HoldingEntered(Phase from, uint8 reason);
    event Resumed(Phase to);
    event PauseChanged(bool paused, address indexed by);
    /// @notice A TWAP observation: the pair's cumulative price (low 192 bits) at `timestamp`.
    event Observed(address indexed stable, uint256 cumulative, uint256 timestamp);
    event RiskParamSet(Param indexed param, uint256 oldValue, uint256 newValue);
    event RiskParamQueued(Param indexed param, uint256 value, uint256 validAt);
    event RiskParamRevoked(Param indexed param, address indexed by);
    /// @notice `fromBooks`: the part taken from the books (the ETH buckets in HOLDING; any book after
    ///         CLOSED), 0 for a surplus.
    event Withdrawn(address indexed token, uint256 amount, uint256 fromBooks);
    event OwnershipTransferStarted(address indexed previousOwner, address indexed newOwner);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    event OperatorSet(address indexed previousOperator, address indexed newOperator);
    event GuardianSet(address indexed previousGuardian, address indexed newGuardian);

    /* ERRORS */

    error LtvAboveCap(uint256 ltvBps, uint256 capBps);
    error LtvIncreased(uint256 ltvBpsBefore, uint256 ltvBpsAfter);
    error ExposureAboveCap(uint256 exposureBps, uint256 capBps);
    error WrongPhase(Phase current, uint256 allowedMask);
    error StaleOracle(uint256 updatedAt, uint256 maxAge);
    error InvalidPrice(int256 answer);
    error PriceAboveLimit(uint256 priceE6, uint256 limitE6);
    error PriceBelowFloor(uint256 priceE6, uint256 floorE6);
    /// @notice The pair's spot price before a buy is above its TWAP by more than maxSlippageBps.
    error PriceAboveTwap(uint256 spotE6, uint256 twapE6);
    /// @notice The pair's spot price before an operator's sell is below its TWAP by more than maxSlippageBps.
    error PriceBelowTwap(uint256 spotE6, uint256 twapE6);
    /// @notice The observation is younger than twapWindow (observedAt 0: never observed).
    error TwapWindowShort(uint256 observedAt, uint256 twapWindow);
    /// @notice The leg's realized loss would take the deal's operator loss to `lossAfter` > `budget` (6 dp USD).
    error LossBudgetExceeded(uint256 lossAfter, uint256 budget);
    /// @notice deleverage would sell collateral worth more than the stable's debt needs:
    ///         value x (1 - maxSlippage) at the reference price > debt x (1 + DELEVERAGE_MARGIN_BPS).
    error DeleverageTooLarge(uint256 proceedsBound, uint256 debt);
    error TrancheAboveRung(uint256 amount, uint256 rungSize);
    /// @notice A tranche below minTranche that is not the whole USDTz held.
    error TrancheBelowMinimum(uint256 amount, uint256 minTranche);
    /// @notice redeem needs enough gas that the desk's call gets its full allowance (no griefing).
    error GasTooLow(uint256 available, uint256 needed);
    error NotOperator(address caller);
    error NotOwner(address caller);
    error NotGuardian(address caller);
    error NotPendingOwner(address caller);
    error UnknownWrapper(address token);
    error UnknownStable(address token);
    error ZeroAddress(string which);
    /// @notice Two configured venue or token addresses are the same.
    error DuplicateAddress(address account);
    error RolesNotDistinct(address account);
    error WrongDecimals(address token, uint256 expected, uint256 actual);
    error BucketSplitInvalid(uint256 sum);
    error RungsInvalid(uint256 index);
    /// @notice `value` is past a parameter's hard limit (ParamTable) or another fixed ceiling.
    error CapAboveCeiling(uint256 value, uint256 ceiling);
    /// @notice A loosening may go at most back to the constructor's value (`initial`).
    error LoosenedPastInitial(Param param, uint256 value, uint256 initial);
    /// @notice A parameter that must be positive is zero, or a tranche minimum is out of range.
    error ParamInvalid(Param param, uint256 value);
    error NothingQueued(Param param);
    error QueuedUntil(Param param, uint256 validAt);
    /// @notice bucket: 0 core, 1 working, 2 opportunistic, 3 collateral, 4 stable, 5 USDTz, 6 surplus.
    error InsufficientBucket(uint8 bucket, uint256 available, uint256 needed);
    error DebtOutstanding(uint256 debt);
    error Paused();
    error ZeroAmount();
    error EthNotAccepted(address from);
    error EthTransferFailed();
    error CoreBreached(uint256 balance, uint256 coreEth);
    error RouterWethMismatch(address routerWeth);
    /// @notice No Uniswap V2 pair for [stable, USDTz] on the router's factory.
    error PairMissing(address stable);
    /// @notice Reentrancy (OpenZeppelin's error, same selector).
    error ReentrancyGuardReentrantCall();
    /// @notice Only as `RedemptionFailed.reason`: the approve returned false.
    error ApproveFailed(address token);
    /// @notice Only as `RedemptionFailed.reason`: the desk paid less than amount * (1 - maxDeskFee).
    error ShortPayment(uint256 received, uint256 minimum);
}

/// @title IDealVaultCore
/// @notice The legs, run by the core itself (no DELEGATECALL), but fund, hold and resume.
interface IDealVaultCore is IDealVaultTypes {
    /* LEGS */

    /// @notice Wraps `amount` of the working bucket with `wrapper` (WETH9/WETH10) and supplies it.
    function supply(address wrapper, uint256 amount) external;
    /// @notice Borrows `amount` of `stable` (cUSDT/cUSDC) at the variable rate and books what
    ///         arrived; LTV and exposure checked after.
    function borrow(address stable, uint256 amount) external;
    /// @notice Swaps `amountIn` booked `stable` for USDTz on [stable, USDTz] with the caller's
    ///         minOut. The spot price before the swap must be within maxSlippageBps above the TWAP
    ///         (PriceAboveTwap), and the effective price <= (10_000 - minDiscountBps) * 100
    ///         (PriceAboveLimit); LTV and exposure checked after.
    function buy(address stable, uint256 amountIn, uint256 minOut, uint256 deadline) external;
    /// @notice One tranche at the desk. Never reverts for a venue failure: on a failed approve, a
    ///         reverting desk (its revert data cut at 256 bytes, its gas capped) or a payment below
    ///         amount * (10_000 - maxDeskFeeBps) / 10_000 (rounded up) it emits RedemptionFailed,
    ///         resets the ladder to rung 0 and enters HOLDING. Reverts only for caller errors
    ///         (role, phase, unknown stable, zero, above books, TrancheAboveRung,
    ///         TrancheBelowMinimum, GasTooLow) and for an operator's LossBudgetExceeded.
    /// @return ok whether the tranche succeeded.
    function redeem(address stable, uint256 amount) external returns (bool ok);
    /// @notice Repays `amount` (type(uint256).max = min(books, debt)) of `stable` from the books.
    function repay(address stable, uint256 amount) external;
    /// @notice Withdraws `amount` of booked collateral, unwraps it into the working bucket.
    ///         With debt outstanding this is risk-adding (pause, HOLDING, oracle, LTV).
    function withdrawCollateral(address wrapper, uint256 amount) external;

    /// @notice Books the funded ETH: core and working by their bps, opportunistic the remainder;
    ///         books the funded capital's value at the (Fresh) oracle price as the loss budget's
    ///         base; takes the first TWAP observation of both pairs.
    function split() external;
    /// @notice Swaps `amountIn` booked USDTz for `stable`; received * 1e6 >= sellFloorPrice * amountIn;
    ///         an operator's sell also needs the spot within maxSlippageBps below the TWAP and counts
    ///         its loss against the budget.
    function sell(address stable, uint256 amountIn, uint256 minOut, uint256 deadline) external;
    /// @notice Wraps `amount` of the opportunistic bucket and supplies it. No oracle needed.
    function addCollateral(address wrapper, uint256 amount) external;
    /// @notice Withdraws `collateralAmount` of `wrapper` collateral, sells it on [WETH9, stable] for
    ///         at least max(minOut, collateralAmount * price * (10_000 - maxSlippageBps) / 10_000)
    ///         and repays `stable` with all of it. price: the oracle if Fresh; else for the operator
    ///         the feed's latest valid answer (InvalidPrice without one), for the owner
    ///         ethFloorPrice. The bound may not exceed the stable's debt by more than
    ///         DELEVERAGE_MARGIN_BPS (DeleverageTooLarge), and the LTV may not rise.
    function deleverage(address wrapper, address stable, uint256 collateralAmount, uint256 minOut, uint256 deadline)
        external;
    /// @notice Debt must be zero. Withdraws what the pool can pay of the collateral now (the rest
    ///         stays as aTokens, booked, for the owner after CLOSED), unwraps, and books
    ///         realizedPnlEth = ETH buckets + collateral left + ethReturned - funded capital and
    ///         realizedPnlUsd = pnlEth * price / 1e18 + (stableHeld - ownerRepaid - repaidOnBehalf) * 100.
    ///         USDTz left is written off at cost (for the operator, against the loss budget).
    function close() external;

    /* VIEWS */

    /// @notice The raw storage words at `slots` (the lens decodes them).
    function extSloads(bytes32[] calldata slots) external view returns (bytes32[] memory);
    /// @notice The extension whose code serves every IDealVaultExtension function of this vault.
    function extension() external view returns (address);
}

/// @title IDealVaultExtension
/// @notice The owner's and guardian's functions, the parameters and their timelock, observe and
///         the views: served by the extension's code on the vault's storage.
interface IDealVaultExtension is IDealVaultTypes {
    /* OWNER AND GUARDIAN */

    /// @notice Adds `msg.value` to the funded capital (booked in the core bucket until `split`).
    ///         FUNDED only; may be called repeatedly.
    function fund() external payable;
    /// @notice Pulls `amount` of `stable` from the owner (transferFrom; approve the vault first),
    ///         repays the debt with what arrived (a fee-charging token delivers less), at most all
    ///         of it, and sends the rest back. ZeroAmount when nothing is owed.
    /// @param stable cUSDT or cUSDC.
    /// @param amount what to pull, 6 dp (more than the debt is fine: the rest comes back).
    function ownerRepay(address stable, uint256 amount) external;
    /// @notice Leaves HOLDING, back to the phase before it.
    function resume() external;
    /// @notice Owner or guardian: blocks the risk-adding legs.
    function pause() external;
    /// @notice Owner only.
    function unpause() external;
    /// @notice Owner or guardian: enters HOLDING from any open phase.
    function hold() external;
    /// @notice Sends `amount` of `token` (address(0) = ETH) to the owner. Before CLOSED what exceeds
    ///         the books (donations), and in HOLDING also the idle ETH buckets (opportunistic, then
    ///         working, then core: `ethReturned`); after CLOSED anything, aTokens included (surplus
    ///         first; the books are written down to what is left).
    /// @param token the token, or address(0) for ETH.
    /// @param amount the amount in the token's units.
    function withdraw(address token, uint256 amount) external;
    /// @notice Sets a risk parameter: a tightening (or the same value) acts at once and drops a
    ///         queued loosening of it; a loosening (at most back to the constructor's value) is
    ///         queued for `loosenDelay` seconds.
    /// @param param which parameter.
    /// @param value the new value, in the parameter's unit.
    function setParam(Param param, uint256 value) external;
    /// @notice Anyone: applies a queued loosening once its delay has passed.
    /// @param param which parameter.
    function acceptParam(Param param) external;
    /// @notice Owner or guardian: drops a queued loosening.
    /// @param param which parameter.
    function revokeParam(Param param) external;
    /// @notice Replace a leaked or lost operator / guardian (non-zero, distinct from the other roles).
    function setOperator(address newOperator) external;
    function setGuardian(address newGuardian) external;
    function transferOwnership(address newOwner) external;
    function acceptOwnership() external;
    /// @notice Only once CLOSED: before that an ownerless vault would lock every wei.
    function renounceOwnership() external;
    function renounceOperator() external;
    function renounceGuardian() external;

    /* OUTSIDE THE LEGS */

    /// @notice Operator or owner: a new TWAP observation of both pairs (the next buy's TWAP starts
    ///         here, so it needs `twapWindow` seconds to pass).
    function observe() external;

    /* VIEWS (the rest is in the lens) */

    function owner() external view returns (address);
    function operator() external view returns (address);
    function guardian() external view returns (address);
    function pendingOwner() external view returns (address);
    function phase() external view returns (Phase);
    function paused() external view returns (bool);
    /// @notice Everything fixed at deployment: venues, tokens, pairs, buckets, rungs, minimum tranche.
    function setup() external view returns (Setup memory);
}

/// @notice The whole vault, as callers see it at the vault's address.
interface IDealVault is IDealVaultCore, IDealVaultExtension {}
