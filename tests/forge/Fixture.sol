// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {DealVault} from "../../contracts/DealVault.sol";
import {DealVaultLens} from "../../contracts/DealVaultLens.sol";
import {IDealVault, IDealVaultTypes} from "../../contracts/interfaces/IDealVault.sol";
import {IDealVaultLens} from "../../contracts/interfaces/IDealVaultLens.sol";
import {TestBase, Vm} from "./utils/Vm.sol";

interface IPriceFeed {
    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80);
}

/// @title Kit
/// @notice The kit's addresses (tools/forge/state.py's kit.json), read once by the fixture.
struct Kit {
    address weth9;
    address weth10;
    address cusdt;
    address cusdc;
    address usdtz;
    address ethUsdFeed;
    address feedOwner;
    address pool;
    address poolConfigurator;
    address router;
    address desk;
    address stableFeed;
    address stableFeedOwner;
    address pairUsdtzCusdt;
    address pairUsdtzCusdc;
    address pairWethCusdt;
    address pairWethCusdc;
    address aWeth9;
    address aWeth10;
    address aCusdt;
    address aCusdc;
    address debtCusdt;
    address debtCusdc;
    address aaveAdmin;
    address issuer;
    address deskOperator;
    address deployer;
    address owner;
    address operator;
    address guardian;
    address stranger;
    address attacker;
    address benefactor;
    address drainer;
    address trader;
}

/// @title Fixture
/// @notice The kit's chain installed in-process (`vm.loadAllocs` of tools/forge/state.py's dump: the
///         real Aave V3, Uniswap V2, WETH9 and FiatToken bytecode at the kit's addresses), the clock
///         and chain id of the dump, then a DealVault deployed from forge's own compilation of
///         contracts/ (so a mutant of the vault is what runs), funded and split, the TWAP window passed.
///         The state directory is `$DV_FORGE_STATE` (tools/forge/run.sh copies it under .forge/state).
abstract contract Fixture is TestBase {
    uint256 internal constant FUND_WEI = 1_000 ether;
    uint256 internal constant USD6 = 1e6;

    Kit internal k;
    IDealVault internal vault;
    IDealVaultLens internal lens;
    IDealVaultTypes.RiskParams internal risk;
    uint256 internal core0;
    uint256 internal t0;
    /// @dev split's observations (the USDTz pairs' cumulative prices) and value.
    uint256[2] internal splitCum;
    uint256 internal splitTs;
    uint256 internal splitValue;
    uint256 internal splitPrice;

    function _loadKit() internal {
        string memory dir = ".forge/state";
        vm.loadAllocs(string.concat(dir, "/alloc.json"));
        string memory j = vm.readFile(string.concat(dir, "/kit.json"));
        vm.chainId(vm.parseJsonUint(j, ".chainId"));
        vm.roll(vm.parseJsonUint(j, ".block") + 1);
        t0 = vm.parseJsonUint(j, ".timestamp") + 1;
        vm.warp(t0);
        k.weth9 = vm.parseJsonAddress(j, ".weth9");
        k.weth10 = vm.parseJsonAddress(j, ".weth10");
        k.cusdt = vm.parseJsonAddress(j, ".cusdt");
        k.cusdc = vm.parseJsonAddress(j, ".cusdc");
        k.usdtz = vm.parseJsonAddress(j, ".usdtz");
        k.ethUsdFeed = vm.parseJsonAddress(j, ".ethUsdFeed");
        k.feedOwner = vm.parseJsonAddress(j, ".feedOwner");
        k.pool = vm.parseJsonAddress(j, ".pool");
        k.poolConfigurator = vm.parseJsonAddress(j, ".poolConfigurator");
        k.router = vm.parseJsonAddress(j, ".router");
        k.desk = vm.parseJsonAddress(j, ".desk");
        k.stableFeed = vm.parseJsonAddress(j, ".stableFeed");
        k.stableFeedOwner = vm.parseJsonAddress(j, ".stableFeedOwner");
        k.pairUsdtzCusdt = vm.parseJsonAddress(j, ".pairUsdtzCusdt");
        k.pairUsdtzCusdc = vm.parseJsonAddress(j, ".pairUsdtzCusdc");
        k.pairWethCusdt = vm.parseJsonAddress(j, ".pairWethCusdt");
        k.pairWethCusdc = vm.parseJsonAddress(j, ".pairWethCusdc");
        k.aWeth9 = vm.parseJsonAddress(j, ".aWeth9");
        k.aWeth10 = vm.parseJsonAddress(j, ".aWeth10");
        k.aCusdt = vm.parseJsonAddress(j, ".aCusdt");
        k.aCusdc = vm.parseJsonAddress(j, ".aCusdc");
        k.debtCusdt = vm.parseJsonAddress(j, ".debtCusdt");
        k.debtCusdc = vm.parseJsonAddress(j, ".debtCusdc");
        k.aaveAdmin = vm.parseJsonAddress(j, ".aaveAdmin");
        k.issuer = vm.parseJsonAddress(j, ".issuer");
        k.deskOperator = vm.parseJsonAddress(j, ".deskOperator");
        k.deployer = vm.parseJsonAddress(j, ".roles.deployer");
        k.owner = vm.parseJsonAddress(j, ".roles.owner");
        k.operator = vm.parseJsonAddress(j, ".roles.operator");
        k.guardian = vm.parseJsonAddress(j, ".roles.guardian");
        k.stranger = vm.parseJsonAddress(j, ".roles.stranger");
        k.attacker = vm.parseJsonAddress(j, ".roles.attacker");
        k.benefactor = vm.parseJsonAddress(j, ".roles.benefactor");
        k.drainer = vm.parseJsonAddress(j, ".roles.drainer");
        k.trader = vm.parseJsonAddress(j, ".roles.trader");
    }

    /// @dev tests/model.py's DEFAULT_RISK (the fuzzer's), written out.
    function _defaultRisk() internal pure returns (IDealVaultTypes.RiskParams memory r) {
        r.maxLtvBps = 3000;
        r.maxExposureBps = 2500;
        r.coreBps = 5000;
        r.workingBps = 3000;
        r.opportunisticBps = 2000;
        r.rungs = [uint256(50_000 * USD6), 250_000 * USD6, 1_000_000 * USD6];
        r.maxDeskFeeBps = 50;
        r.oracleMaxAge = 3600;
        r.minDiscountBps = 500;
        r.maxSlippageBps = 100;
        r.sellFloorPrice = 850_000;
        r.ethFloorPrice = 1_000e8;
        r.maxOperatorLossBps = 50;
        r.twapWindow = 60;
        r.loosenDelay = 86_400;
        r.minTranche = 1_000 * USD6;
    }

    /// @dev The kit, then the vault (deployed by the deployer), the lens, the owner's approvals,
    ///      fund + split, and the TWAP window passed.
    function _deployVault() internal {
        _loadKit();
        risk = _defaultRisk();
        IDealVaultTypes.Config memory cfg = IDealVaultTypes.Config({
            weth9: k.weth9, weth10: k.weth10, cusdt: k.cusdt, cusdc: k.cusdc, usdtz: k.usdtz, pool: k.pool,
            router: k.router, desk: k.desk, ethUsdFeed: k.ethUsdFeed, owner: k.owner, operator: k.operator,
            guardian: k.guardian, risk: risk
        });
        vm.prank(k.deployer);
        vault = IDealVault(address(new DealVault(cfg)));
        lens = IDealVaultLens(address(new DealVaultLens()));
        vm.label(address(vault), "vault");
        vm.startPrank(k.owner);
        IERC20(k.cusdt).approve(address(vault), type(uint256).max);
        IERC20(k.cusdc).approve(address(vault), type(uint256).max);
        vm.deal(k.owner, FUND_WEI * 2);
        vault.fund{value: FUND_WEI}();
        vm.stopPrank();
        vm.recordLogs();
        vm.prank(k.operator);
        vault.split();
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter != address(vault)) continue;
            if (logs[i].topics[0] == IDealVaultTypes.Observed.selector) {
                uint256 which = address(uint160(uint256(logs[i].topics[1]))) == k.cusdt ? 0 : 1;
                (splitCum[which], splitTs) = abi.decode(logs[i].data, (uint256, uint256));
            } else if (logs[i].topics[0] == IDealVaultTypes.Split.selector) {
                (,,, splitValue) = abi.decode(logs[i].data, (uint256, uint256, uint256, uint256));
            }
        }
        (, int256 answer,,,) = IPriceFeed(k.ethUsdFeed).latestRoundData();
        splitPrice = uint256(answer);
        core0 = FUND_WEI * risk.coreBps / 10_000;
        vm.warp(block.timestamp + risk.twapWindow);
        vm.roll(block.number + 1);
    }
}
