// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title IWETH
/// @notice WETH9's wrap/unwrap; WETH10 is compatible for `deposit` and `withdraw`.
/// @dev WETH9 sends the ETH of `withdraw` with `transfer` (2300 gas): the receiver must be cheap.
interface IWETH is IERC20 {
    /// @notice Wraps `msg.value` ETH into the same amount of WETH for the caller.
    function deposit() external payable;

    /// @notice Burns `amount` WETH of the caller and sends it `amount` ETH.
    function withdraw(uint256 amount) external;
}
