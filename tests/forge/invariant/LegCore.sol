// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {IDealVault, IDealVaultTypes} from "../../../contracts/interfaces/IDealVault.sol";
import {IDealVaultLens} from "../../../contracts/interfaces/IDealVaultLens.sol";
import {IAaveV3Pool} from "../../../contracts/interfaces/IAaveV3Pool.sol";
import {Kit} from "../Fixture.sol";
import {Vm} from "../utils/Vm.sol";
import {Books, HandlerBase, State, IRouter} from "./Base.sol";

/// @title LegCore
/// @notice Every leg of the vault with random amounts and roles (the owner's and guardian's actions,
///         the parameter timelock, the attacker's sandwiches included), each checked against its
///         gating (role, phase, pause, oracle), ETH conservation, where value may go, the caps after
///         a risk-adding leg, no rise of debt / LTV / exposure on a risk-reducing one, the books
///         following what moved, the TWAP and price limits, and the loss budget; the vault's events
///         are audited against the model. A refused leg reverts the handler call (so forge's metrics
///         count refusals per selector) unless it broke a property.
abstract contract LegCore is HandlerBase {
    /* leg ids (this handler's), with IDealVaultTypes.Leg for the loss-booking ones */
    uint8 internal constant SUPPLY = 0;
    uint8 internal constant BORROW = 1;
    uint8 internal constant BUY = 2;
    uint8 internal constant REDEEM = 3;
    uint8 internal constant SELL = 4;
    uint8 internal constant REPAY = 5;
    uint8 internal constant OWNER_REPAY = 6;
    uint8 internal constant ADD_COLL = 7;
    uint8 internal constant WITHDRAW_COLL = 8;
    uint8 internal constant DELEVERAGE = 9;
    uint8 internal constant CLOSE = 10;
    uint8 internal constant HOLD = 11;
    uint8 internal constant RESUME = 12;
    uint8 internal constant PAUSE = 13;
    uint8 internal constant UNPAUSE = 14;
    uint8 internal constant OBSERVE = 15;
    uint8 internal constant WITHDRAW = 16;
    uint8 internal constant FUND = 17;
    uint8 internal constant SPLIT_ = 18;
    uint8 internal constant SET_PARAM = 19;
    uint8 internal constant ACCEPT_PARAM = 20;
    uint8 internal constant REVOKE_PARAM = 21;
    uint256 internal constant N_LEGS = 22;

    /* roles: bit i of a leg's allowed set */
    uint8 internal constant OPERATOR = 0;
    uint8 internal constant OWNER = 1;
    uint8 internal constant GUARDIAN = 2;
    uint8 internal constant STRANGER = 3;

    uint256 internal constant HOLDING = 5;
    uint256 internal constant CLOSED = 6;

    address internal constant BOGUS = 0x000000000000000000000000000000000000dEaD;

    /* the model */
    uint256[11] public params;
    uint256[11] public initial;
    uint256[11] public queuedValue;
    uint256[11] public queuedAt; // 0: nothing queued
    uint256[2] public obsCum;
    uint256[2] public obsTs;
    uint256[2] public pendingScaled; // scaled debt others repaid, not yet booked by the vault
    uint256 public opLoss;
    uint256 public rob;
    uint256 public ownerRepaid;
    uint256 public core;
    uint256 public ethReturned;
    uint256 public splitValue;
    uint256 public fundedCapital;
    uint256 public splitPrice;
    uint256 internal robAtLegStart; // rob before the running leg (the leg may book a RepaidOnBehalf)
    /* what the running leg's logs said (reset by _leg) */
    bool internal sawRedemptionFailed;
    bool internal sawLegCompleted;
    uint256 internal sawWithdrawnCount;
    uint256 internal sawWithdrawnAmount;
    uint256 internal sawWithdrawnFromBooks;
    uint256 internal sawFromWethPair; // stablecoin the WETH pairs sent the vault
    bytes internal sawClosed; // the Closed event's data
    address[] public watchToken;
    address[] public watchSpender;
    mapping(bytes32 => bool) internal watched;

    /* statistics */
    uint256[N_LEGS] public legOk;
    uint256[N_LEGS] public legRefused;
    uint256 public budgetRefusals;
    uint256 public lossEvents;
    uint256 public loosenings;
    uint256 public sandwiches;
    uint256 public attackerWins; // sandwiches after which the attacker held more of its input token
    uint256 public exitChecks;
    uint256 public exitUsdtzFrozen;

    /// @dev One leg's call and its reads.
    struct Leg {
        uint8 id;
        uint8 role;
        address who;
        bool riskAdding;
        bool ok;
        bytes ret;
        uint256 loss;
        uint256 status; // the oracle before
        uint256 price;
        State b;
        State a;
    }

    error LegRefused(uint8 id, bytes reason);

    constructor(
        IDealVault v,
        IDealVaultLens l,
        Kit memory kit,
        uint256[2] memory cum0,
        uint256[2] memory ts0,
        uint256 splitValue_,
        uint256 splitPrice_
    ) HandlerBase(v, l, kit) {
        params = _params(l.params(address(v)));
        initial = _params(l.initialParams(address(v)));
        obsCum = cum0;
        obsTs = ts0;
        IDealVaultLens.RiskView memory rv = l.riskView(address(v));
        core = rv.coreEth;
        fundedCapital = rv.fundedCapital;
        splitValue = splitValue_;
        splitPrice = splitPrice_;
    }

    function _params(IDealVaultLens.Params memory p) internal pure returns (uint256[11] memory) {
        return [p.maxLtvBps, p.maxExposureBps, p.maxDeskFeeBps, p.oracleMaxAge, p.minDiscountBps, p.maxSlippageBps,
            p.sellFloorPrice, p.ethFloorPrice, p.maxOperatorLossBps, p.twapWindow, p.loosenDelay];
    }

    /* THE TABLE (IDealVault's leg x phase table, roles) */

    function _mask(uint8 id) internal pure returns (uint256) {
        if (id == SUPPLY) return 0x1e;
        if (id == BORROW || id == BUY) return 0x1c;
        if (id == REDEEM || id == SELL) return 0x38;
        if (id >= REPAY && id <= DELEVERAGE) return 0x3c;
        if (id == CLOSE) return 0x3e;
        if (id == HOLD) return 0x1f;
        if (id == RESUME) return 0x20;
        if (id == OBSERVE) return 0x3f;
        if (id == FUND || id == SPLIT_) return 0x01;
        return 0x7f;
    }

    function _roles(uint8 id) internal pure returns (uint256) {
        if (id <= BUY) return 1 << OPERATOR;
        if (id == OWNER_REPAY || id == RESUME || id == UNPAUSE || id == WITHDRAW || id == FUND || id == SET_PARAM) {
            return 1 << OWNER;
        }
        if (id == HOLD || id == PAUSE || id == REVOKE_PARAM) return 1 << OWNER | 1 << GUARDIAN;
        if (id == ACCEPT_PARAM) return 0xf;
        return 1 << OPERATOR | 1 << OWNER;
    }

    /// @dev IDealVaultTypes.Leg of a leg that may book an operator loss (255: none).
    function _lossLeg(uint8 id) internal pure returns (uint256) {
        if (id == BORROW) return uint256(IDealVaultTypes.Leg.Borrow);
        if (id == REDEEM) return uint256(IDealVaultTypes.Leg.Redeem);
        if (id == SELL) return uint256(IDealVaultTypes.Leg.Sell);
        if (id == DELEVERAGE) return uint256(IDealVaultTypes.Leg.Deleverage);
        if (id == CLOSE) return uint256(IDealVaultTypes.Leg.Close);
        return 255;
    }

    function _riskReducing(uint8 id) internal pure returns (bool) {
        return id == REDEEM || id == SELL || id == REPAY || id == OWNER_REPAY || id == ADD_COLL || id == DELEVERAGE
            || id == CLOSE || id == WITHDRAW_COLL;
    }

    function _addr(uint8 role) internal view returns (address) {
        if (role == OPERATOR) return k.operator;
        if (role == OWNER) return k.owner;
        if (role == GUARDIAN) return k.guardian;
        return k.stranger;
    }

    /// @dev Mostly the operator (the legs), then the owner, the guardian, a stranger.
    function _role(uint256 seed) internal pure returns (uint8) {
        uint256 r = seed % 10;
        return r < 6 ? OPERATOR : r < 8 ? OWNER : r == 8 ? GUARDIAN : STRANGER;
    }

    function _ownerRole(uint256 seed) internal pure returns (uint8) {
        uint256 r = seed % 9;
        return r < 6 ? OWNER : r == 6 ? OPERATOR : r == 7 ? GUARDIAN : STRANGER;
    }

    function _guardRole(uint256 seed) internal pure returns (uint8) {
        uint256 r = seed % 8;
        return r < 3 ? GUARDIAN : r < 6 ? OWNER : r == 6 ? OPERATOR : STRANGER;
    }

    function _stable(uint256 seed) internal view returns (address, uint256) {
        uint256 r = seed % 6;
        return r < 3 ? (k.cusdt, 0) : r < 5 ? (k.cusdc, 1) : (BOGUS, 2);
    }

    function _wrapper(uint256 seed) internal view returns (address, uint256) {
        uint256 r = seed % 6;
        return r < 3 ? (k.weth9, 0) : r < 5 ? (k.weth10, 1) : (BOGUS, 2);
    }

    /// @dev An amount relative to what the books allow (a fraction, all of it, more), or not (0, raw).
    function _pick(uint256 a, uint256 avail) internal pure returns (uint256) {
        uint256 mode = a % 10;
        uint256 bps = (a / 10) % BPS + 1;
        if (mode < 5) return avail > 0 ? (avail * bps / BPS > 0 ? avail * bps / BPS : 1) : bps;
        if (mode == 5) return avail;
        if (mode == 6) return avail + 1 + (a >> 32) % (avail / 10 + 1);
        if (mode == 7) return 0;
        return (a >> 32) % (10 ** (1 + (a >> 16) % 25));
    }

    /* THE LEG: call, reads, generic properties, event audit */

    function _leg(uint8 id, uint8 role, bytes memory data, uint256 value, bool riskAdding)
        internal
        returns (Leg memory g)
    {
        g.id = id;
        g.role = role;
        g.who = _addr(role);
        g.riskAdding = riskAdding;
        if (value > 0 && g.who.balance < value) vm.deal(g.who, value);
        g.b = _read();
        (g.status, g.price) = _oracle(g.b, params[3]);
        robAtLegStart = rob;
        sawRedemptionFailed = false;
        sawLegCompleted = false;
        sawWithdrawnCount = 0;
        sawFromWethPair = 0;
        delete sawClosed;
        vm.recordLogs();
        vm.prank(g.who);
        (g.ok, g.ret) = address(vault).call{value: value}(data);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        g.a = _read();
        if (g.ok) legOk[id]++;
        else legRefused[id]++;
        _gating(g);
        if (!g.ok) {
            _refused(g);
            return g;
        }
        g.loss = _audit(g, logs);
        _conservation(g, value);
        _caps(g);
    }

    function _gating(Leg memory g) internal {
        string memory tag = _tag(g);
        if ((_roles(g.id) >> g.role) & 1 == 0) _check(!g.ok, string.concat(tag, ": wrong role succeeded"));
        if ((_mask(g.id) >> g.b.phase) & 1 == 0) _check(!g.ok, string.concat(tag, ": ran in the wrong phase"));
        if (g.id == WITHDRAW_COLL && g.riskAdding && g.b.phase == HOLDING) {
            _check(!g.ok, string.concat(tag, ": risk-adding withdrawCollateral ran in HOLDING"));
        }
        if (g.riskAdding && g.ok) {
            _check(!g.b.paused, string.concat(tag, ": risk-adding leg ran while paused"));
            _check(g.status == 0, string.concat(tag, ": risk-adding leg ran without a fresh oracle"));
        }
    }

    function _refused(Leg memory g) internal {
        if (g.ret.length >= 4 && bytes4(g.ret) == IDealVaultTypes.LossBudgetExceeded.selector) {
            budgetRefusals++;
            (uint256 total, uint256 budget) = abi.decode(_tail(g.ret), (uint256, uint256));
            _check(g.role == OPERATOR, "the owner's leg refused by the loss budget");
            _checkEq(budget, splitValue * params[8] / BPS, "LossBudgetExceeded budget");
            _check(total > budget && total > opLoss, "LossBudgetExceeded with a total within the budget");
        }
    }

    function _tail(bytes memory b) internal pure returns (bytes memory t) {
        t = new bytes(b.length - 4);
        for (uint256 i; i < t.length; ++i) {
            t[i] = b[i + 4];
        }
    }

    function _tag(Leg memory g) internal pure returns (string memory) {
        return string.concat("leg ", _name(g.id), " by role ", _roleName(g.role));
    }

    function _roleName(uint8 r) internal pure returns (string memory) {
        return r == OPERATOR ? "operator" : r == OWNER ? "owner" : r == GUARDIAN ? "guardian" : "stranger";
    }

    function _name(uint8 id) internal pure returns (string memory) {
        string[22] memory n = ["supply", "borrow", "buy", "redeem", "sell", "repay", "ownerRepay", "addCollateral",
            "withdrawCollateral", "deleverage", "close", "hold", "resume", "pause", "unpause", "observe", "withdraw", "fund",
            "split", "setParam", "acceptParam", "revokeParam"];
        return n[id];
    }

    /// @dev Every vault log of a successful leg, in order, against the model; Transfers out of the
    ///      vault go only to the owner or a venue; the vault's approvals are watched. Returns the
    ///      operator loss the leg booked.
    function _audit(Leg memory g, Vm.Log[] memory logs) internal returns (uint256 loss) {
        for (uint256 i; i < logs.length; ++i) {
            Vm.Log memory lg = logs[i];
            if (lg.topics.length == 0) continue;
            bytes32 t0 = lg.topics[0];
            if (lg.emitter != address(vault)) {
                if (t0 == IERC20.Transfer.selector && lg.topics.length == 3
                        && address(uint160(uint256(lg.topics[1]))) == address(vault)) {
                    _recipient(g, lg.emitter, address(uint160(uint256(lg.topics[2]))), abi.decode(lg.data, (uint256)));
                } else if (t0 == IERC20.Transfer.selector && lg.topics.length == 3
                        && address(uint160(uint256(lg.topics[2]))) == address(vault)
                        && (address(uint160(uint256(lg.topics[1]))) == wethPairs[0]
                            || address(uint160(uint256(lg.topics[1]))) == wethPairs[1])) {
                    sawFromWethPair += abi.decode(lg.data, (uint256));
                } else if (t0 == IERC20.Approval.selector && lg.topics.length == 3
                        && address(uint160(uint256(lg.topics[1]))) == address(vault)) {
                    _watch(lg.emitter, address(uint160(uint256(lg.topics[2]))));
                }
                continue;
            }
            if (t0 == IDealVaultTypes.OperatorLoss.selector) {
                loss += _auditLoss(g, lg);
            } else if (t0 == IDealVaultTypes.RiskParamSet.selector) {
                _auditSet(g, lg);
            } else if (t0 == IDealVaultTypes.RiskParamQueued.selector) {
                _auditQueued(g, lg);
            } else if (t0 == IDealVaultTypes.RiskParamRevoked.selector) {
                uint256 p = uint256(lg.topics[1]);
                _check(g.id == REVOKE_PARAM, "RiskParamRevoked by another function");
                _check(queuedAt[p] != 0, "revoked with nothing queued");
                queuedAt[p] = 0;
                queuedValue[p] = 0;
            } else if (t0 == IDealVaultTypes.RepaidOnBehalf.selector) {
                uint256 i_ = address(uint160(uint256(lg.topics[1]))) == k.cusdt ? 0 : 1;
                uint256 amount = abi.decode(lg.data, (uint256));
                _check(pendingScaled[i_] > 0, "RepaidOnBehalf but nobody repaid for the vault");
                // at the index the pool reported before the leg's own pool calls: with no debt left on
                // the reserve, the view's index grows at the base rate but Aave's next updateState
                // does not apply that growth (Regressions: repaidOnBehalfAtTheIndexTheVaultSaw)
                _checkEq(amount, _rayMul(pendingScaled[i_], g.b.idx[i_]), "RepaidOnBehalf != scaled x index");
                pendingScaled[i_] = 0;
                rob += amount;
            } else if (t0 == IDealVaultTypes.Observed.selector) {
                uint256 i_ = address(uint160(uint256(lg.topics[1]))) == k.cusdt ? 0 : 1;
                (uint256 cum, uint256 ts) = abi.decode(lg.data, (uint256, uint256));
                _checkEq(ts, block.timestamp, "Observed timestamp");
                _checkEq(cum, g.a.cum[i_] & MASK192, "Observed cumulative != the pair's");
                obsCum[i_] = cum;
                obsTs[i_] = ts;
            } else if (t0 == IDealVaultTypes.RedemptionFailed.selector) {
                sawRedemptionFailed = true;
            } else if (t0 == IDealVaultTypes.LegCompleted.selector) {
                sawLegCompleted = true;
            } else if (t0 == IDealVaultTypes.Withdrawn.selector) {
                sawWithdrawnCount++;
                (sawWithdrawnAmount, sawWithdrawnFromBooks) = abi.decode(lg.data, (uint256, uint256));
            } else if (t0 == IDealVaultTypes.Closed.selector) {
                sawClosed = lg.data;
            } else if (t0 == IDealVaultTypes.Split.selector) {
                _check(false, "a second Split");
            } else if (t0 == IDealVaultTypes.CollateralSeized.selector) {
                _check(false, "CollateralSeized (nobody liquidates here)");
            }
        }
        if (loss > 0) {
            _check(g.role == OPERATOR, string.concat(_tag(g), ": a non-operator leg booked an operator loss"));
            _check(_lossLeg(g.id) != 255, string.concat(_tag(g), ": booked an operator loss"));
        }
    }

    function _recipient(Leg memory g, address token, address to, uint256 amount) internal {
        if (amount == 0) return;
        if (to == address(0)) {
            bool burnable = token == k.weth9 || token == k.weth10 || token == aTokens[0] || token == aTokens[1]
                || token == k.aCusdt || token == k.aCusdc || token == debtTokens[0] || token == debtTokens[1];
            _check(burnable, string.concat(_tag(g), ": burned a token from the vault"));
            return;
        }
        bool venue = to == k.pool || to == k.router || to == k.desk || to == k.owner || to == k.weth9 || to == k.weth10
            || to == usdtzPairs[0] || to == usdtzPairs[1] || to == wethPairs[0] || to == wethPairs[1]
            || to == aTokens[0] || to == aTokens[1] || to == k.aCusdt || to == k.aCusdc;
        _check(venue, string.concat(_tag(g), ": value left the vault to ", vm.toString(to)));
    }

    function _watch(address token, address spender) internal {
        bytes32 key = keccak256(abi.encode(token, spender));
        if (watched[key]) return;
        watched[key] = true;
        watchToken.push(token);
        watchSpender.push(spender);
    }

    function stableBooksNow() external view returns (uint256[2] memory) {
        return _stableBooks();
    }

    function collBooksNow() external view returns (uint256[2] memory) {
        return _collBooks();
    }

    function booksNow() external view returns (Books memory) {
        return _booksNow();
    }

    function watchCount() external view returns (uint256) {
        return watchToken.length;
    }

    function _auditLoss(Leg memory g, Vm.Log memory lg) internal returns (uint256 loss) {
        (uint256 l, uint256 total, uint256 budget) = abi.decode(lg.data, (uint256, uint256, uint256));
        lossEvents++;
        _checkEq(uint256(lg.topics[1]), _lossLeg(g.id), "OperatorLoss leg id");
        _checkEq(budget, splitValue * params[8] / BPS, "OperatorLoss budget != splitValue x bps");
        _checkEq(total, opLoss + l, "OperatorLoss total != previous + loss");
        _check(total <= budget, "operator loss past the budget");
        _check(l > 0, "OperatorLoss of 0");
        opLoss = total;
        loss = l;
    }

    function _higher(uint256 p) internal pure returns (bool) {
        return p == 4 || p == 6 || p == 7 || p == 9 || p == 10;
    }

    function limitOf(uint256 p) public pure returns (uint256) {
        uint256[11] memory lim = [uint256(3000), 2500, 1000, type(uint32).max, 9999, 1000, 1e6, 1e16, 1000, 65_535,
            30 * 86_400];
        return lim[p];
    }

    function floorOf(uint256 p) public pure returns (uint256) {
        if (p == 3 || p == 6 || p == 7 || p == 9) return 1;
        if (p == 10) return 3600;
        return 0;
    }

    function _auditSet(Leg memory g, Vm.Log memory lg) internal {
        uint256 p = uint256(lg.topics[1]);
        (uint256 old, uint256 nw) = abi.decode(lg.data, (uint256, uint256));
        bool hi = _higher(p);
        _checkEq(old, params[p], "RiskParamSet old value != model");
        _check(floorOf(p) <= nw && nw <= limitOf(p), "parameter set outside its hard limits");
        bool tighter = hi ? nw >= old : nw <= old;
        if (g.id == SET_PARAM) {
            _check(tighter, "setParam loosened at once");
            queuedAt[p] = 0;
            queuedValue[p] = 0;
        } else if (g.id == ACCEPT_PARAM) {
            _check(queuedAt[p] != 0, "acceptParam with nothing queued");
            _checkEq(nw, queuedValue[p], "acceptParam value != queued");
            _check(block.timestamp >= queuedAt[p], "acceptParam before validAt");
            queuedAt[p] = 0;
            queuedValue[p] = 0;
            if (!tighter) loosenings++;
        } else {
            _check(false, "RiskParamSet by another function");
        }
        if (!tighter) _check(hi ? nw >= initial[p] : nw <= initial[p], "parameter loosened past its initial value");
        params[p] = nw;
    }

    function _auditQueued(Leg memory g, Vm.Log memory lg) internal {
        uint256 p = uint256(lg.topics[1]);
        (uint256 val, uint256 validAt) = abi.decode(lg.data, (uint256, uint256));
        bool hi = _higher(p);
        _check(g.id == SET_PARAM, "RiskParamQueued by another function");
        _check(hi ? val < params[p] : val > params[p], "queued a non-loosening");
        _check(hi ? val >= initial[p] : val <= initial[p], "queued past the initial value");
        _checkEq(validAt, block.timestamp + params[10], "validAt != now + loosenDelay");
        queuedValue[p] = val;
        queuedAt[p] = validAt;
    }

    /// @dev ETH is conserved among the vault, the wrappers, the owner and the caller.
    function _conservation(Leg memory g, uint256 value) internal {
        uint256 before = g.b.ethVault + g.b.ethWrappers + g.b.ethOwner;
        uint256 afterwards = g.a.ethVault + g.a.ethWrappers + g.a.ethOwner;
        if (g.who != k.owner) {
            // the caller's own ETH (only fund carries value)
            before += value;
        }
        _check(before == afterwards, string.concat(_tag(g), ": ETH left the vault / wrappers / owner circle"));
    }

    function _navE26(State memory s, uint256 price, uint256 capsDebt) internal pure returns (int256) {
        return int256((_ethBooks(s) + _collWei(s)) * price)
            + (int256(s.stableBooks[0] + s.stableBooks[1] + s.rv.usdtzCost) - int256(capsDebt)) * 1e20;
    }

    /// @dev The caps after a risk-adding leg; no rise of debt, LTV or exposure on a risk-reducing one;
    ///      an operator leg never lowers NAV by more than the loss it books.
    function _caps(Leg memory g) internal {
        string memory tag = _tag(g);
        uint256 cdb = _bookedDebt(g.b) + robAtLegStart;
        uint256 cda = _bookedDebt(g.a) + rob;
        if (g.role == OPERATOR) {
            int256 drop = _navE26(g.b, g.price, cdb) - _navE26(g.a, g.price, cda);
            _check(drop <= int256(g.loss * 1e20 + (AAVE_ROUNDING + 1) * 1e20),
                string.concat(tag, ": lowered NAV by more than the loss it booked"));
        }
        if (g.riskAdding) {
            (, uint256 pa) = _oracle(g.a, params[3]);
            uint256 ca = _collWei(g.a);
            if (_bookedDebt(g.a) > 0) {
                _check(cda * 1e24 <= params[0] * ca * pa, string.concat(tag, ": LTV above the cap (books, oracle)"));
                (uint256 guaColl, uint256 guaDebt,,,,) = IAaveV3Pool(k.pool).getUserAccountData(address(vault));
                _check(guaDebt * BPS <= params[0] * guaColl, string.concat(tag, ": LTV above the cap (pool)"));
            }
            uint256 u = g.a.rv.usdtzHeld;
            if (u > 0) {
                int256 nav = _navE26(g.a, pa, cda);
                _check(nav > 0 && u * 1e24 <= params[1] * uint256(nav), string.concat(tag, ": exposure above the cap"));
            }
        } else if (_riskReducing(g.id)) {
            uint256 db = _poolDebt(g.b);
            uint256 da = _poolDebt(g.a);
            _check(da <= db, string.concat(tag, ": raised the pool debt"));
            _check(cda <= cdb + AAVE_ROUNDING, string.concat(tag, ": raised the caps' debt"));
            _check(da * _collWei(g.b) <= db * _collWei(g.a), string.concat(tag, ": raised the LTV"));
            _exposureNotUp(g, cdb, cda);
        }
    }


    function _exposureNotUp(Leg memory g, uint256 cdb, uint256 cda) internal {
        uint256 ua = g.a.rv.usdtzHeld;
        uint256 ub = g.b.rv.usdtzHeld;
        // (NAV needs a valid ETH price: with an Invalid oracle there is no exposure to compare;
        // Regressions: operatorSellUnderInvalidOracle)
        if (ua == 0 || g.id == CLOSE || g.status == 2) return;
        int256 nb = _navE26(g.b, g.price, cdb);
        int256 na = _navE26(g.a, g.price, cda);
        if (g.id == DELEVERAGE) {
            bool refIsFeed = g.status == 0 || (g.status == 1 && g.role == OPERATOR);
            if (refIsFeed) {
                uint256 sold = _collWei(g.b) - _collWei(g.a);
                _check(nb - na <= int256(sold * g.price * params[5] / BPS + AAVE_ROUNDING * 1e20),
                    "deleverage lost more NAV than the slippage allowance");
            }
            return;
        }
        if (na <= 0) {
            _check(nb <= 0, string.concat(_tag(g), ": made NAV <= 0 with USDTz held"));
        } else if (nb > 0) {
            _check(ua * uint256(nb) <= ub * (uint256(na) + AAVE_ROUNDING * 1e20), string.concat(_tag(g), ": raised the exposure"));
        }
    }
}
