// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

import {IDealVault, IDealVaultTypes} from "./interfaces/IDealVault.sol";
import {IDealVaultLens} from "./interfaces/IDealVaultLens.sol";
import {IAaveV3Pool} from "./interfaces/IAaveV3Pool.sol";
import {OracleLib} from "./libraries/OracleLib.sol";
import {RiskLib} from "./libraries/RiskLib.sol";
import {ParamTable} from "./libraries/ParamTable.sol";
import {TwapLib} from "./libraries/TwapLib.sol";
import {DealVaultStorage} from "./DealVaultStorage.sol";

/// @title DealVaultLens
/// @notice The views of any DealVault (see IDealVaultLens), computed with the same libraries the
///         vault's cap checks use (RiskLib, OracleLib, ParamTable, TwapLib), so a view and a check
///         never disagree. Stateless: one lens per chain serves every vault.
/// @dev Inherits DealVaultStorage only for its layout: `x.slot` / `x.offset` of its own (never
///      written) copy say where the vault keeps `x`. All of the vault's state comes from one
///      `extSloads` call over slots 0..observationC.
contract DealVaultLens is DealVaultStorage, IDealVaultLens {
    using OracleLib for OracleLib.Price;

    /// @dev The vault's state, decoded.
    struct State {
        address vault;
        IDealVaultTypes.Setup setup;
        uint256[] words;
        IDealVaultTypes.Phase phase;
        IDealVaultTypes.Phase phaseBeforeHolding;
        bool paused;
        uint8 rung;
        uint256 legSeq;
        uint256 coreEth;
        uint256 workingEth;
        uint256 opportunisticEth;
        uint256 collateral9;
        uint256 collateral10;
        uint256 fundedCapital;
        uint256 stableT;
        uint256 stableC;
        uint256 usdtzHeld;
        uint256 usdtzCost;
        uint256 rungProgress;
        uint256 redeemedTotal;
        uint256 feesPaid;
        uint256 scaledDebtT;
        uint256 scaledDebtC;
        uint256 repaidOnBehalf;
        uint256 operatorLoss;
        uint256 splitValue;
        uint256 ownerRepaid;
        uint256 writtenOffUsdtz;
        uint256 ethReturned;
        int256 realizedPnlEth;
        int256 realizedPnlUsd;
        uint256 observationT;
        uint256 observationC;
    }

    /* VIEWS */

    /// @inheritdoc IDealVaultLens
    function setup(address vault) external view returns (IDealVaultTypes.Setup memory) {
        return IDealVault(vault).setup();
    }

    /// @inheritdoc IDealVaultLens
    function riskView(address vault) external view returns (RiskView memory v) {
        State memory st = _state(vault);
        IDealVaultTypes.Venues memory ven = st.setup.venues;
        uint256 maxAge = _param4(st.words, IDealVaultTypes.Param.OracleMaxAge);
        OracleLib.Price memory px = OracleLib.read(ven.ethUsdFeed, maxAge);
        uint256 price = px.valueOrZero();
        v.phase = st.phase;
        v.phaseBeforeHolding = st.phaseBeforeHolding;
        v.paused = st.paused;
        v.coreEth = st.coreEth;
        v.workingEth = st.workingEth;
        v.opportunisticEth = st.opportunisticEth;
        v.collateralBooked = st.collateral9 + st.collateral10;
        v.collateralWeth = _min(st.collateral9, ven.aWeth9, vault) + _min(st.collateral10, ven.aWeth10, vault);
        v.collateralValue = RiskLib.ethValue(v.collateralWeth, price);
        // the caps' debt: the scaled books at the pool's index, plus what others repaid
        v.debt = _bookedDebt(ven.pool, st.scaledDebtT, ven.cusdt) + _bookedDebt(ven.pool, st.scaledDebtC, ven.cusdc)
            + st.repaidOnBehalf;
        v.debtValue = v.debt * 100;
        // as the caps see it: no LTV without pool debt (repaidOnBehalf alone is no loan)
        v.ltvBps = v.debt == st.repaidOnBehalf ? 0 : RiskLib.ltvBps(v.debt, v.collateralWeth, price);
        v.poolDebt = _balance(ven.debtCusdt, vault) + _balance(ven.debtCusdc, vault);
        // slither-disable-next-line unused-return
        try IAaveV3Pool(ven.pool).getUserAccountData(vault) returns (
            uint256 collateralBase, uint256 debtBase, uint256, uint256, uint256, uint256 healthFactor
        ) {
            v.poolCollateralBase = collateralBase;
            v.poolDebtBase = debtBase;
            v.healthFactor = healthFactor;
        } catch {}
        v.stableHeld = st.stableT + st.stableC;
        v.usdtzHeld = st.usdtzHeld;
        v.usdtzCost = st.usdtzCost;
        int256 nav = RiskLib.navE26(
            v.coreEth + v.workingEth + v.opportunisticEth + v.collateralWeth, price, v.stableHeld, v.usdtzCost, v.debt
        );
        v.nav = RiskLib.navUsd(nav);
        v.exposureValue = v.usdtzHeld * 100;
        v.exposureBps = RiskLib.exposureBps(v.usdtzHeld, nav);
        v.rung = st.rung;
        v.rungProgress = st.rungProgress;
        v.redeemedTotal = st.redeemedTotal;
        v.feesPaid = st.feesPaid;
        v.realizedPnlEth = st.realizedPnlEth;
        v.realizedPnlUsd = st.realizedPnlUsd;
        v.writtenOffUsdtz = st.writtenOffUsdtz;
        v.ethPrice = px.answer;
        v.priceUpdatedAt = px.updatedAt;
        v.oracleStatus = px.status;
        v.legSeq = st.legSeq;
        v.fundedCapital = st.fundedCapital;
        v.ownerRepaid = st.ownerRepaid;
        v.repaidOnBehalf = st.repaidOnBehalf;
        v.operatorLoss = st.operatorLoss;
        v.splitValue = st.splitValue;
        v.lossBudget = st.splitValue * _param4(st.words, IDealVaultTypes.Param.MaxOperatorLossBps) / RiskLib.BPS;
        v.ethReturned = st.ethReturned;
    }

    /// @inheritdoc IDealVaultLens
    function params(address vault) external view returns (Params memory) {
        uint256[] memory w = _words(vault);
        return _params([w[0], w[1], w[2], w[3]], IDealVault(vault).setup());
    }

    /// @inheritdoc IDealVaultLens
    function initialParams(address vault) external view returns (Params memory) {
        uint256[] memory w = _words(vault);
        uint256 base;
        assembly ("memory-safe") {
            base := initialWords.slot
        }
        return _params([w[base], w[base + 1], w[base + 2], w[base + 3]], IDealVault(vault).setup());
    }

    /// @inheritdoc IDealVaultLens
    function queuedParams(address vault) external view returns (uint256[11] memory values, uint256[11] memory validAt) {
        uint256 base;
        assembly ("memory-safe") {
            base := queued.slot
        }
        bytes32[] memory slots = new bytes32[](ParamTable.COUNT);
        for (uint256 p; p < ParamTable.COUNT; ++p) {
            slots[p] = keccak256(abi.encode(p, base));
        }
        bytes32[] memory q = IDealVault(vault).extSloads(slots);
        for (uint256 p; p < ParamTable.COUNT; ++p) {
            values[p] = uint256(q[p]) >> 64;
            validAt[p] = uint64(uint256(q[p]));
        }
    }

    /// @inheritdoc IDealVaultLens
    function collateralOf(address vault, address wrapper) external view returns (uint256) {
        State memory st = _state(vault);
        IDealVaultTypes.Venues memory ven = st.setup.venues;
        return wrapper == ven.weth9 ? st.collateral9 : wrapper == ven.weth10 ? st.collateral10 : 0;
    }

    /// @inheritdoc IDealVaultLens
    function stableOf(address vault, address stable) external view returns (uint256) {
        State memory st = _state(vault);
        IDealVaultTypes.Venues memory ven = st.setup.venues;
        return stable == ven.cusdt ? st.stableT : stable == ven.cusdc ? st.stableC : 0;
    }

    /// @inheritdoc IDealVaultLens
    function twap(address vault, address stable) external view returns (Twap memory t) {
        State memory st = _state(vault);
        bool isT = stable == st.setup.venues.cusdt;
        (uint256 cumulative, uint256 spot) = TwapLib.read(
            isT ? st.setup.venues.pairCusdt : st.setup.venues.pairCusdc, isT ? st.setup.usdtzIs0T : st.setup.usdtzIs0C
        );
        uint256 obs = isT ? st.observationT : st.observationC;
        t.observedAt = uint32(obs);
        t.spotX112 = spot;
        t.spotE6 = TwapLib.toE6(spot);
        if (t.observedAt != 0) {
            t.readyAt = t.observedAt + _param4(st.words, IDealVaultTypes.Param.TwapWindow);
            if (block.timestamp > t.observedAt) {
                t.twapX112 = TwapLib.twap(obs, cumulative);
                t.twapE6 = TwapLib.toE6(t.twapX112);
            }
        }
    }

    /* INTERNAL */

    function _params(uint256[4] memory w, IDealVaultTypes.Setup memory s) internal pure returns (Params memory p) {
        p.maxLtvBps = _param(w, IDealVaultTypes.Param.MaxLtvBps);
        p.maxExposureBps = _param(w, IDealVaultTypes.Param.MaxExposureBps);
        p.maxDeskFeeBps = _param(w, IDealVaultTypes.Param.MaxDeskFeeBps);
        p.oracleMaxAge = _param(w, IDealVaultTypes.Param.OracleMaxAge);
        p.minDiscountBps = _param(w, IDealVaultTypes.Param.MinDiscountBps);
        p.maxSlippageBps = _param(w, IDealVaultTypes.Param.MaxSlippageBps);
        p.sellFloorPrice = _param(w, IDealVaultTypes.Param.SellFloorPrice);
        p.ethFloorPrice = _param(w, IDealVaultTypes.Param.EthFloorPrice);
        p.maxOperatorLossBps = _param(w, IDealVaultTypes.Param.MaxOperatorLossBps);
        p.twapWindow = _param(w, IDealVaultTypes.Param.TwapWindow);
        p.loosenDelay = _param(w, IDealVaultTypes.Param.LoosenDelay);
        p.coreBps = s.coreBps;
        p.workingBps = s.workingBps;
        p.opportunisticBps = s.opportunisticBps;
        p.rungs = s.rungs;
        p.minTranche = s.minTranche;
    }

    /// @dev `param` from the four parameter words (ParamTable: its slot and place).
    function _param(uint256[4] memory w, IDealVaultTypes.Param param) internal pure returns (uint256) {
        uint256 i = uint256(param);
        return ParamTable.get(w[ParamTable.slotOf(i)], i);
    }

    /// @dev `param` from the vault's words (slots 0.. as `_words` read them).
    function _param4(uint256[] memory w, IDealVaultTypes.Param param) internal pure returns (uint256) {
        return _param([w[0], w[1], w[2], w[3]], param);
    }

    /// @dev The vault's words of slots 0..observationC, in one call.
    function _words(address vault) internal view returns (uint256[] memory w) {
        uint256 last;
        assembly ("memory-safe") {
            last := observationC.slot
        }
        bytes32[] memory slots = new bytes32[](last + 1);
        for (uint256 i; i <= last; ++i) {
            slots[i] = bytes32(i);
        }
        bytes32[] memory words = IDealVault(vault).extSloads(slots);
        assembly ("memory-safe") {
            w := words
        }
    }

    /// @dev Each variable at its slot and offset in DealVaultStorage (the lens's own copy of the
    ///      layout: `.slot` / `.offset` are compile-time constants).
    function _state(address vault) internal view returns (State memory st) {
        uint256[] memory w = _words(vault);
        st.vault = vault;
        st.setup = IDealVault(vault).setup();
        st.words = w;
        uint256 s;
        uint256 o;
        assembly ("memory-safe") {
            s := phase_.slot
            o := phase_.offset
        }
        st.phase = IDealVaultTypes.Phase(_u(w, s, o, 8));
        assembly ("memory-safe") {
            s := phaseBeforeHolding.slot
            o := phaseBeforeHolding.offset
        }
        st.phaseBeforeHolding = IDealVaultTypes.Phase(_u(w, s, o, 8));
        assembly ("memory-safe") {
            s := paused_.slot
            o := paused_.offset
        }
        st.paused = _u(w, s, o, 8) != 0;
        assembly ("memory-safe") {
            s := rung.slot
            o := rung.offset
        }
        st.rung = uint8(_u(w, s, o, 8));
        assembly ("memory-safe") {
            s := legSeq.slot
            o := legSeq.offset
        }
        st.legSeq = _u(w, s, o, 32);
        assembly ("memory-safe") {
            s := scaledDebtT.slot
            o := scaledDebtT.offset
        }
        st.scaledDebtT = _u(w, s, o, 72);
        assembly ("memory-safe") {
            s := scaledDebtC.slot
            o := scaledDebtC.offset
        }
        st.scaledDebtC = _u(w, s, o, 72);
        assembly ("memory-safe") {
            s := coreEth.slot
            o := coreEth.offset
        }
        st.coreEth = _u(w, s, o, 80);
        assembly ("memory-safe") {
            s := workingEth.slot
            o := workingEth.offset
        }
        st.workingEth = _u(w, s, o, 80);
        assembly ("memory-safe") {
            s := opportunisticEth.slot
            o := opportunisticEth.offset
        }
        st.opportunisticEth = _u(w, s, o, 80);
        assembly ("memory-safe") {
            s := collateral9.slot
            o := collateral9.offset
        }
        st.collateral9 = _u(w, s, o, 80);
        assembly ("memory-safe") {
            s := collateral10.slot
            o := collateral10.offset
        }
        st.collateral10 = _u(w, s, o, 80);
        assembly ("memory-safe") {
            s := repaidOnBehalf.slot
            o := repaidOnBehalf.offset
        }
        st.repaidOnBehalf = _u(w, s, o, 80);
        assembly ("memory-safe") {
            s := stableT.slot
            o := stableT.offset
        }
        st.stableT = _u(w, s, o, 80);
        assembly ("memory-safe") {
            s := stableC.slot
            o := stableC.offset
        }
        st.stableC = _u(w, s, o, 80);
        assembly ("memory-safe") {
            s := usdtzHeld.slot
            o := usdtzHeld.offset
        }
        st.usdtzHeld = _u(w, s, o, 80);
        assembly ("memory-safe") {
            s := usdtzCost.slot
            o := usdtzCost.offset
        }
        st.usdtzCost = _u(w, s, o, 64);
        assembly ("memory-safe") {
            s := rungProgress.slot
            o := rungProgress.offset
        }
        st.rungProgress = _u(w, s, o, 64);
        assembly ("memory-safe") {
            s := redeemedTotal.slot
            o := redeemedTotal.offset
        }
        st.redeemedTotal = _u(w, s, o, 64);
        assembly ("memory-safe") {
            s := feesPaid.slot
            o := feesPaid.offset
        }
        st.feesPaid = _u(w, s, o, 56);
        assembly ("memory-safe") {
            s := operatorLoss.slot
            o := operatorLoss.offset
        }
        st.operatorLoss = _u(w, s, o, 64);
        assembly ("memory-safe") {
            s := splitValue.slot
            o := splitValue.offset
        }
        st.splitValue = _u(w, s, o, 64);
        assembly ("memory-safe") {
            s := ownerRepaid.slot
            o := ownerRepaid.offset
        }
        st.ownerRepaid = _u(w, s, o, 64);
        assembly ("memory-safe") {
            s := writtenOffUsdtz.slot
            o := writtenOffUsdtz.offset
        }
        st.writtenOffUsdtz = _u(w, s, o, 64);
        assembly ("memory-safe") {
            s := ethReturned.slot
            o := ethReturned.offset
        }
        st.ethReturned = _u(w, s, o, 80);
        assembly ("memory-safe") {
            s := realizedPnlEth.slot
            o := realizedPnlEth.offset
        }
        st.realizedPnlEth = _i88(_u(w, s, o, 88));
        assembly ("memory-safe") {
            s := realizedPnlUsd.slot
            o := realizedPnlUsd.offset
        }
        st.realizedPnlUsd = _i88(_u(w, s, o, 88));
        assembly ("memory-safe") {
            s := fundedCapital.slot
            o := fundedCapital.offset
        }
        st.fundedCapital = _u(w, s, o, 80);
        assembly ("memory-safe") {
            s := observationT.slot
        }
        st.observationT = w[s];
        assembly ("memory-safe") {
            s := observationC.slot
        }
        st.observationC = w[s];
    }

    /// @dev `bits` bits at byte `offset` of word `slot`.
    function _u(uint256[] memory w, uint256 slot, uint256 offset, uint256 bits) internal pure returns (uint256) {
        return (w[slot] >> (offset * 8)) & ((1 << bits) - 1);
    }

    function _i88(uint256 x) internal pure returns (int256 r) {
        assembly ("memory-safe") {
            r := signextend(10, x)
        }
    }

    /// @dev min(booked, the vault's aToken balance).
    function _min(uint256 booked, address aToken, address vault) internal view returns (uint256) {
        return booked == 0 ? 0 : Math.min(booked, _balance(aToken, vault));
    }

    /// @dev A scaled book at the pool's index (0 if the read fails).
    function _bookedDebt(address pool, uint256 scaled, address stable) internal view returns (uint256) {
        if (scaled == 0) return 0;
        (bool ok, bytes memory ret) =
            pool.staticcall(abi.encodeCall(IAaveV3Pool.getReserveNormalizedVariableDebt, (stable)));
        return ok && ret.length >= 32 ? RiskLib.rayMul(scaled, abi.decode(ret, (uint256))) : 0;
    }

    /// @dev balanceOf that never reverts (0 on failure or for address(0)).
    function _balance(address token, address who) internal view returns (uint256) {
        if (token == address(0)) return 0;
        (bool ok, bytes memory ret) = token.staticcall(abi.encodeCall(IERC20.balanceOf, (who)));
        return ok && ret.length >= 32 ? abi.decode(ret, (uint256)) : 0;
    }
}
