// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

import {IDealVaultExtension} from "./interfaces/IDealVault.sol";
import {IAaveV3Pool} from "./interfaces/IAaveV3Pool.sol";
import {IWETH} from "./interfaces/IWETH.sol";
import {OracleLib} from "./libraries/OracleLib.sol";
import {RiskLib} from "./libraries/RiskLib.sol";
import {ParamTable} from "./libraries/ParamTable.sol";
import {TwapLib} from "./libraries/TwapLib.sol";
import {DealVaultBase} from "./DealVaultBase.sol";

/// @title DealVaultExtension
/// @notice The vault's functions outside the legs (IDealVaultExtension): the owner's and the
///         guardian's (fund, ownerRepay, hold, resume, pause, withdraw, the roles), the risk
///         parameters and their timelock, observe and the views. Its code runs only by the core's
///         DELEGATECALL, on the core's storage, with the core's immutables (the core passes its
///         Setup).
/// @dev Called directly (not through the core) it works on its own empty storage: no owner, no
///      operator, no guardian, so every gated function reverts and nothing it holds can move.
contract DealVaultExtension is DealVaultBase, IDealVaultExtension {
    using SafeERC20 for IERC20;
    using OracleLib for OracleLib.Price;

    constructor(Setup memory s) DealVaultBase(s) {}

    /* OWNER AND GUARDIAN */

    /// @inheritdoc IDealVaultExtension
    function fund() external payable nonReentrant {
        _onlyOwner();
        _phaseIn(M_FUNDED);
        if (msg.value == 0) revert ZeroAmount();
        uint256 funded = fundedCapital + msg.value;
        fundedCapital = _u80(funded);
        // until split, the funded capital is core: protected, recoverable, and counted at close
        coreEth = _u80(coreEth + msg.value);
        emit Funded(msg.sender, msg.value, funded);
        _finishLight(Leg.Fund);
    }

    /// @inheritdoc IDealVaultExtension
    function ownerRepay(address stable, uint256 amount) external nonReentrant {
        _onlyOwner();
        _phaseIn(M_REDUCE);
        address debtToken = _debtToken(stable);
        _syncDebt();
        // nothing owed: nothing to pull (`< 1`, not `== 0`: a balance-derived value, slither incorrect-equality)
        if (amount == 0 || _selfBalance(debtToken) < 1) revert ZeroAmount();

        // what arrived (a fee-charging stablecoin delivers less than it debits); the pool takes at
        // most the debt and the rest goes back, so one call settles the debt whatever the token
        uint256 before = _selfBalance(stable);
        IERC20(stable).safeTransferFrom(msg.sender, address(this), amount);
        uint256 arrived = _selfBalance(stable) - before;
        uint256 repaid = _repay(stable, arrived);
        // repaid <= arrived (the pool takes at most what it was approved for)
        ownerRepaid = _u64(ownerRepaid + repaid);
        if (repaid < arrived) IERC20(stable).safeTransfer(msg.sender, arrived - repaid);
        _bookScaled(stable, debtToken);
        emit Repaid(stable, repaid, msg.sender);
        _finishLight(Leg.OwnerRepay);
    }

    /// @inheritdoc IDealVaultExtension
    function resume() external nonReentrant {
        _onlyOwner();
        _phaseIn(M_HOLDING);
        Phase to = phaseBeforeHolding;
        phase_ = to;
        emit Resumed(to);
        _finishLight(Leg.Resume);
    }

    /// @inheritdoc IDealVaultExtension
    function pause() external {
        _onlyOwnerOrGuardian();
        paused_ = true;
        emit PauseChanged(true, msg.sender);
    }

    /// @inheritdoc IDealVaultExtension
    function unpause() external {
        _onlyOwner();
        paused_ = false;
        emit PauseChanged(false, msg.sender);
    }

    /// @inheritdoc IDealVaultExtension
    function hold() external nonReentrant {
        _onlyOwnerOrGuardian();
        _phaseIn(M_OPEN);
        _enterHolding(msg.sender == owner_ ? 1 : 2);
        _finishLight(Leg.Hold);
    }

    /// @inheritdoc IDealVaultExtension
    function withdraw(address token, uint256 amount) external nonReentrant {
        _onlyOwner();
        uint256 fromBooks = 0;
        Phase current = phase_;
        if (current != Phase.CLOSED) {
            uint256 available = _surplus(token);
            if (amount > available) {
                // the owner's exit: in HOLDING the idle ETH buckets come back, whatever the pool does
                if (token != address(0) || current != Phase.HOLDING) {
                    revert InsufficientBucket(B_SURPLUS, available, amount);
                }
                fromBooks = amount - available;
                _takeIdleEth(fromBooks);
            }
        } else {
            // after CLOSED anything may go, surplus first; the books follow what is left
            fromBooks = _debitClosed(token, amount);
        }
        emit Withdrawn(token, amount, fromBooks);
        if (token == address(0)) {
            (bool ok,) = msg.sender.call{value: amount}("");
            if (!ok) revert EthTransferFailed();
        } else {
            IERC20(token).safeTransfer(msg.sender, amount);
        }
    }

    /// @inheritdoc IDealVaultExtension
    function setParam(Param param, uint256 value) external {
        _onlyOwner();
        uint256 p = uint256(param);
        _checkLimits(p, value);
        (uint256 slot, uint256 shift, uint256 mask) = ParamTable.locate(p);
        bool higher = ParamTable.higherIsTighter(p);
        uint256 current = (_word(slot) >> shift) & mask;
        if (higher ? value >= current : value <= current) {
            // tighter (or the same): at once, superseding any queued loosening
            delete queued[p];
            _writeWord(slot, shift, mask, value);
            emit RiskParamSet(param, current, value);
        } else {
            uint256 initial = (initialWords[slot] >> shift) & mask;
            if (higher ? value < initial : value > initial) revert LoosenedPastInitial(param, value, initial);
            uint256 validAt = block.timestamp + loosenDelay;
            queued[p] = (value << 64) | validAt;
            emit RiskParamQueued(param, value, validAt);
        }
    }

    /// @inheritdoc IDealVaultExtension
    function acceptParam(Param param) external {
        uint256 p = uint256(param);
        uint256 q = queued[p];
        // a queued word is never 0 (validAt > 0): 0 is "nothing queued"
        // slither-disable-next-line incorrect-equality
        if (q == 0) revert NothingQueued(param);
        uint256 validAt = uint64(q);
        if (block.timestamp < validAt) revert QueuedUntil(param, validAt);
        delete queued[p];
        (uint256 slot, uint256 shift, uint256 mask) = ParamTable.locate(p);
        uint256 current = (_word(slot) >> shift) & mask;
        _writeWord(slot, shift, mask, q >> 64);
        emit RiskParamSet(param, current, q >> 64);
    }

    /// @inheritdoc IDealVaultExtension
    function revokeParam(Param param) external {
        _onlyOwnerOrGuardian();
        uint256 p = uint256(param);
        if (queued[p] == 0) revert NothingQueued(param);
        delete queued[p];
        emit RiskParamRevoked(param, msg.sender);
    }

    /// @inheritdoc IDealVaultExtension
    function setOperator(address newOperator) external {
        _onlyOwner();
        _newRole(newOperator, guardian_);
        emit OperatorSet(operator_, newOperator);
        operator_ = newOperator;
    }

    /// @inheritdoc IDealVaultExtension
    function setGuardian(address newGuardian) external {
        _onlyOwner();
        _newRole(newGuardian, operator_);
        emit GuardianSet(guardian_, newGuardian);
        guardian_ = newGuardian;
    }

    /// @inheritdoc IDealVaultExtension
    function transferOwnership(address newOwner) external {
        _onlyOwner();
        pendingOwner_ = newOwner;
        emit OwnershipTransferStarted(msg.sender, newOwner);
    }

    /// @inheritdoc IDealVaultExtension
    function acceptOwnership() external {
        if (msg.sender != pendingOwner_) revert NotPendingOwner(msg.sender);
        if (msg.sender == operator_ || msg.sender == guardian_) revert RolesNotDistinct(msg.sender);
        emit OwnershipTransferred(owner_, msg.sender);
        owner_ = msg.sender;
        pendingOwner_ = address(0);
    }

    /// @inheritdoc IDealVaultExtension
    function renounceOwnership() external {
        _onlyOwner();
        _phaseIn(M_CLOSED);
        emit OwnershipTransferred(msg.sender, address(0));
        owner_ = address(0);
        pendingOwner_ = address(0);
    }

    /// @inheritdoc IDealVaultExtension
    function renounceOperator() external {
        _onlyOperator();
        emit OperatorSet(msg.sender, address(0));
        operator_ = address(0);
    }

    /// @inheritdoc IDealVaultExtension
    function renounceGuardian() external {
        if (msg.sender != guardian_) revert NotGuardian(msg.sender);
        emit GuardianSet(msg.sender, address(0));
        guardian_ = address(0);
    }

    /* OUTSIDE THE LEGS */


    /// @inheritdoc IDealVaultExtension
    function observe() external nonReentrant {
        _onlyOperatorOrOwner();
        _phaseIn(M_OPEN | M_HOLDING);
        _observe();
    }





    /* VIEWS */

    /// @inheritdoc IDealVaultExtension
    function owner() external view returns (address) {
        return owner_;
    }

    /// @inheritdoc IDealVaultExtension
    function operator() external view returns (address) {
        return operator_;
    }

    /// @inheritdoc IDealVaultExtension
    function guardian() external view returns (address) {
        return guardian_;
    }

    /// @inheritdoc IDealVaultExtension
    function pendingOwner() external view returns (address) {
        return pendingOwner_;
    }

    /// @inheritdoc IDealVaultExtension
    function phase() external view returns (Phase) {
        return phase_;
    }

    /// @inheritdoc IDealVaultExtension
    function paused() external view returns (bool) {
        return paused_;
    }

    /// @inheritdoc IDealVaultExtension
    function setup() external view returns (Setup memory) {
        return _setupOf();
    }

    /* INTERNAL */







    /// @dev The owner's exit in HOLDING: `amount` of booked ETH, opportunistic first, core last.
    function _takeIdleEth(uint256 amount) internal {
        uint256 opp = opportunisticEth;
        uint256 working = workingEth;
        uint256 core = coreEth;
        if (amount > opp + working + core) revert InsufficientBucket(B_SURPLUS, opp + working + core, amount);
        uint256 fromOpp = Math.min(amount, opp);
        uint256 fromWorking = Math.min(amount - fromOpp, working);
        // each part <= its bucket, their sum == amount <= the three buckets
        opportunisticEth = uint80(opp - fromOpp);
        workingEth = uint80(working - fromWorking);
        coreEth = uint80(core - (amount - fromOpp - fromWorking));
        ethReturned = _u80(ethReturned + amount);
    }

    /// @dev After CLOSED: what of `amount` comes out of the books (the rest is surplus), written off
    ///      them, so the lens never shows a closed vault holding what it no longer has.
    function _debitClosed(address token, uint256 amount) internal returns (uint256 fromBooks) {
        uint256 booked;
        uint256 balance;
        if (token == address(0)) {
            booked = uint256(coreEth) + workingEth + opportunisticEth;
            balance = address(this).balance;
        } else {
            // token != 0 here, so an absent WETH10 reserve (aWeth10 == 0) never matches
            booked = token == usdtz ? usdtzHeld : token == aWeth9 ? collateral9 : token == aWeth10 ? collateral10 : stableOf(token);
            balance = _selfBalance(token);
        }
        // what stays after the transfer (a larger amount reverts in the transfer itself)
        uint256 left = balance > amount ? balance - amount : 0;
        if (booked <= left) return 0;
        fromBooks = booked - left;
        // left < booked, a uint80 book
        if (token == address(0)) _takeIdleEth(fromBooks);
        else if (token == usdtz) usdtzHeld = uint80(left);
        else if (token == aWeth9) collateral9 = uint80(left);
        else if (token == aWeth10) collateral10 = uint80(left);
        else if (token == cusdt || token == cusdc) _setStable(token, left);
    }

    function _surplus(address token) internal view returns (uint256) {
        uint256 booked;
        uint256 balance;
        if (token == address(0)) {
            booked = uint256(coreEth) + workingEth + opportunisticEth;
            balance = address(this).balance;
        } else {
            if (token == aWeth9 || token == aWeth10) return 0; // collateral, never surplus before CLOSED
            booked = token == usdtz ? usdtzHeld : stableOf(token);
            balance = _selfBalance(token);
        }
        return balance > booked ? balance - booked : 0;
    }


    function _newRole(address account, address other) internal view {
        if (account == address(0)) revert ZeroAddress("role");
        if (account == owner_ || account == other) revert RolesNotDistinct(account);
    }
}
