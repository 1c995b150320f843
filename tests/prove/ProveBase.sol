// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @dev The one cheatcode the proofs use (halmos answers at the usual hevm address; forge-std is
///      not installed).
interface IProveCheats {
    function assume(bool condition) external pure;
}

/// @title ProveBase
/// @notice What the halmos proofs under tests/prove share.
abstract contract ProveBase {
    IProveCheats internal constant CHEATS = IProveCheats(address(uint160(uint256(keccak256("hevm cheat code")))));

    /// @dev Drops every path where `condition` is false (halmos's vm.assume).
    function _assume(bool condition) internal pure {
        CHEATS.assume(condition);
    }
}
