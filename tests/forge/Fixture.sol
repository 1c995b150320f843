// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

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

/// @notice What the model of a run starts from: the vault's latest TWAP observations (cUSDT,
///         cUSDC), split's value (6 dp USD) and the feed's price at split.
struct Start {
    uint256[2] obsCum;
    uint256[2] obsTs;
    uint256 splitValue;
    uint256 splitPrice;
}

/// @title Fixture
/// @notice The kit's chain installed in-process (`vm.loadAllocs` of tools/forge/state.py's dump: the
///         real Aave V3, Uniswap V2, WETH9 and FiatToken bytecode at the kit's addresses), the clock
///         and chain id of the dump, then a DealVault deployed from forge's own compilation of
///         contracts/ (so a mutant of the vault is what runs), funded and split, the TWAP window passed.
///         The state directory is `$DV_FORGE_STATE` (tools/forge/run.sh copies it under .forge/state).
abstract contract Fixture is TestBase {
    /// @dev The vault and the lens come from forge's own artifacts of contracts/ (vm.getCode), not from
    ///      an import: a test file never carries their bytecode, so a change to the vault (a mutant,
    ///      `make mutate`) recompiles the vault's files only, not every test.
    string internal constant VAULT_ARTIFACT = "DealVault.sol:DealVault";
    string internal constant LENS_ARTIFACT = "DealVaultLens.sol:DealVaultLens";

    /// @dev The vault's creation code with its constructor's `cfg` (fetch it before a prank or an
    ///      expectRevert: both apply to the next call, and this is a call to the cheatcode address).
    function vaultInitCode(IDealVaultTypes.Config memory cfg) internal view returns (bytes memory) {
        return abi.encodePacked(vm.getCode(VAULT_ARTIFACT), abi.encode(cfg));
    }

    /// @dev CREATE of `init` from this contract, as `new` does; a refused constructor's revert data is
    ///      bubbled up (its custom error), as `new` does.
    function create(bytes memory init) internal returns (address a) {
        assembly ("memory-safe") {
            a := create(0, add(init, 32), mload(init))
            if iszero(a) {
                returndatacopy(0, 0, returndatasize())
                revert(0, returndatasize())
            }
        }
    }

    /// @dev `create` as an external call, for `vm.expectRevert` on a refused constructor: forge checks
    ///      the expected revert data on a call, not on a CREATE made in assembly (which it lets pass).
    function createExternal(bytes memory init) external returns (address) {
        return create(init);
    }

    uint256 internal constant FUND_WEI = 1_000 ether;
    uint256 internal constant USD6 = 1e6;

    Kit internal k;
    IDealVault internal vault;
    IDealVaultLens internal lens;
    IDealVaultTypes.RiskParams internal risk;
    uint256 internal core0;
    uint256 internal t0;
    /// @dev The vault's latest TWAP observations (the USDTz pairs' cumulative prices, cUSDT then
    ///      cUSDC), split's value and the feed's price at split.
    uint256[2] internal obsCum;
    uint256[2] internal obsTs;
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

    /// @dev The vault's constructor Config on the kit: its venues, its roles and `risk`.
    function _kitConfig() internal view returns (IDealVaultTypes.Config memory) {
        return IDealVaultTypes.Config({
            weth9: k.weth9, weth10: k.weth10, cusdt: k.cusdt, cusdc: k.cusdc, usdtz: k.usdtz, pool: k.pool,
            router: k.router, desk: k.desk, ethUsdFeed: k.ethUsdFeed, owner: k.owner, operator: k.operator,
            guardian: k.guardian, risk: risk
        });
    }

    /// @dev The kit, then the vault (deployed by the deployer), the lens, the owner's approvals,
    ///      fund + split, and the TWAP window passed.
    function _deployVault() internal {
        _loadKit();
        risk = _defaultRisk();
        bytes memory init = vaultInitCode(_kitConfig());
        vm.prank(k.deployer);
        vault = IDealVault(create(init));
        lens = IDealVaultLens(create(vm.getCode(LENS_ARTIFACT)));
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
        _track();
        (, int256 answer,,,) = IPriceFeed(k.ethUsdFeed).latestRoundData();
        splitPrice = uint256(answer);
        core0 = FUND_WEI * risk.coreBps / 10_000;
        _wait(risk.twapWindow);
    }

    function _start() internal view returns (Start memory) {
        return Start(obsCum, obsTs, splitValue, splitPrice);
    }

    function _wait(uint256 secs) internal {
        vm.warp(block.timestamp + secs);
        vm.roll(block.number + 1);
    }

    /// @dev The vault's Observed and Split events since vm.recordLogs().
    function _track() internal {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter != address(vault)) continue;
            if (logs[i].topics[0] == IDealVaultTypes.Observed.selector) {
                uint256 which = address(uint160(uint256(logs[i].topics[1]))) == k.cusdt ? 0 : 1;
                (obsCum[which], obsTs[which]) = abi.decode(logs[i].data, (uint256, uint256));
            } else if (logs[i].topics[0] == IDealVaultTypes.Split.selector) {
                (,,, splitValue) = abi.decode(logs[i].data, (uint256, uint256, uint256, uint256));
            }
        }
    }

    /// @dev tests/fuzz's "positioned" base: 200 ETH supplied, 150k cUSDT borrowed, 100k of it bought into USDTz.
    function _positioned() internal {
        vm.startPrank(k.operator);
        vault.supply(k.weth9, 200 ether);
        vault.borrow(k.cusdt, 150_000 * USD6);
        vault.buy(k.cusdt, 100_000 * USD6, 0, 2 ** 64);
        vm.stopPrank();
    }

    /// @dev tests/fuzz's "underwater_tight" base: 350 ETH of collateral, 300k cUSDT borrowed; the
    ///      attacker holds USDTz/cUSDT at ~0.90 for a window, the operator buys with 250k, the
    ///      attacker takes the price to ~0.88 for a window (the vault's USDTz is underwater: its sells
    ///      above the 0.85 floor realize losses); the owner tightens the loss budget to 2 bps.
    function _underwater() internal {
        vm.startPrank(k.operator);
        vault.supply(k.weth9, 200 ether);
        vault.borrow(k.cusdt, 150_000 * USD6);
        vault.addCollateral(k.weth9, 150 ether);
        vault.borrow(k.cusdt, 150_000 * USD6);
        vm.stopPrank();
        _movePair(900_000);
        _observeAndWait();
        vm.prank(k.operator);
        vault.buy(k.cusdt, 250_000 * USD6, 0, 2 ** 64);
        _movePair(880_000);
        _observeAndWait();
        vm.prank(k.owner);
        vault.setParam(IDealVaultTypes.Param.MaxOperatorLossBps, 2);
    }

    /// @dev The operator observes (tracked), then the TWAP window passes.
    function _observeAndWait() internal {
        vm.recordLogs();
        vm.prank(k.operator);
        vault.observe();
        _track();
        _wait(risk.twapWindow);
    }

    /// @dev The attacker trades the USDTz/cUSDT pair to a spot of ~targetE6 cUSDT per USDTz.
    function _movePair(uint256 targetE6) internal {
        address pair = k.pairUsdtzCusdt;
        (uint112 r0, uint112 r1,) = IPairReserves(pair).getReserves();
        bool z0 = IPairReserves(pair).token0() == k.usdtz;
        (uint256 rz, uint256 rs) = z0 ? (uint256(r0), uint256(r1)) : (uint256(r1), uint256(r0));
        uint256 rsNew = Math.sqrt(rz * rs * targetE6 / 1e6);
        address[] memory path = new address[](2);
        uint256 amountIn;
        if (rsNew > rs) {
            (path[0], path[1], amountIn) = (k.cusdt, k.usdtz, (rsNew - rs) * 1000 / 997);
        } else {
            (path[0], path[1], amountIn) = (k.usdtz, k.cusdt, (rz * rs / rsNew - rz) * 1000 / 997);
        }
        vm.prank(k.attacker);
        ISwapRouter(k.router).swapExactTokensForTokens(amountIn, 0, path, k.attacker, 2 ** 64);
    }
}

interface IPairReserves {
    function getReserves() external view returns (uint112, uint112, uint32);
    function token0() external view returns (address);
}

interface ISwapRouter {
    function swapExactTokensForTokens(uint256 amountIn, uint256 amountOutMin, address[] calldata path, address to,
        uint256 deadline) external returns (uint256[] memory amounts);
}
