// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {VaultInvariants} from "./invariant/VaultInvariants.t.sol";
import {VaultHandler} from "./invariant/VaultHandler.sol";
import {WorldHandler} from "./invariant/WorldHandler.sol";
import {LegCore} from "./invariant/LegCore.sol";

/// @title Scenarios
/// @notice Fixed sequences through the invariant suite's handlers (like tests/fuzz/test_scenarios.py):
///         every leg, world move and attacker shape runs in every `make test`, with the handlers'
///         per-call properties and the state-wide invariants (_checkAll, the owner's exit included)
///         asserted after each sequence. Seeds are the handlers' encodings: role 0 operator, 6
///         owner, 8 guardian, 9 stranger; stable 0 cUSDT, 3 cUSDC; wrapper 0 WETH9, 3 WETH10;
///         amount 10 x (bps - 1) = that fraction of what the books allow, 5 = all of it.
contract Scenarios is VaultInvariants {
    uint256 internal constant HALF = 49_990;
    uint256 internal constant TENTH = 9_990;
    uint256 internal constant ALL = 5;

    function _base() internal override {}

    /// @dev A handler call that must run (the handler reverts when the vault refuses the leg).
    function _ok(address target, bytes memory data) internal {
        (bool ok, bytes memory ret) = target.call(data);
        assertTrue(ok, string.concat("scenario step refused: ", vm.toString(ret)));
        assertTrue(bytes(h.violation()).length == 0, h.violation());
        assertTrue(bytes(w.violation()).length == 0, w.violation());
    }

    /// @dev A handler call whose leg the vault must refuse (LegRefused from the handler).
    function _refused(bytes memory data) internal {
        (bool ok, bytes memory ret) = address(h).call(data);
        assertTrue(!ok && bytes4(ret) == LegCore.LegRefused.selector, "scenario step should have been refused");
        assertTrue(bytes(h.violation()).length == 0, h.violation());
    }

    function _leg(bytes memory data) internal {
        _ok(address(h), data);
    }

    function _world(bytes memory data) internal {
        _ok(address(w), data);
    }

    function _positionedLoop() internal {
        _leg(abi.encodeCall(VaultHandler.supply, (0, 0, HALF)));
        _leg(abi.encodeCall(VaultHandler.addCollateral, (0, 3, TENTH)));
        _leg(abi.encodeCall(VaultHandler.borrow, (0, 0, HALF)));
        _leg(abi.encodeCall(VaultHandler.borrow, (0, 3, TENTH)));
        _leg(abi.encodeCall(VaultHandler.buy, (0, 0, HALF, 2)));
        _checkAll();
    }

    function test_scenario_fullLoop() public {
        _positionedLoop();
        _leg(abi.encodeCall(VaultHandler.redeem, (0, 0, ALL)));
        _leg(abi.encodeCall(VaultHandler.repay, (0, 0, 0, true)));
        _leg(abi.encodeCall(VaultHandler.repay, (0, 3, 0, true)));
        // the interest the TWAP wait accrued on cUSDC is above its books: the owner pays it
        _leg(abi.encodeCall(VaultHandler.ownerRepay, (0, 3, ALL)));
        _checkAll();
        _leg(abi.encodeCall(VaultHandler.withdrawCollateral, (0, 0, ALL)));
        _leg(abi.encodeCall(VaultHandler.close, (0, 0)));
        _leg(abi.encodeCall(VaultHandler.withdraw, (0, 0, ALL, false)));
        _leg(abi.encodeCall(VaultHandler.withdraw, (0, 2, ALL, false)));
        _checkAll();
        assertEq(h.legOk(10), 1, "close ran once");
    }

    function test_scenario_gating() public {
        _refused(abi.encodeCall(VaultHandler.borrow, (0, 0, HALF))); // SPLIT: no borrow
        _refused(abi.encodeCall(VaultHandler.supply, (6, 0, HALF))); // the owner cannot supply
        _refused(abi.encodeCall(VaultHandler.supply, (9, 0, HALF))); // nor a stranger
        _refused(abi.encodeCall(VaultHandler.fundOrSplit, (0, true))); // a second split
        _leg(abi.encodeCall(VaultHandler.admin, (2, 0, false))); // the guardian pauses
        _refused(abi.encodeCall(VaultHandler.supply, (0, 0, HALF))); // paused
        _leg(abi.encodeCall(VaultHandler.admin, (3, 0, false))); // the owner unpauses
        _leg(abi.encodeCall(VaultHandler.supply, (0, 0, HALF)));
        _world(abi.encodeCall(WorldHandler.feedRound, (0, false))); // stale
        _refused(abi.encodeCall(VaultHandler.borrow, (0, 0, HALF)));
        _world(abi.encodeCall(WorldHandler.priceMove, (2_500 * 256 + 1))); // a fresh $3,000 answer again
        _leg(abi.encodeCall(VaultHandler.borrow, (0, 0, HALF)));
        _leg(abi.encodeCall(VaultHandler.admin, (0, 0, false))); // the guardian holds
        _refused(abi.encodeCall(VaultHandler.borrow, (0, 0, TENTH)));
        _leg(abi.encodeCall(VaultHandler.withdraw, (0, 0, ALL, true))); // the owner takes the idle ETH back
        _checkAll();
        _leg(abi.encodeCall(VaultHandler.admin, (1, 0, false))); // resume
        _checkAll();
    }

    function test_scenario_sandwiches() public {
        _positionedLoop();
        // buy (pump before), sell (dump before), deleverage (WETH dumped before); same block and across a window
        _ok(address(h), abi.encodeCall(VaultHandler.sandwich, (0 | (3 << 32), HALF)));
        _ok(address(h), abi.encodeCall(VaultHandler.sandwich, (1 | (5 << 32) | (4 << 48), HALF)));
        _ok(address(h), abi.encodeCall(VaultHandler.sandwich, (2 | (6 << 32), ALL)));
        _ok(address(h), abi.encodeCall(VaultHandler.sandwich, (2 | (1 << 8) | (8 << 32) | (1 << 40), HALF)));
        _checkAll();
        assertEq(h.sandwiches(), 4, "four sandwiches");
    }

    function test_scenario_world() public {
        _positionedLoop();
        _world(abi.encodeCall(WorldHandler.repayOnBehalf, (0, 2)));
        _leg(abi.encodeCall(VaultHandler.repay, (0, 0, TENTH, false))); // books the repayment on behalf
        assertGt(h.rob(), 0, "RepaidOnBehalf booked");
        _world(abi.encodeCall(WorldHandler.thirdPartyTrade, (0, true, 100_000)));
        _world(abi.encodeCall(WorldHandler.donate, (0, 1_000)));
        _world(abi.encodeCall(WorldHandler.donate, (1, 1_000)));
        _world(abi.encodeCall(WorldHandler.donate, (3, 1_000)));
        _world(abi.encodeCall(WorldHandler.donate, (4, 1_000)));
        _world(abi.encodeCall(WorldHandler.deskFee, (4))); // 5%: above maxDeskFeeBps
        _leg(abi.encodeCall(VaultHandler.redeem, (0, 0, HALF))); // fails at the desk: HOLDING
        assertEq(uint256(vault.phase()), 5, "a failed redemption holds");
        _world(abi.encodeCall(WorldHandler.deskFee, (0)));
        _world(abi.encodeCall(WorldHandler.deskHalt, (true)));
        _world(abi.encodeCall(WorldHandler.deskDry, (2, false, false)));
        _world(abi.encodeCall(WorldHandler.reserveFreeze, (2, true)));
        _world(abi.encodeCall(WorldHandler.usdtzFreeze, (true)));
        _world(abi.encodeCall(WorldHandler.wethDrain, (0, false)));
        _world(abi.encodeCall(WorldHandler.timeJump, (5)));
        _world(abi.encodeCall(WorldHandler.priceMove, (0)));
        _checkAll(); // the owner's exit works even now (USDTz frozen stays)
        _world(abi.encodeCall(WorldHandler.wethDrain, (0, true)));
        _world(abi.encodeCall(WorldHandler.usdtzFreeze, (false)));
        _world(abi.encodeCall(WorldHandler.feedRound, (1, true)));
        _checkAll();
    }

    function test_scenario_params() public {
        // tighten the loss budget, queue a loosening back, accept early (refused), accept after the delay
        _ok(address(h), abi.encodeCall(VaultHandler.param, (4, 8, 2, 5_000, 0, false, 0)));
        _ok(address(h), abi.encodeCall(VaultHandler.param, (4, 8, 2, 5_000, 0, false, 1)));
        // tighten slippage, queue, revoke by the guardian
        _ok(address(h), abi.encodeCall(VaultHandler.param, (4, 5, 2, 5_000, 0, false, 3)));
        // every refusal: a stranger, past the limit, under the floor, past the initial value
        _ok(address(h), abi.encodeCall(VaultHandler.param, (0, 0, 0, 100, 8, false, 0)));
        _ok(address(h), abi.encodeCall(VaultHandler.param, (0, 0, 7, 100, 0, false, 0)));
        _ok(address(h), abi.encodeCall(VaultHandler.param, (0, 10, 8, 100, 0, false, 0)));
        _ok(address(h), abi.encodeCall(VaultHandler.param, (0, 1, 6, 100, 0, false, 0)));
        _ok(address(h), abi.encodeCall(VaultHandler.param, (2, 3, 0, 100, 1, false, 0))); // accept: nothing queued
        _checkAll();
        assertGt(h.loosenings(), 0, "a loosening went through the delay");
    }

    function test_scenario_underwater_budget() public {
        _underwater();
        // rebuild the handlers on the underwater state
        h = new VaultHandler(vault, lens, k, obsCum, obsTs, splitValue, splitPrice);
        w = new WorldHandler(vault, lens, k, h);
        h.setWorld(address(w));
        // operator sells below cost: loss booked until the 2 bps budget refuses
        for (uint256 i; i < 4; ++i) {
            (bool ok,) = address(h).call(abi.encodeCall(VaultHandler.sell, (0, 0, 29_990, 3)));
            ok;
            assertTrue(bytes(h.violation()).length == 0, h.violation());
        }
        _checkAll();
        assertGt(h.lossEvents() + h.budgetRefusals(), 0, "the budget was used or refused");
        // the owner's legs are not bound by it
        _leg(abi.encodeCall(VaultHandler.sell, (6, 0, TENTH, 0)));
        _checkAll();
    }
}
