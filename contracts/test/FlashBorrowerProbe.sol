// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC3156FlashBorrower} from "@openzeppelin/contracts/interfaces/IERC3156FlashBorrower.sol";
import {IERC3156FlashLender} from "@openzeppelin/contracts/interfaces/IERC3156FlashLender.sol";

/// @title FlashBorrowerProbe
/// @notice Test-only ERC-3156 borrower: takes a flash loan from `lender` of the lender's own token
///         and records what it saw inside the callback (amount, fee, its balance, the token's total
///         supply). With `approveRepayment` off it does not approve the repayment, so the loan must fail.
contract FlashBorrowerProbe is IERC3156FlashBorrower {
    /// @notice The flash lender (and the token borrowed, as for WETH10).
    IERC3156FlashLender public immutable lender;
    /// @notice Whether the callback approves the lender to take back amount + fee.
    bool public approveRepayment = true;

    /// @notice What the last callback saw.
    address public seenInitiator;
    uint256 public seenAmount;
    uint256 public seenFee;
    uint256 public seenBalance;
    uint256 public seenTotalSupply;

    /// @notice The callback came from `caller`, not from the lender.
    error UntrustedLender(address caller);

    constructor(IERC3156FlashLender lender_) {
        lender = lender_;
    }

    /// @notice Toggles whether the callback approves the repayment.
    function setApproveRepayment(bool on) external {
        approveRepayment = on;
    }

    /// @notice Flash-borrows `amount` of the lender's token.
    function borrow(uint256 amount) external {
        lender.flashLoan(this, address(lender), amount, "");
    }

    /// @inheritdoc IERC3156FlashBorrower
    function onFlashLoan(address initiator, address token, uint256 amount, uint256 fee, bytes calldata)
        external
        override
        returns (bytes32)
    {
        if (msg.sender != address(lender)) revert UntrustedLender(msg.sender);
        seenInitiator = initiator;
        seenAmount = amount;
        seenFee = fee;
        seenBalance = IERC20(token).balanceOf(address(this));
        seenTotalSupply = IERC20(token).totalSupply();
        if (approveRepayment) IERC20(token).approve(msg.sender, amount + fee);
        return keccak256("ERC3156FlashBorrower.onFlashLoan");
    }
}
