// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IDealVaultTypes} from "../../contracts/interfaces/IDealVault.sol";
import {IDealVaultLens} from "../../contracts/interfaces/IDealVaultLens.sol";
import {Fixture} from "./Fixture.sol";

contract SmokeTest is Fixture {
    function setUp() public {
        _deployVault();
    }

    function test_fixture_split() public view {
        IDealVaultLens.RiskView memory v = lens.riskView(address(vault));
        assertEq(uint256(v.phase), uint256(IDealVaultTypes.Phase.SPLIT), "phase");
        assertEq(v.coreEth, core0, "core");
        assertEq(address(vault).balance, FUND_WEI, "eth");
        assertTrue(v.ethPrice > 0, "price");
    }

    function test_supply_borrow() public {
        vm.startPrank(k.operator);
        vault.supply(k.weth9, 100 ether);
        vault.borrow(k.cusdt, 10_000 * USD6);
        vm.stopPrank();
        IDealVaultLens.RiskView memory v = lens.riskView(address(vault));
        assertEq(uint256(v.phase), uint256(IDealVaultTypes.Phase.WORKING), "phase");
        assertGe(v.debt, 10_000 * USD6, "debt");
    }
}
