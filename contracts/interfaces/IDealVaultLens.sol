// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IDealVaultTypes} from "./IDealVault.sol";

/// @title IDealVaultLens
/// @notice Every read-only view of a DealVault. One lens serves every vault on a chain: it holds
///         nothing and can do nothing; it reads the vault's storage through `extSloads` (one call
///         for the whole state), its Setup through `setup()`, and the venues directly. Apart from
///         `twap` on a pair without USDTz reserves, no view reverts on a failing venue (feed,
///         pool): a failed read is 0.
interface IDealVaultLens {
    /// @notice The risk parameters (the eleven owner-set ones in IDealVaultTypes.Param order, then the
    ///         fixed ones), in the units of IDealVault.RiskParams.
    struct Params {
        uint256 maxLtvBps;
        uint256 maxExposureBps;
        uint256 maxDeskFeeBps;
        uint256 oracleMaxAge;
        uint256 minDiscountBps;
        uint256 maxSlippageBps;
        uint256 sellFloorPrice;
        uint256 ethFloorPrice;
        uint256 maxOperatorLossBps;
        uint256 twapWindow;
        uint256 loosenDelay;
        uint256 coreBps;
        uint256 workingBps;
        uint256 opportunisticBps;
        uint256[3] rungs;
        uint256 minTranche;
    }

    /// @notice The whole risk picture.
    struct RiskView {
        IDealVaultTypes.Phase phase;
        IDealVaultTypes.Phase phaseBeforeHolding;
        bool paused;
        uint256 coreEth; // wei, booked
        uint256 workingEth;
        uint256 opportunisticEth;
        uint256 collateralWeth; // wei, sum over wrappers of min(books, aToken balance)
        uint256 collateralValue; // USD 8 dp at the oracle price (0 if Invalid), rounded down
        uint256 debt; // 6 dp, as the caps count it: the pool debt plus repaidOnBehalf
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
        IDealVaultTypes.OracleStatus oracleStatus;
        uint256 legSeq; // the last emitted LegCompleted.legSeq
        uint256 fundedCapital; // wei
        uint256 ownerRepaid; // stablecoin the owner put in through ownerRepay, 6 dp
        uint256 repaidOnBehalf; // stablecoin others repaid for the vault on the pool, 6 dp
        uint256 poolDebt; // 6 dp, the debt tokens' balances (what the pool is owed now)
        uint256 operatorLoss; // 6 dp USD, the operator legs' realized loss so far
        uint256 lossBudget; // 6 dp USD: splitValue * maxOperatorLossBps / 10_000
        uint256 splitValue; // 6 dp USD, the funded capital at the oracle price at split
        uint256 ethReturned; // wei the owner took back from the buckets in HOLDING
        uint256 collateralBooked; // wei, the books (before the aToken balances)
    }

    /// @notice A pair's prices for the TWAP check.
    struct Twap {
        uint256 spotE6; // the spot price of USDTz now, 1e6 = $1
        uint256 twapE6; // the TWAP since the observation (0 if none, or not a second old)
        uint256 observedAt; // the observation's timestamp (0: never)
        uint256 readyAt; // observedAt + twapWindow: the first time a buy may use it
        uint256 spotX112; // spot, UQ112x112 (exact)
        uint256 twapX112; // TWAP, UQ112x112 (exact)
    }

    /// @param vault the vault.
    /// @return the vault's venues, tokens, buckets, rungs and minimum tranche (its `setup()`).
    function setup(address vault) external view returns (IDealVaultTypes.Setup memory);
    /// @param vault the vault.
    /// @return v the whole risk picture, as the caps see it, in one call.
    function riskView(address vault) external view returns (RiskView memory v);
    /// @param vault the vault.
    /// @return the risk parameters now.
    function params(address vault) external view returns (Params memory);
    /// @param vault the vault.
    /// @return the risk parameters as the constructor set them (a loosening's bound).
    function initialParams(address vault) external view returns (Params memory);
    /// @param vault the vault.
    /// @return values the queued loosenings' values, in IDealVaultTypes.Param order
    /// @return validAt when each may be accepted (0: nothing queued)
    function queuedParams(address vault) external view returns (uint256[11] memory values, uint256[11] memory validAt);
    /// @param vault the vault.
    /// @param wrapper WETH9 or WETH10.
    /// @return the booked collateral, wei (0 for any other token).
    function collateralOf(address vault, address wrapper) external view returns (uint256);
    /// @param vault the vault.
    /// @param stable cUSDT or cUSDC.
    /// @return the booked stablecoin, 6 dp (0 for any other token).
    function stableOf(address vault, address stable) external view returns (uint256);
    /// @param vault the vault.
    /// @param stable cUSDT or cUSDC: which USDTz pair.
    /// @return the pair's spot price, its TWAP since the vault's observation, and when a buy may use it.
    function twap(address vault, address stable) external view returns (Twap memory);
}
