// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IDealVault
/// @notice One deal's ETH on Chain 138, with its risk caps enforced by the contract itself.
///
/// The loop: `fund` -> `split` (core / working / opportunistic buckets) -> `supply` working ETH as
/// WETH9/WETH10 collateral on Aave V3 -> `borrow` cUSDT/cUSDC -> `buy` USDTz below par on the
/// Uniswap V2 router -> `redeem` USDTz at par at the desk, in a ladder of tranches -> `repay` ->
/// `withdrawCollateral` -> `close` (PnL) -> `withdraw` (owner, to itself only).
///
/// Roles: owner (funds, tightens caps, pauses, holds, resumes, repays with its own stablecoin,
/// withdraws to itself; two-step transfer; may also run every leg that is not risk-adding), operator
/// (runs the legs), guardian (pauses and holds; nothing else). Every role can renounce itself.
///
/// Leg kinds:
/// - Risk-adding (`supply`, `borrow`, `buy`, `withdrawCollateral` while debt remains): operator
///   only (`withdrawCollateral`: operator or owner), refused while paused or in HOLDING, need a
///   Fresh oracle, and must end within every cap: each asserts both the LTV (with the pool
///   cross-check while debt exists) and the exposure after it runs.
/// - Risk-reducing (`redeem`, `sell`, `repay`, `ownerRepay`, `addCollateral`, `deleverage`,
///   `close`): operator or owner (`ownerRepay`: owner), need no oracle, run while paused and in
///   HOLDING. They never raise the debt, the LTV, or the exposure, i.e. the USDTz held (at face):
///   none of them adds USDTz. The exposure's SHARE of NAV is another matter for `deleverage`: it
///   sells collateral on the router below the oracle price (within `minOut`), so NAV falls while
///   the USDTz stays, and the share may rise by at most that NAV loss, from usdtz / NAV to at most
///   usdtz / (NAV - loss), where loss <= collateralAmount * price * maxSlippageBps / 10_000 in
///   E26 USD (wei x 8-dp price; plus Aave's 1-wei roundings) when the bound's price is the Fresh
///   oracle; with a non-Fresh oracle the bound's price is ethFloorPrice, and the loss is measured
///   against that price. `redeem` and `sell` lower the USDTz and lose at most its cost basis per
///   unit (below 1: bought at a discount), so they lower the share whenever USDTz is below NAV.
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
/// | withdraw (owner)   | surplus| surplus   | surplus | surplus      | surplus    | surplus   | all    |  -   |
///
/// Pause blocks `supply`, `borrow`, `buy` and `withdrawCollateral` while debt remains; nothing else.
/// "surplus" = what the vault holds above its books (donations); aTokens never before CLOSED.
///
/// Units: ETH in wei; stablecoins and USDTz in 6-decimal units; USD values in 8 decimals (the
/// feed's); prices of USDTz as `priceE6` (1e6 = $1 per USDTz); bps of 10_000.
///
/// Caps (asserted at the end of the leg, exact integer cross-multiplication, never in bps):
/// - LTV: `debt * 1e20 * 10_000 <= maxLtvBps * collateralWei * price` (vault's books and oracle)
///   AND `totalDebtBase * 10_000 <= maxLtvBps * totalCollateralBase` (pool's getUserAccountData);
///   both must hold, so the stricter counts. `debt` is the sum of the variable debt token balances
///   (the pool's truth, already rounded up by Aave); `collateralWei` is, per wrapper,
///   min(booked supply, aToken balance) (donated aTokens never count; liquidation lowers it).
/// - Exposure: `usdtzHeld * 1e20 * 10_000 <= maxExposureBps * navE26` where
///   navE26 = (core + working + opportunistic + collateralWei) * price
///          + (stableHeld + usdtzCost - debt) * 1e20
///   i.e. NAV = ETH buckets and collateral at the oracle price + stablecoins at par (books)
///   + USDTz at average cost - debt, in USD with 26 decimals (8 shown in `nav`).
/// - Core: after every leg before CLOSED, `address(this).balance >= coreEth`.
/// The books (never raw balances) feed every cap and the PnL, so donations change nothing.
interface IDealVault {
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

    /// @notice Fresh: 0 < answer <= 1e16 and block.timestamp - updatedAt <= oracleMaxAge.
    ///         Stale: a valid answer older than that. Invalid: call failed, answer <= 0 or absurd.
    ///         Unread: only in a `LegCompleted` snapshot of a leg that reads no market data (see
    ///         Snapshot); riskView always reads the feed.
    enum OracleStatus {
        Fresh,
        Stale,
        Invalid,
        Unread
    }

    /// @notice Identifies a risk parameter in `RiskParamSet`.
    enum Param {
        MaxLtvBps,
        MaxExposureBps,
        MaxDeskFeeBps,
        OracleMaxAge,
        MinDiscountBps,
        MaxSlippageBps,
        SellFloorPrice,
        EthFloorPrice
    }

    struct RiskParams {
        uint16 maxLtvBps; // <= MAX_LTV_BPS (3000)
        uint16 maxExposureBps; // <= MAX_EXPOSURE_BPS (2500)
        uint16 coreBps;
        uint16 workingBps;
        uint16 opportunisticBps; // the three sum to 10_000
        uint256[3] rungs; // 6 dp, strictly increasing, > 0
        uint16 maxDeskFeeBps; // <= 10_000
        uint32 oracleMaxAge; // seconds
        uint16 minDiscountBps; // buy only at priceE6 <= (10_000 - minDiscountBps) * 100; < 10_000
        uint16 maxSlippageBps; // < 10_000; on-chain it bounds deleverage (vs the oracle); the harness also uses it for buy/sell minOut from its quote
        uint256 sellFloorPrice; // priceE6 floor for selling USDTz, <= 1e6
        uint256 ethFloorPrice; // 8 dp USD; deleverage bound when the oracle is not Fresh
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

    /// @notice The whole risk picture (see `riskView`).
    struct RiskView {
        Phase phase;
        Phase phaseBeforeHolding;
        bool paused;
        uint256 coreEth; // wei, booked
        uint256 workingEth;
        uint256 opportunisticEth;
        uint256 collateralWeth; // wei, sum over wrappers of min(books, aToken balance)
        uint256 collateralValue; // USD 8 dp at the oracle price (0 if Invalid), rounded down
        uint256 debt; // 6 dp, sum of the variable debt token balances
        uint256 debtValue; // USD 8 dp (par)
        uint256 ltvBps; // rounded up; 0 without debt; type(uint256).max with debt and no collateral value
        uint256 poolCollateralBase; // from pool.getUserAccountData (0 if the call failed)
        uint256 poolDebtBase;
        uint256 healthFactor;
        uint256 stableHeld; // cUSDT + cUSDC, 6 dp, booked
        uint256 usdtzHeld; // 6 dp, booked
        uint256 usdtzCost; // 6 dp, cost basis of usdtzHeld
        uint256 nav; // USD 8 dp, rounded down, 0 if negative
        uint256 exposureValue; // USDTz at face, USD 8 dp
        uint256 exposureBps; // rounded up; type(uint256).max with USDTz and NAV <= 0
        uint8 rung;
        uint256 rungProgress;
        uint256 redeemedTotal;
        uint256 feesPaid; // desk fees: USDTz delivered - stablecoin received, 6 dp
        int256 realizedPnlEth; // set at close, exact wei
        int256 realizedPnlUsd; // set at close, USD 8 dp
        uint256 writtenOffUsdtz; // set at close: USDTz still held, at cost (6 dp)
        int256 ethPrice; // raw feed answer
        uint256 priceUpdatedAt;
        OracleStatus oracleStatus;
        uint256 legSeq; // the last emitted LegCompleted.legSeq
        uint256 fundedCapital; // wei
        uint256 ownerRepaid; // stablecoin the owner put in through ownerRepay, 6 dp
    }

    /// @notice The state after a leg, emitted in `LegCompleted` (a RiskView without pool fields).
    ///         The books (phase, buckets, rung, redeemed, stable, USDTz) are always there. The
    ///         marks (collateralWeth from the aTokens, debt from the debt tokens, ltvBps, nav,
    ///         exposureBps, ethPrice) are read only by the legs that need them: the risk-adding
    ///         legs for their caps (supply, borrow, buy, withdrawCollateral with debt), deleverage
    ///         (price bound, LTV not raised) and close (PnL). Every other leg runs no cap check and
    ///         skips those reads (a cold oracle, aToken and debt-token read cost about 50k gas per
    ///         leg): its snapshot has oracleStatus Unread and zero marks; riskView at the leg's
    ///         block gives them.
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
    event Split(uint256 coreEth, uint256 workingEth, uint256 opportunisticEth);
    event Supplied(address indexed wrapper, uint256 amount);
    event CollateralAdded(address indexed wrapper, uint256 amount);
    event CollateralWithdrawn(address indexed wrapper, uint256 amount);
    event Borrowed(address indexed stable, uint256 amount);
    event Bought(address indexed stable, uint256 amountIn, uint256 amountOut, uint256 priceE6);
    event Sold(address indexed stable, uint256 amountIn, uint256 amountOut, uint256 priceE6);
    event Redeemed(uint8 rung, address indexed stable, uint256 amount, uint256 received);
    /// @notice A failed tranche: `reason` is the revert data of the approve or the desk, or an
    ///         encoded `ApproveFailed(token)` / `ShortPayment(received, minimum)`.
    event RedemptionFailed(uint8 rung, uint256 amount, bytes reason);
    event Repaid(address indexed stable, uint256 amount, address indexed payer);
    event Deleveraged(
        address indexed wrapper, address indexed stable, uint256 collateralAmount, uint256 received, uint256 repaid
    );
    event Closed(
        int256 realizedPnlEth,
        int256 realizedPnlUsd,
        uint256 stableSurplus,
        uint256 writtenOffUsdtz,
        OracleStatus oracleStatus
    );
    /// @notice reason: 0 = failed redemption, 1 = owner, 2 = guardian.
    event HoldingEntered(Phase from, uint8 reason);
    event Resumed(Phase to);
    event PauseChanged(bool paused, address indexed by);
    event RiskParamSet(Param indexed param, uint256 oldValue, uint256 newValue);
    event Withdrawn(address indexed token, uint256 amount);
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
    error TrancheAboveRung(uint256 amount, uint256 rungSize);
    error NotOperator(address caller);
    error NotOwner(address caller);
    error NotGuardian(address caller);
    error NotPendingOwner(address caller);
    error UnknownWrapper(address token);
    error UnknownStable(address token);
    error ZeroAddress(string which);
    error RolesNotDistinct(address account);
    error WrongDecimals(address token, uint256 expected, uint256 actual);
    error BucketSplitInvalid(uint256 sum);
    error RungsInvalid(uint256 index);
    error CapAboveCeiling(uint256 value, uint256 ceiling);
    error NotTighter(uint256 current, uint256 proposed);
    /// @notice bucket: 0 core, 1 working, 2 opportunistic, 3 collateral, 4 stable, 5 USDTz, 6 surplus.
    error InsufficientBucket(uint8 bucket, uint256 available, uint256 needed);
    error DebtOutstanding(uint256 debt);
    error Paused();
    error ZeroAmount();
    error EthNotAccepted(address from);
    error EthTransferFailed();
    error CoreBreached(uint256 balance, uint256 coreEth);
    error RouterWethMismatch(address routerWeth);
    /// @notice Only as `RedemptionFailed.reason`: the approve returned false.
    error ApproveFailed(address token);
    /// @notice Only as `RedemptionFailed.reason`: the desk paid less than amount * (1 - maxDeskFee).
    error ShortPayment(uint256 received, uint256 minimum);

    /* OWNER */

    /// @notice Adds `msg.value` to the funded capital. FUNDED only; may be called repeatedly.
    function fund() external payable;
    /// @notice Repays `amount` (capped at the debt) of `stable` with the owner's own tokens
    ///         (pulled with transferFrom; approve the vault first). Refunds what the pool did not take.
    function ownerRepay(address stable, uint256 amount) external;
    /// @notice Leaves HOLDING, back to the phase before it.
    function resume() external;
    /// @notice Owner or guardian: blocks the risk-adding legs.
    function pause() external;
    /// @notice Owner only.
    function unpause() external;
    /// @notice Owner or guardian: enters HOLDING from any open phase.
    function hold() external;
    /// @notice Sends `amount` of `token` (address(0) = ETH) to the owner. Before CLOSED only what
    ///         exceeds the books (donations); after CLOSED anything.
    function withdraw(address token, uint256 amount) external;
    /// @notice Each setter only tightens (never looser than the current value, hence never looser
    ///         than the constructor value): lower for LTV, exposure, desk fee, oracle age, slippage;
    ///         higher for minimum discount, sell floor, ETH floor. Equal is a no-op that passes.
    function setMaxLtvBps(uint16 value) external;
    function setMaxExposureBps(uint16 value) external;
    function setMaxDeskFeeBps(uint16 value) external;
    function setOracleMaxAge(uint32 value) external;
    function setMinDiscountBps(uint16 value) external;
    function setMaxSlippageBps(uint16 value) external;
    function setSellFloorPrice(uint256 value) external;
    function setEthFloorPrice(uint256 value) external;
    /// @notice Replace a leaked or lost operator / guardian (non-zero, distinct from the other roles).
    function setOperator(address newOperator) external;
    function setGuardian(address newGuardian) external;
    function transferOwnership(address newOwner) external;
    function acceptOwnership() external;
    function renounceOwnership() external;
    function renounceOperator() external;
    function renounceGuardian() external;

    /* LEGS */

    /// @notice Books the funded ETH: core and working by their bps, opportunistic the remainder.
    function split() external;
    /// @notice Wraps `amount` of the working bucket with `wrapper` (WETH9/WETH10) and supplies it.
    function supply(address wrapper, uint256 amount) external;
    /// @notice Borrows `amount` of `stable` (cUSDT/cUSDC) at the variable rate; LTV checked after.
    function borrow(address stable, uint256 amount) external;
    /// @notice Swaps `amountIn` booked `stable` for USDTz on [stable, USDTz] with the caller's
    ///         minOut; the effective price must be <= (10_000 - minDiscountBps) * 100
    ///         (PriceAboveLimit), which is what bounds a pumped pair; LTV and exposure checked after.
    function buy(address stable, uint256 amountIn, uint256 minOut, uint256 deadline) external;
    /// @notice One tranche at the desk. Never reverts for a venue failure: on a failed approve, a
    ///         reverting desk or a payment below amount * (10_000 - maxDeskFeeBps) / 10_000 (rounded
    ///         up) it emits RedemptionFailed, resets the ladder to rung 0 and enters HOLDING.
    ///         Reverts only for caller errors (role, phase, unknown stable, zero, above books,
    ///         TrancheAboveRung). A rung's progress reaching its size moves to the next rung
    ///         (the top one repeats) with progress 0.
    /// @return ok whether the tranche succeeded.
    function redeem(address stable, uint256 amount) external returns (bool ok);
    /// @notice Swaps `amountIn` booked USDTz for `stable`; received * 1e6 >= sellFloorPrice * amountIn.
    function sell(address stable, uint256 amountIn, uint256 minOut, uint256 deadline) external;
    /// @notice Repays `amount` (type(uint256).max = min(books, debt)) of `stable` from the books.
    function repay(address stable, uint256 amount) external;
    /// @notice Wraps `amount` of the opportunistic bucket and supplies it. No oracle needed.
    function addCollateral(address wrapper, uint256 amount) external;
    /// @notice Withdraws `amount` of booked collateral, unwraps it into the working bucket.
    ///         With debt outstanding this is risk-adding (pause, HOLDING, oracle, LTV).
    function withdrawCollateral(address wrapper, uint256 amount) external;
    /// @notice Withdraws `collateralAmount` of `wrapper` collateral, sells it on [WETH9, stable] for
    ///         at least max(minOut, collateralAmount * price * (10_000 - maxSlippageBps) / 10_000)
    ///         (price = oracle if Fresh, else ethFloorPrice), repays `stable` with all of it. The
    ///         LTV may not rise: debtAfter * collateralBefore <= debtBefore * collateralAfter.
    function deleverage(address wrapper, address stable, uint256 collateralAmount, uint256 minOut, uint256 deadline)
        external;
    /// @notice Debt must be zero. Withdraws the collateral (books credited at most their booked
    ///         amount), unwraps, and books realizedPnlEth = ETH buckets - funded capital and
    ///         realizedPnlUsd = pnlEth * price / 1e18 + (stableHeld - ownerRepaid) * 100 (price 0
    ///         if Invalid; the oracle status is reported). USDTz left is written off at cost.
    function close() external;

    /* VIEWS */

    /// @notice The whole risk picture in one call. Never reverts (feed and pool reads are guarded).
    function riskView() external view returns (RiskView memory);
    /// @notice The ladder's rung sizes (k = 0, 1, 2).
    function rungSize(uint256 k) external view returns (uint256);
}
