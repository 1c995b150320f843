// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IRedemptionDesk
/// @notice The USDTz issuer's redemption desk: takes USDTz and pays a stablecoin (cUSDT or cUSDC)
///         1:1 minus its fee, out of the stablecoin it holds. No public code exists for the real
///         desk; this is the shape DealVault relies on.
interface IRedemptionDesk {
    /// @notice Pulls `amount` USDTz from the caller (it must have approved the desk) and pays
    ///         `amount - fee(amount)` of `payoutToken` to the caller.
    /// @return paid what was sent to the caller, in `payoutToken` units (6 decimals).
    function redeem(address payoutToken, uint256 amount) external returns (uint256 paid);

    /// @notice The fee the desk would charge for `amount` (proportional part plus flat part).
    function quoteFee(uint256 amount) external view returns (uint256 fee);

    /// @notice The redeemed asset (USDTz).
    function usdtz() external view returns (address);

    /// @notice Whether `token` is a stablecoin this desk pays out.
    function isPayoutToken(address token) external view returns (bool);

    /// @notice True while the issuer has halted redemptions.
    function halted() external view returns (bool);

    /// @notice Largest `amount` accepted in one request.
    function maxPerRequest() external view returns (uint256);
}
