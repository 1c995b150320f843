// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title OddStable
/// @notice Test-only 6-decimal stablecoin with the habits of the tokens the vault must survive:
///         - like Tether's USDT, `transfer`, `transferFrom` and `approve` return nothing;
///         - like USDT, `approve` from a non-zero allowance to another non-zero value reverts;
///         - a fee switch: while `feeBps` is non-zero, every transfer delivers `amount - fee` and
///           sends the fee to `collector` (a "fee-on-transfer" token);
///         - its state lives in an ERC-7201 namespaced struct, so its runtime code can be placed
///           over another token's address (the mirror's cUSDC) without touching that token's slots.
///         The admin (an immutable: it survives `anvil_setCode` with this contract's runtime) sets
///         the fee and mints.
contract OddStable {
    /// @custom:storage-location erc7201:dealvault.storage.OddStable
    struct OddStableStorage {
        uint256 totalSupply;
        uint256 feeBps;
        mapping(address => uint256) balances;
        mapping(address => mapping(address => uint256)) allowances;
    }

    /// @dev keccak256(abi.encode(uint256(keccak256("dealvault.storage.OddStable")) - 1)) & ~bytes32(uint256(0xff))
    bytes32 private constant STORAGE_LOCATION = 0xf53cda7d9708903b7727560874824ee080b7402f5977e0f34257f450df2caf00;

    string public constant name = "Odd Stable";
    string public constant symbol = "ODD";
    uint8 public constant decimals = 6;

    address public immutable admin;
    address public immutable collector;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    error NotAdmin(address caller);
    error ApproveFromNonZero(uint256 current, uint256 requested);
    error InsufficientBalance(uint256 balance, uint256 needed);
    error InsufficientAllowance(uint256 allowance, uint256 needed);

    constructor(address admin_, address collector_) {
        admin = admin_;
        collector = collector_;
    }

    function _s() private pure returns (OddStableStorage storage s) {
        assembly {
            s.slot := STORAGE_LOCATION
        }
    }

    function totalSupply() external view returns (uint256) {
        return _s().totalSupply;
    }

    function feeBps() external view returns (uint256) {
        return _s().feeBps;
    }

    function balanceOf(address who) external view returns (uint256) {
        return _s().balances[who];
    }

    function allowance(address owner, address spender) external view returns (uint256) {
        return _s().allowances[owner][spender];
    }

    /// @notice No return value (USDT).
    function transfer(address to, uint256 amount) external {
        _move(msg.sender, to, amount);
    }

    /// @notice No return value (USDT).
    function transferFrom(address from, address to, uint256 amount) external {
        OddStableStorage storage s = _s();
        uint256 allowed = s.allowances[from][msg.sender];
        if (allowed != type(uint256).max) {
            if (allowed < amount) revert InsufficientAllowance(allowed, amount);
            s.allowances[from][msg.sender] = allowed - amount;
        }
        _move(from, to, amount);
    }

    /// @notice No return value; reverts from a non-zero allowance to another non-zero value (USDT).
    function approve(address spender, uint256 amount) external {
        OddStableStorage storage s = _s();
        uint256 current = s.allowances[msg.sender][spender];
        if (amount != 0 && current != 0) revert ApproveFromNonZero(current, amount);
        s.allowances[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
    }

    function setFee(uint256 bps) external {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        _s().feeBps = bps;
    }

    function mint(address to, uint256 amount) external {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        OddStableStorage storage s = _s();
        s.totalSupply += amount;
        s.balances[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    function _move(address from, address to, uint256 amount) private {
        OddStableStorage storage s = _s();
        uint256 bal = s.balances[from];
        if (bal < amount) revert InsufficientBalance(bal, amount);
        uint256 fee = amount * s.feeBps / 10_000;
        s.balances[from] = bal - amount;
        s.balances[to] += amount - fee;
        emit Transfer(from, to, amount - fee);
        if (fee != 0) {
            s.balances[collector] += fee;
            emit Transfer(from, collector, fee);
        }
    }
}
