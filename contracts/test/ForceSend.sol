// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title ForceSend
/// @notice Test double: forces ETH into a contract whose receive() rejects the sender, the way
///         any stranger can (selfdestruct credits the beneficiary without calling it).
contract ForceSend {
    /// @notice Sends `msg.value` to `to` by selfdestruct (works for any `to`, even one that
    ///         rejects plain transfers).
    function forceSend(address payable to) external payable {
        selfdestruct(to);
    }
}
