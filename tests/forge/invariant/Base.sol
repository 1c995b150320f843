// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {IDealVault, IDealVaultTypes} from "../../../contracts/interfaces/IDealVault.sol";
import {IDealVaultLens} from "../../../contracts/interfaces/IDealVaultLens.sol";
import {IAaveV3Pool, IScaledBalanceToken} from "../../../contracts/interfaces/IAaveV3Pool.sol";
import {IUniswapV2Pair} from "../../../contracts/interfaces/IUniswapV2Pair.sol";
import {Kit} from "../Fixture.sol";
import {TestBase} from "../utils/Vm.sol";

/// @notice The kit's venues the handlers drive (signatures of the real contracts).
interface IFeedAdmin {
    function setAnswer(int256 answer) external;
    function setRound(int256 answer, uint256 updatedAt) external;
    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80);
}

interface IFiatTokenAdmin {
    function blacklist(address account) external;
    function unBlacklist(address account) external;
    function isBlacklisted(address account) external view returns (bool);
}

interface IDeskAdmin {
    function halt() external;
    function resume() external;
    function setFee(uint256 feeBps, uint256 flatFee) external;
}

interface IConfigurator {
    function setReserveFreeze(address asset, bool freeze) external;
}

interface IRouter {
    function swapExactTokensForTokens(uint256 amountIn, uint256 amountOutMin, address[] calldata path, address to,
        uint256 deadline) external returns (uint256[] memory amounts);
}

/// @title Books
/// @notice The vault's own books, read from its storage words (DealVaultStorage's layout, pinned by
///         tests/unit/vault/test_storage_layout.py): independent of the lens, which the invariant
///         compares with them.
struct Books {
    uint256 phaseBeforeHolding;
    uint256 rung;
    uint256 coreEth;
    uint256 workingEth;
    uint256 opportunisticEth;
    uint256 usdtzHeld;
    uint256 usdtzCost;
    uint256 rungProgress;
    uint256 repaidOnBehalf;
    uint256 operatorLoss;
}

/// @title State
/// @notice One read of everything a property needs: the lens's risk view next to the raw truth
///         (feed, pool, aToken / debt-token balances and scaled balances, the pool's index, token
///         balances, the pairs' reserves and price accumulators, the vault's word of scaled debt books).
struct State {
    uint256 ts;
    uint256 phase;
    bool paused;
    Books rv;
    int256 feedAnswer;
    uint256 feedUpdatedAt;
    uint256 ethVault;
    uint256 ethWrappers; // WETH9 + WETH10 ETH balances
    uint256 ethOwner;
    uint256[2] debt; // debt-token balances: cUSDT, cUSDC
    uint256[2] sdebt; // scaled
    uint256[2] idx; // the pool's variable-debt index
    uint256[2] bal; // the vault's stablecoin balances
    uint256[2] stableBooks; // the lens's stableOf
    uint256[2] own; // the owner's stablecoin balances
    uint256 balZ; // the vault's USDTz
    uint256[2] abal; // aWETH9, aWETH10 of the vault
    uint256[2] coll; // the lens's collateralOf
    uint256[2] liq; // WETH held by the aTokens (the reserves' liquidity)
    uint256 slot0;
    uint256[2] rz; // USDTz pairs: the USDTz reserve
    uint256[2] rs; // the stablecoin reserve
    uint256[2] cum; // the USDTz price accumulator now (counterfactual), UQ112x112 seconds
}

/// @title Model
/// @notice What the handlers know independently of the vault: the parameters and the timelock
///         queue (from their own calls and the audited events), the TWAP observations, the loss
///         budget's books, the repayments on behalf, the core, and the first property broken.
abstract contract HandlerBase is TestBase {
    uint256 internal constant BPS = 10_000;
    uint256 internal constant AAVE_ROUNDING = 2;
    uint256 internal constant MASK192 = (1 << 192) - 1;
    uint256 internal constant FAR = 2 ** 64;

    IDealVault internal immutable vault;
    IDealVaultLens internal immutable lens;
    Kit internal k;
    address[2] internal stables;
    address[2] internal wrappers;
    address[2] internal aTokens;
    address[2] internal debtTokens;
    address[2] internal usdtzPairs;
    address[2] internal wethPairs;
    bool[2] internal usdtzIs0;

    /// @dev The first property broken (empty: none); the invariant asserts it is empty.
    string public violation;

    constructor(IDealVault v, IDealVaultLens l, Kit memory kit) {
        vault = v;
        lens = l;
        k = kit;
        stables = [kit.cusdt, kit.cusdc];
        wrappers = [kit.weth9, kit.weth10];
        aTokens = [kit.aWeth9, kit.aWeth10];
        debtTokens = [kit.debtCusdt, kit.debtCusdc];
        usdtzPairs = [kit.pairUsdtzCusdt, kit.pairUsdtzCusdc];
        wethPairs = [kit.pairWethCusdt, kit.pairWethCusdc];
        usdtzIs0 = [IUniswapV2Pair(kit.pairUsdtzCusdt).token0() == kit.usdtz,
            IUniswapV2Pair(kit.pairUsdtzCusdc).token0() == kit.usdtz];
    }

    /// @dev Record the first broken property (the handler carries on: a revert would be discarded).
    function _check(bool ok, string memory what) internal {
        if (!ok && bytes(violation).length == 0) violation = what;
    }

    function _checkEq(uint256 a, uint256 b, string memory what) internal {
        if (a != b && bytes(violation).length == 0) {
            violation = string.concat(what, ": ", vm.toString(a), " != ", vm.toString(b));
        }
    }

    /* READS */

    function _read() internal view returns (State memory s) {
        address v = address(vault);
        s.ts = block.timestamp;
        s.slot0 = _slot(0);
        s.phase = (s.slot0 >> 144) & 0xff;
        s.paused = (s.slot0 >> 160) & 0xff != 0;
        s.rv = _books(s.slot0);
        s.coll = _collBooks();
        s.stableBooks = _stableBooks();
        (, s.feedAnswer,, s.feedUpdatedAt,) = IFeedAdmin(k.ethUsdFeed).latestRoundData();
        s.ethVault = v.balance;
        s.ethWrappers = k.weth9.balance + k.weth10.balance;
        s.ethOwner = k.owner.balance;
        for (uint256 i; i < 2; ++i) {
            s.debt[i] = IERC20(debtTokens[i]).balanceOf(v);
            s.sdebt[i] = IScaledBalanceToken(debtTokens[i]).scaledBalanceOf(v);
            s.idx[i] = IAaveV3Pool(k.pool).getReserveNormalizedVariableDebt(stables[i]);
            s.bal[i] = IERC20(stables[i]).balanceOf(v);
            s.own[i] = IERC20(stables[i]).balanceOf(k.owner);
            s.abal[i] = IERC20(aTokens[i]).balanceOf(v);
            s.liq[i] = IERC20(wrappers[i]).balanceOf(aTokens[i]);
            (uint112 r0, uint112 r1, uint32 last) = IUniswapV2Pair(usdtzPairs[i]).getReserves();
            (s.rz[i], s.rs[i]) = usdtzIs0[i] ? (uint256(r0), uint256(r1)) : (uint256(r1), uint256(r0));
            uint256 c = usdtzIs0[i] ? IUniswapV2Pair(usdtzPairs[i]).price0CumulativeLast()
                : IUniswapV2Pair(usdtzPairs[i]).price1CumulativeLast();
            unchecked {
                uint256 elapsed = uint32(block.timestamp) - last;
                s.cum[i] = c + ((s.rs[i] << 112) / s.rz[i]) * elapsed;
            }
        }
        s.balZ = IERC20(k.usdtz).balanceOf(v);
    }

    function _slot(uint256 i) internal view returns (uint256) {
        return uint256(vm.load(address(vault), bytes32(i)));
    }

    /// @dev The collateral books (slot 10: collateral9 | collateral10 << 80).
    function _collBooks() internal view returns (uint256[2] memory) {
        uint256 w10 = _slot(10);
        return [w10 & M80, (w10 >> 80) & M80];
    }

    /// @dev The stablecoin books (slot 11: stableT | stableC << 80).
    function _stableBooks() internal view returns (uint256[2] memory) {
        uint256 w11 = _slot(11);
        return [w11 & M80, (w11 >> 80) & M80];
    }

    uint256 internal constant M80 = (1 << 80) - 1;
    uint256 internal constant M64 = (1 << 64) - 1;

    /// @dev Slots 0, 9-13 of DealVaultStorage.
    function _books(uint256 slot0) internal view returns (Books memory b) {
        uint256 w9 = _slot(9);
        uint256 w10 = _slot(10);
        uint256 w11 = _slot(11);
        uint256 w12 = _slot(12);
        uint256 w13 = _slot(13);
        b.phaseBeforeHolding = (slot0 >> 152) & 0xff;
        b.rung = (slot0 >> 168) & 0xff;
        b.coreEth = w9 & M80;
        b.workingEth = (w9 >> 80) & M80;
        b.opportunisticEth = (w9 >> 160) & M80;
        b.repaidOnBehalf = (w10 >> 160) & M80;
        b.usdtzHeld = (w11 >> 160) & M80;
        b.usdtzCost = w12 & M64;
        b.rungProgress = (w12 >> 64) & M64;
        b.operatorLoss = w13 & M64;
    }

    function _booksNow() internal view returns (Books memory) {
        return _books(_slot(0));
    }

    /* INDEPENDENT RISK MATH (from raw reads) */

    function _rayMul(uint256 a, uint256 b) internal pure returns (uint256) {
        return (a * b + 5e26) / 1e27;
    }

    /// @dev Oracle status (0 Fresh, 1 Stale, 2 Invalid) and the answer (0 if Invalid).
    function _oracle(State memory s, uint256 maxAge) internal pure returns (uint256 status, uint256 price) {
        if (s.feedAnswer <= 0 || s.feedAnswer > 1e16 || s.feedUpdatedAt > s.ts) return (2, 0);
        price = uint256(s.feedAnswer);
        status = s.ts - s.feedUpdatedAt > maxAge ? 1 : 0;
    }

    function _collWei(State memory s) internal pure returns (uint256 c) {
        for (uint256 i; i < 2; ++i) {
            if (s.coll[i] > 0) c += s.coll[i] < s.abal[i] ? s.coll[i] : s.abal[i];
        }
    }

    function _poolDebt(State memory s) internal pure returns (uint256) {
        return s.debt[0] + s.debt[1];
    }

    /// @dev The vault's scaled debt books (slot 0: uint72 scaledDebtT | uint72 scaledDebtC) x the index.
    function _bookedDebt(State memory s) internal pure returns (uint256 d) {
        uint256 bt = s.slot0 & type(uint72).max;
        uint256 bc = (s.slot0 >> 72) & type(uint72).max;
        if (bt > 0) d += _rayMul(bt, s.idx[0]);
        if (bc > 0) d += _rayMul(bc, s.idx[1]);
    }

    function _ethBooks(State memory s) internal pure returns (uint256) {
        return s.rv.coreEth + s.rv.workingEth + s.rv.opportunisticEth;
    }

    function _spotX112(State memory s, uint256 i) internal pure returns (uint256) {
        return (s.rs[i] << 112) / s.rz[i];
    }
}
