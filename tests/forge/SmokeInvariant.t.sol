// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IDealVault} from "../../contracts/interfaces/IDealVault.sol";
import {Fixture, Kit} from "./Fixture.sol";
import {TestBase} from "./utils/Vm.sol";

contract SmokeHandler is TestBase {
    IDealVault internal vault;
    Kit internal k;

    constructor(IDealVault v, Kit memory kit) {
        vault = v;
        k = kit;
    }

    function supply(uint256 amount, bool ten) external {
        vm.prank(k.operator);
        try vault.supply(ten ? k.weth10 : k.weth9, amount % 400 ether) {} catch {}
    }

    function borrow(uint256 amount, bool usdc) external {
        vm.prank(k.operator);
        try vault.borrow(usdc ? k.cusdc : k.cusdt, amount % 1_000_000e6) {} catch {}
    }
}

contract SmokeInvariantTest is Fixture {
    SmokeHandler internal h;

    function setUp() public {
        _deployVault();
        h = new SmokeHandler(vault, k);
    }

    function targetContracts() public view returns (address[] memory t) {
        t = new address[](1);
        t[0] = address(h);
    }

    function invariant_coreUntouched() public view {
        assertGe(address(vault).balance, core0, "core");
        assertEq(lens.riskView(address(vault)).coreEth, core0, "core book");
    }
}
