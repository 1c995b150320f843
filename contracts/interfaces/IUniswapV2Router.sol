// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IUniswapV2Router
/// @notice The subset of Uniswap V2's Router02 that DealVault uses.
interface IUniswapV2Router {
    /// @notice The WETH (WETH9) the router wraps and unwraps.
    function WETH() external view returns (address);

    /// @notice The factory whose pairs the router trades on.
    function factory() external view returns (address);

    /// @notice The output of each hop for `amountIn` along `path`, after the 0.3% fee.
    function getAmountsOut(uint256 amountIn, address[] calldata path) external view returns (uint256[] memory amounts);

    /// @notice Swaps exactly `amountIn` along `path`, reverting if the output is below `amountOutMin`.
    function swapExactTokensForTokens(
        uint256 amountIn,
        uint256 amountOutMin,
        address[] calldata path,
        address to,
        uint256 deadline
    ) external returns (uint256[] memory amounts);
}
