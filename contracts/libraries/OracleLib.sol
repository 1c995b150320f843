// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IAggregatorV3} from "../interfaces/IAggregatorV3.sol";
import {IDealVaultTypes} from "../interfaces/IDealVault.sol";

/// @title OracleLib
/// @notice Reads the ETH/USD feed once per leg; never reverts on read, reverts only in `fresh`.
library OracleLib {
    /// @dev Answers above this (1e8 USD per ETH, 8 dp) are Invalid; it keeps every product in
    ///      RiskLib far from overflow so that riskView cannot revert on an absurd feed.
    uint256 internal constant MAX_PRICE = 1e16;

    struct Price {
        int256 answer;
        uint256 updatedAt;
        IDealVaultTypes.OracleStatus status;
        bool read;
    }

    /// @notice latestRoundData with a low-level staticcall: a reverting or malformed feed is Invalid.
    function read(address feed, uint256 maxAge) internal view returns (Price memory p) {
        p.read = true;
        (bool ok, bytes memory ret) = feed.staticcall(abi.encodeCall(IAggregatorV3.latestRoundData, ()));
        if (!ok || ret.length < 160) {
            p.status = IDealVaultTypes.OracleStatus.Invalid;
            return p;
        }
        // roundIds decoded as uint256: an out-of-range uint80 must not make the read revert
        (, p.answer,, p.updatedAt,) = abi.decode(ret, (uint256, int256, uint256, uint256, uint256));
        // an updatedAt in the future is a broken feed, not a fresh one
        if (p.answer <= 0 || uint256(p.answer) > MAX_PRICE || p.updatedAt > block.timestamp) {
            p.status = IDealVaultTypes.OracleStatus.Invalid;
        } else if (block.timestamp - p.updatedAt > maxAge) {
            p.status = IDealVaultTypes.OracleStatus.Stale;
        }
        // else Fresh (the default)
    }

    /// @notice The price of a Fresh read, else InvalidPrice / StaleOracle.
    function fresh(Price memory p, uint256 maxAge) internal pure returns (uint256) {
        if (p.status == IDealVaultTypes.OracleStatus.Invalid) revert IDealVaultTypes.InvalidPrice(p.answer);
        if (p.status == IDealVaultTypes.OracleStatus.Stale) revert IDealVaultTypes.StaleOracle(p.updatedAt, maxAge);
        return uint256(p.answer);
    }

    /// @notice The price if Invalid-free, else 0 (for reporting).
    function valueOrZero(Price memory p) internal pure returns (uint256) {
        return p.status == IDealVaultTypes.OracleStatus.Invalid ? 0 : uint256(p.answer);
    }
}
