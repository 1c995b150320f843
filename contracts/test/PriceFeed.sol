// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IAggregatorV3} from "../interfaces/IAggregatorV3.sol";

/// @title PriceFeed
/// @notice Test stand-in for a Chainlink ETH / USD feed (8 decimals). The owner pushes rounds;
///         round ids start at 1 and grow by one per update; past rounds stay readable and unknown
///         rounds revert like Chainlink ("No data present"). Any answer, including zero or a
///         negative one, and any timestamp (stale, zero, future) can be set.
/// @dev Placed at its canonical address with `anvil_setCode`, so the constructor may never run:
///      nothing is immutable or initialised at declaration; call {initialize} once after setCode.
///      Storage layout: slot 0 packs owner (bits 0-159) and the latest round id (uint80, bits
///      160-239); slot 1 is the rounds mapping (round r at keccak256(abi.encode(r, 1)), 3 slots:
///      answer, startedAt, updatedAt).
contract PriceFeed is IAggregatorV3 {
    /// @dev One stored round; `answeredInRound` always equals the round id.
    struct Round {
        int256 answer;
        uint256 startedAt;
        uint256 updatedAt;
    }

    /// @notice Feed decimals.
    uint8 public constant override decimals = 8;
    /// @notice Aggregator version reported by current Chainlink (OCR) aggregators.
    uint256 public constant override version = 4;

    /// @notice Who may push rounds; zero until {initialize} (or the constructor) ran.
    address public owner;
    uint80 private _latestRoundId;
    mapping(uint80 roundId => Round) private _rounds;

    /// @notice Chainlink `AggregatorInterface` event, emitted for every new round.
    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);
    /// @notice Chainlink `AggregatorInterface` event, emitted for every new round.
    event NewRound(uint256 indexed roundId, address indexed startedBy, uint256 startedAt);
    /// @notice The owner changed (from zero on initialisation).
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    /// @notice Round `roundId` does not exist (Chainlink: "No data present").
    error NoDataPresent(uint80 roundId);
    /// @notice `caller` is not the owner.
    error NotOwner(address caller);
    /// @notice The feed already has owner `owner`.
    error AlreadyInitialized(address owner);
    /// @notice The owner cannot be the zero address (zero means "not initialised").
    error ZeroOwner();

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    /// @notice Normal deployment: same as {initialize}. Pass owner_ = address(0) to deploy an
    ///         uninitialised copy (e.g. only to take its runtime code for setCode).
    constructor(address owner_, int256 answer) {
        if (owner_ != address(0)) _initialize(owner_, answer);
    }

    /// @notice One-time set-up after `anvil_setCode`: sets the owner and pushes round 1 with
    ///         `answer` at the current block time. Reverts once an owner is set.
    function initialize(address owner_, int256 answer) external {
        _initialize(owner_, answer);
    }

    /// @notice Starts a new round with `answer`, updated now.
    function setAnswer(int256 answer) external onlyOwner {
        _pushRound(answer, block.timestamp);
    }

    /// @notice Starts a new round with `answer` and an explicit `updatedAt` (also used as startedAt).
    function setRound(int256 answer, uint256 updatedAt) external onlyOwner {
        _pushRound(answer, updatedAt);
    }

    /// @notice Hands the feed to `newOwner` in one step.
    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert ZeroOwner();
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }

    /// @notice Always "ETH / USD".
    function description() external pure override returns (string memory) {
        return "ETH / USD";
    }

    /// @notice Data of past round `roundId`; reverts with NoDataPresent for unknown rounds.
    function getRoundData(uint80 roundId)
        public
        view
        override
        returns (uint80 roundId_, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        if (roundId == 0 || roundId > _latestRoundId) revert NoDataPresent(roundId);
        Round storage r = _rounds[roundId];
        return (roundId, r.answer, r.startedAt, r.updatedAt, roundId);
    }

    /// @notice Data of the latest round; reverts with NoDataPresent(0) before the first round.
    function latestRoundData()
        external
        view
        override
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return getRoundData(_latestRoundId);
    }

    /// @notice Legacy: latest answer (0 before the first round).
    function latestAnswer() external view override returns (int256) {
        return _rounds[_latestRoundId].answer;
    }

    /// @notice Legacy: latest round's updatedAt (0 before the first round).
    function latestTimestamp() external view override returns (uint256) {
        return _rounds[_latestRoundId].updatedAt;
    }

    /// @notice Legacy: latest round id (0 before the first round).
    function latestRound() external view override returns (uint256) {
        return _latestRoundId;
    }

    function _initialize(address owner_, int256 answer) private {
        if (owner != address(0)) revert AlreadyInitialized(owner);
        if (owner_ == address(0)) revert ZeroOwner();
        owner = owner_;
        emit OwnershipTransferred(address(0), owner_);
        _pushRound(answer, block.timestamp);
    }

    function _pushRound(int256 answer, uint256 updatedAt) private {
        uint80 roundId = _latestRoundId + 1;
        _latestRoundId = roundId;
        _rounds[roundId] = Round({answer: answer, startedAt: updatedAt, updatedAt: updatedAt});
        emit NewRound(roundId, msg.sender, updatedAt);
        emit AnswerUpdated(answer, roundId, updatedAt);
    }
}
