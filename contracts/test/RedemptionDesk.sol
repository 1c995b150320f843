// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IRedemptionDesk} from "../interfaces/IRedemptionDesk.sol";

/// @title RedemptionDesk
/// @notice Test stand-in for the USDTz issuer's redemption desk. Takes USDTz and pays an
///         allow-listed stablecoin 1:1 minus a fee, out of the stablecoin the desk itself holds:
///         when that runs low, redemptions revert (InsufficientLiquidity). The issuer can halt
///         redemptions; the operator sets the fee, the per-request cap and the payout list, and
///         sweeps received USDTz to the issuer.
/// @dev fee(amount) = ceil(amount * feeBps / 10_000) + flatFee, rounded up against the redeemer.
///      Payout tokens must have USDTz's decimals (amounts are paid 1:1 in raw units).
contract RedemptionDesk is IRedemptionDesk, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice 100% in basis points; the largest allowed feeBps.
    uint256 public constant MAX_FEE_BPS = 10_000;

    /// @inheritdoc IRedemptionDesk
    address public immutable override usdtz;
    /// @notice May halt and resume redemptions; receives swept USDTz.
    address public immutable issuer;
    /// @notice May set the fee, the per-request cap and the payout list, and sweep USDTz.
    address public immutable operator;

    /// @notice Proportional fee, in basis points of the redeemed amount.
    uint256 public feeBps;
    /// @notice Flat fee per request, in USDTz units.
    uint256 public flatFee;
    /// @inheritdoc IRedemptionDesk
    uint256 public override maxPerRequest;
    /// @inheritdoc IRedemptionDesk
    bool public override halted;
    /// @inheritdoc IRedemptionDesk
    mapping(address token => bool) public override isPayoutToken;

    /// @notice `redeemer` gave `amount` USDTz and received `paid` of `payoutToken`; `fee` was kept.
    event Redeemed(address indexed redeemer, address indexed payoutToken, uint256 amount, uint256 fee, uint256 paid);
    /// @notice The issuer halted redemptions.
    event Halted(address indexed by);
    /// @notice The issuer resumed redemptions.
    event Resumed(address indexed by);
    /// @notice The fee became `feeBps` basis points plus `flatFee`.
    event FeeSet(uint256 feeBps, uint256 flatFee);
    /// @notice The per-request cap became `maxPerRequest`.
    event MaxPerRequestSet(uint256 maxPerRequest);
    /// @notice `token` was added to (`allowed`) or removed from the payout list.
    event PayoutTokenSet(address indexed token, bool allowed);
    /// @notice `amount` USDTz was sent to the issuer.
    event Swept(address indexed issuer, uint256 amount);

    /// @notice The issuer has halted redemptions.
    error RedemptionsHalted();
    /// @notice A redemption of zero was asked for.
    error ZeroAmount();
    /// @notice `amount` is above the per-request cap `max`.
    error AboveMaxPerRequest(uint256 amount, uint256 max);
    /// @notice `token` is not on the payout list.
    error PayoutTokenNotListed(address token);
    /// @notice The fee `fee` leaves nothing to pay out of `amount`.
    error AmountNotAboveFee(uint256 amount, uint256 fee);
    /// @notice The desk holds only `available` of `token`, less than the `needed` payout.
    error InsufficientLiquidity(address token, uint256 available, uint256 needed);
    /// @notice `caller` is not the issuer.
    error NotIssuer(address caller);
    /// @notice `caller` is not the operator.
    error NotOperator(address caller);
    /// @notice `feeBps` is above MAX_FEE_BPS.
    error FeeTooHigh(uint256 feeBps, uint256 max);
    /// @notice A required address was zero.
    error ZeroAddress();
    /// @notice `token` cannot be a payout token (it is USDTz).
    error InvalidPayoutToken(address token);
    /// @notice `token` has `decimals` decimals; payouts need USDTz's `expected`.
    error DecimalsMismatch(address token, uint8 decimals, uint8 expected);

    modifier onlyIssuer() {
        if (msg.sender != issuer) revert NotIssuer(msg.sender);
        _;
    }

    modifier onlyOperator() {
        if (msg.sender != operator) revert NotOperator(msg.sender);
        _;
    }

    /// @param usdtz_ the redeemed token.
    /// @param issuer_ halts/resumes and receives swept USDTz.
    /// @param operator_ manages fee, cap, payout list and sweeps.
    /// @param feeBps_ proportional fee in basis points (at most 10_000).
    /// @param flatFee_ flat fee per request, in USDTz units.
    /// @param maxPerRequest_ largest amount accepted in one request.
    constructor(
        address usdtz_,
        address issuer_,
        address operator_,
        uint256 feeBps_,
        uint256 flatFee_,
        uint256 maxPerRequest_
    ) {
        if (usdtz_ == address(0) || issuer_ == address(0) || operator_ == address(0)) revert ZeroAddress();
        if (feeBps_ > MAX_FEE_BPS) revert FeeTooHigh(feeBps_, MAX_FEE_BPS);
        usdtz = usdtz_;
        issuer = issuer_;
        operator = operator_;
        feeBps = feeBps_;
        flatFee = flatFee_;
        maxPerRequest = maxPerRequest_;
        emit FeeSet(feeBps_, flatFee_);
        emit MaxPerRequestSet(maxPerRequest_);
    }

    /// @inheritdoc IRedemptionDesk
    function redeem(address payoutToken, uint256 amount) external override nonReentrant returns (uint256 paid) {
        if (halted) revert RedemptionsHalted();
        if (amount == 0) revert ZeroAmount();
        if (amount > maxPerRequest) revert AboveMaxPerRequest(amount, maxPerRequest);
        if (!isPayoutToken[payoutToken]) revert PayoutTokenNotListed(payoutToken);
        uint256 fee = quoteFee(amount);
        if (fee >= amount) revert AmountNotAboveFee(amount, fee);
        // Checked just above: fee < amount.
        unchecked {
            paid = amount - fee;
        }
        uint256 available = IERC20(payoutToken).balanceOf(address(this));
        if (available < paid) revert InsufficientLiquidity(payoutToken, available, paid);

        emit Redeemed(msg.sender, payoutToken, amount, fee, paid);

        IERC20(usdtz).safeTransferFrom(msg.sender, address(this), amount);
        IERC20(payoutToken).safeTransfer(msg.sender, paid);
    }

    /// @inheritdoc IRedemptionDesk
    function quoteFee(uint256 amount) public view override returns (uint256 fee) {
        return Math.mulDiv(amount, feeBps, MAX_FEE_BPS, Math.Rounding.Ceil) + flatFee;
    }

    /// @notice Issuer: stops all redemptions.
    function halt() external onlyIssuer {
        halted = true;
        emit Halted(msg.sender);
    }

    /// @notice Issuer: lets redemptions run again.
    function resume() external onlyIssuer {
        halted = false;
        emit Resumed(msg.sender);
    }

    /// @notice Operator: sets the fee to `feeBps_` basis points plus `flatFee_`.
    function setFee(uint256 feeBps_, uint256 flatFee_) external onlyOperator {
        if (feeBps_ > MAX_FEE_BPS) revert FeeTooHigh(feeBps_, MAX_FEE_BPS);
        feeBps = feeBps_;
        flatFee = flatFee_;
        emit FeeSet(feeBps_, flatFee_);
    }

    /// @notice Operator: sets the per-request cap (0 blocks every redemption).
    function setMaxPerRequest(uint256 maxPerRequest_) external onlyOperator {
        maxPerRequest = maxPerRequest_;
        emit MaxPerRequestSet(maxPerRequest_);
    }

    /// @notice Operator: adds `token` to (`allowed`) or removes it from the payout list. A listed
    ///         token must have USDTz's decimals.
    function setPayoutToken(address token, bool allowed) external onlyOperator {
        if (token == address(0) || token == usdtz) revert InvalidPayoutToken(token);
        if (allowed) {
            uint8 expected = IERC20Metadata(usdtz).decimals();
            uint8 actual = IERC20Metadata(token).decimals();
            if (actual != expected) revert DecimalsMismatch(token, actual, expected);
        }
        isPayoutToken[token] = allowed;
        emit PayoutTokenSet(token, allowed);
    }

    /// @notice Operator: sends all USDTz the desk holds to the issuer.
    /// @return amount what was sent.
    function sweep() external onlyOperator returns (uint256 amount) {
        amount = IERC20(usdtz).balanceOf(address(this));
        emit Swept(issuer, amount);
        IERC20(usdtz).safeTransfer(issuer, amount);
    }
}
