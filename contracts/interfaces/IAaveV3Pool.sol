// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IAaveV3Pool
/// @notice The subset of Aave V3's IPool (@aave/core-v3 1.19.3) that DealVault uses.
/// @dev `ReserveData` is copied field for field from
///      the DataTypes.sol of the aave core-v3 npm package (v3.0 layout).
interface IAaveV3Pool {
    struct ReserveConfigurationMap {
        uint256 data;
    }

    struct ReserveData {
        ReserveConfigurationMap configuration;
        uint128 liquidityIndex;
        uint128 currentLiquidityRate;
        uint128 variableBorrowIndex;
        uint128 currentVariableBorrowRate;
        uint128 currentStableBorrowRate;
        uint40 lastUpdateTimestamp;
        uint16 id;
        address aTokenAddress;
        address stableDebtTokenAddress;
        address variableDebtTokenAddress;
        address interestRateStrategyAddress;
        uint128 accruedToTreasury;
        uint128 unbacked;
        uint128 isolationModeTotalDebt;
    }

    /// @notice Pulls `amount` of `asset` from the caller and mints aTokens to `onBehalfOf`.
    function supply(address asset, uint256 amount, address onBehalfOf, uint16 referralCode) external;

    /// @notice Burns aTokens of the caller and sends `amount` (type(uint256).max = all) of `asset` to `to`.
    /// @return the amount withdrawn.
    function withdraw(address asset, uint256 amount, address to) external returns (uint256);

    /// @notice Borrows `amount` of `asset` (interestRateMode 2 = variable) against the collateral of `onBehalfOf`.
    function borrow(address asset, uint256 amount, uint256 interestRateMode, uint16 referralCode, address onBehalfOf)
        external;

    /// @notice Pulls up to `amount` of `asset` from the caller and repays the debt of `onBehalfOf`.
    /// @return the amount actually repaid (at most the outstanding debt).
    function repay(address asset, uint256 amount, uint256 interestRateMode, address onBehalfOf)
        external
        returns (uint256);

    /// @notice The reserve's current variable borrow index (ray): a debt token balance is its scaled
    ///         balance times this, rounded half up.
    function getReserveNormalizedVariableDebt(address asset) external view returns (uint256);

    /// @notice The reserve's state and its token addresses.
    function getReserveData(address asset) external view returns (ReserveData memory);

    /// @notice The user's position across all reserves, in the pool's base currency (USD, 8 decimals).
    function getUserAccountData(address user)
        external
        view
        returns (
            uint256 totalCollateralBase,
            uint256 totalDebtBase,
            uint256 availableBorrowsBase,
            uint256 currentLiquidationThreshold,
            uint256 ltv,
            uint256 healthFactor
        );
}

/// @notice Aave V3 debt and aTokens: the balance before the index is applied.
interface IScaledBalanceToken {
    function scaledBalanceOf(address user) external view returns (uint256);
}
