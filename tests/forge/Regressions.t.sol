// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {VaultInvariants} from "./invariant/VaultInvariants.t.sol";
import {VaultHandler} from "./invariant/VaultHandler.sol";
import {WorldHandler} from "./invariant/WorldHandler.sol";

/// @title Regressions
/// @notice Every counterexample the invariant campaign found, replayed as a named test.
contract RegressionsPositioned is VaultInvariants {
    function _base() internal override {
        _positioned();
    }

    function _call(address target, bytes memory data) internal {
        (bool ok,) = target.call(data);
        ok;
    }

    function _assertClean() internal {
        assertTrue(bytes(h.violation()).length == 0, h.violation());
        assertTrue(bytes(w.violation()).length == 0, w.violation());
        _checkAll();
    }

    /// @dev A third party repays the whole cUSDT debt (the reserve's only borrower); time passes; the
    ///      vault's next borrow books the repayment at the index the pool's view reports (grown at the
    ///      base rate) although Aave's updateState leaves the index unchanged on a reserve without
    ///      debt: RepaidOnBehalf = scaled x the index before the leg (0.0057 USD above the pool's value
    ///      here: conservative, counted as debt by the caps), not x the index after it.
    function test_regression_repaidOnBehalfAtTheIndexTheVaultSaw() public {
        _call(address(w), abi.encodeCall(WorldHandler.repayOnBehalf, (2639111820884266467243058305829341993767461, 1027366956370)));
        _call(address(h), abi.encodeCall(VaultHandler.buy, (467110360440, 7607784442, 1, 370618395995540457081187)));
        _call(address(h), abi.encodeCall(VaultHandler.borrow, (1321017912958059014443001066880929927593116153813449461174, 8238806, 34359237812)));
        _assertClean();
    }
}

contract RegressionsUnderwater is VaultInvariants {
    function _base() internal override {
        _underwater();
    }

    /// @dev A sandwiched operator sell after the feed went Invalid (answer 0, negative or absurd) on
    ///      the underwater base: the exposure (USDTz / NAV at the feed's price) is undefined, so the
    ///      "risk-reducing legs never raise the exposure" property is checked only with a valid price.
    function test_regression_operatorSellUnderInvalidOracle() public {
        (bool ok,) = address(h).call(abi.encodeCall(VaultHandler.sandwich,
            (47560131840234651440704575735905975648288502789248141, 28717901805097904342)));
        (ok,) = address(w).call(abi.encodeCall(WorldHandler.priceMove, (185196353744)));
        (ok,) = address(h).call(abi.encodeCall(VaultHandler.sandwich,
            (1, 299684830760839566699350045801442375781850308450698742884747)));
        ok;
        assertTrue(bytes(h.violation()).length == 0, h.violation());
        _checkAll();
    }
}
