// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {DealVaultExtension} from "../../contracts/DealVaultExtension.sol";

/// @title ParamVault
/// @notice Test-only (tests/prove): the real DealVaultExtension, whose setParam / acceptParam the
///         vault runs by DELEGATECALL on its own storage, with raw writes to that storage so a proof
///         can start from any state of the parameter slots (0-3), their initial copies (4-7) and
///         the queue.
contract ParamVault is DealVaultExtension {
    constructor() DealVaultExtension(_noSetup()) {}

    function _noSetup() private pure returns (Setup memory s) {}

    function pokeWord(uint256 slot, uint256 word) external {
        assembly ("memory-safe") {
            sstore(slot, word)
        }
    }

    function pokeInitial(uint256 slot, uint256 word) external {
        initialWords[slot] = word;
    }

    function pokeQueued(uint256 p, uint256 q) external {
        queued[p] = q;
    }

    function word(uint256 slot) external view returns (uint256) {
        return _word(slot);
    }

    function queuedOf(uint256 p) external view returns (uint256) {
        return queued[p];
    }
}
