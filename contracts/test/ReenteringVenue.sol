// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title ReenteringVenue
/// @notice Test double for proving a caller's reentrancy guard. Set as a venue (Uniswap V2
///         router, redemption desk, or anything: the fallback catches every other call and plain
///         ETH), it calls `target` with the armed calldata and bubbles up the callback's revert
///         data unchanged, so a test can expect e.g. ReentrancyGuardReentrantCall().
/// @dev If the callback succeeds (the guard did not fire) it reverts with ReentrySucceeded, so the
///      test fails loudly. Each arm is one-shot within a transaction: it is cleared before the
///      callback, so a nested call into this venue reverts with NotArmed instead of recursing.
contract ReenteringVenue {
    /// @notice Contract called back into.
    address public target;
    /// @notice Calldata of the callback.
    bytes public data;
    /// @notice What `WETH()` answers, for callers that check a router's WETH (e.g. DealVault's
    ///         constructor); zero until set.
    address public WETH;

    /// @notice The venue was called but no callback is armed.
    error NotArmed();
    /// @notice The callback into `target` succeeded and returned `returnData`: no guard fired.
    error ReentrySucceeded(address target, bytes returnData);

    /// @notice The callback was armed (target zero disarms).
    event Armed(address indexed target, bytes data);

    /// @notice Arms the callback: the next venue call will call `target_` with `data_`.
    function arm(address target_, bytes calldata data_) external {
        target = target_;
        data = data_;
        emit Armed(target_, data_);
    }

    /// @notice What `factory()` answers, for callers that find pairs through a router's factory
    ///         (DealVault's constructor finds its USDTz pairs so).
    address public factory;

    /// @notice Sets what `factory()` answers.
    function setFactory(address factory_) external {
        factory = factory_;
    }

    /// @notice Sets what `WETH()` answers (the router's wrapped ETH).
    function setWETH(address weth_) external {
        WETH = weth_;
    }

    /// @notice Uniswap V2 router quote: 1:1 along the path, no callback (it is a view), so a
    ///         caller that quotes first reaches the swap, where the callback happens.
    function getAmountsOut(uint256 amountIn, address[] calldata path) external pure returns (uint256[] memory amounts) {
        amounts = new uint256[](path.length);
        for (uint256 i; i < path.length; ++i) {
            amounts[i] = amountIn;
        }
    }

    /// @notice Uniswap V2 router entry point; only calls back.
    function swapExactTokensForTokens(uint256, uint256, address[] calldata, address, uint256)
        external
        returns (uint256[] memory)
    {
        _reenter();
    }

    /// @notice IRedemptionDesk entry point; only calls back.
    function redeem(address, uint256) external returns (uint256) {
        _reenter();
    }

    /// @notice Any other venue function: only calls back.
    fallback() external payable {
        _reenter();
    }

    /// @notice Plain ETH sent by the venue's caller: only calls back.
    receive() external payable {
        _reenter();
    }

    /// @dev Always reverts: with the callback's revert data, or ReentrySucceeded.
    function _reenter() private {
        address callee = target;
        if (callee == address(0)) revert NotArmed();
        bytes memory callData = data;
        target = address(0);
        delete data;

        (bool ok, bytes memory ret) = callee.call(callData);
        if (ok) revert ReentrySucceeded(callee, ret);
        assembly ("memory-safe") {
            revert(add(ret, 32), mload(ret))
        }
    }
}
