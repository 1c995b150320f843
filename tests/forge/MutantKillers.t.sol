// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IDealVaultTypes} from "../../contracts/interfaces/IDealVault.sol";
import {IDealVaultLens} from "../../contracts/interfaces/IDealVaultLens.sol";
import {Fixture} from "./Fixture.sol";

/// @title MutantKillersTest
/// @notice Tests written to kill survivors of `make mutate` (tools/mutate/triage.yaml names each
///         mutant and the test here that kills it): the exact refusal (custom error and its
///         arguments) and the exact books after a leg, where the invariant suite checks only that
///         something refused or that a bound holds.
contract MutantKillersTest is Fixture {
    function setUp() public {
        _deployVault();
    }

    /// @dev ownerRepay with nothing owed is refused up front (ZeroAmount), before pulling anything.
    function test_ownerRepay_nothing_owed_is_ZeroAmount() public {
        vm.prank(k.operator);
        vault.supply(k.weth9, 10 ether);
        vm.prank(k.owner);
        vm.expectRevert(IDealVaultTypes.ZeroAmount.selector);
        vault.ownerRepay(k.cusdt, 1_000 * USD6);
    }
}
