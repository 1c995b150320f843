// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title GriefingDesk
/// @notice Test-only redemption desk that attacks its caller instead of redeeming: it either burns
///         every unit of gas it is given, or reverts with `revertBytes` bytes of data. A vault must
///         turn either into a failed tranche (HOLDING), not into a reverted leg.
contract GriefingDesk {
    /// @notice 0: burn all the gas; 1: revert with `revertBytes` bytes.
    uint256 public mode;
    uint256 public revertBytes;

    function setMode(uint256 mode_, uint256 revertBytes_) external {
        mode = mode_;
        revertBytes = revertBytes_;
    }

    /// @notice IRedemptionDesk.redeem's signature; never pays.
    function redeem(address, uint256) external view returns (uint256) {
        if (mode == 0) {
            assembly {
                for {} 1 {} {}
            }
        }
        uint256 n = revertBytes;
        assembly {
            revert(0, n)
        }
    }
}
