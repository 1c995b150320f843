// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title OddLayoutToken
/// @notice Test-only ERC-20 with an unusual storage layout, to prove the funding helper finds a
///         balance without knowing the layout: everything lives in an ERC-7201 namespaced struct
///         (nothing in slots 0, 1, 2...), each balance is a uint128 packed with a uint64
///         `lastTouched` timestamp and a uint64 transfer counter in the same slot, and `balanceOf`
///         first reads a config slot (a decoy the helper must probe and restore).
contract OddLayoutToken {
    /// @dev One account: balance in the low 128 bits, then lastTouched, then transfers.
    struct Account {
        uint128 balance;
        uint64 lastTouched;
        uint64 transfers;
    }

    /// @custom:storage-location erc7201:dealvault.storage.OddLayoutToken
    struct OddStorage {
        bool halted; // balanceOf reads it first: a decoy candidate slot
        uint256 totalSupply;
        mapping(address => Account) accounts;
        mapping(address => mapping(address => uint256)) allowances;
    }

    /// @dev keccak256(abi.encode(uint256(keccak256("dealvault.storage.OddLayoutToken")) - 1)) & ~bytes32(uint256(0xff))
    bytes32 private constant STORAGE_LOCATION = 0xabc4824f1d9127ef37f948e9a7c4652338f13b8e38a24cbb29a718011a1bc600;

    string public constant name = "Odd Layout Token";
    string public constant symbol = "ODD";
    uint8 public constant decimals = 18;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    error Halted();
    error InsufficientBalance(address account, uint256 balance, uint256 needed);
    error InsufficientAllowance(address owner, address spender, uint256 allowed, uint256 needed);

    constructor(uint128 initialSupply) {
        _mint(msg.sender, initialSupply);
    }

    function _s() private pure returns (OddStorage storage $) {
        assembly {
            $.slot := STORAGE_LOCATION
        }
    }

    /// @notice The storage slot namespace (for tests that check where balances live).
    function storageLocation() external pure returns (bytes32) {
        return STORAGE_LOCATION;
    }

    function totalSupply() external view returns (uint256) {
        return _s().totalSupply;
    }

    function balanceOf(address account) external view returns (uint256) {
        OddStorage storage $ = _s();
        if ($.halted) return 0;
        return $.accounts[account].balance;
    }

    /// @notice When `account`'s balance last changed by a mint or transfer.
    function lastTouched(address account) external view returns (uint64) {
        return _s().accounts[account].lastTouched;
    }

    /// @notice How many transfers `account` has sent.
    function transfers(address account) external view returns (uint64) {
        return _s().accounts[account].transfers;
    }

    function allowance(address owner, address spender) external view returns (uint256) {
        return _s().allowances[owner][spender];
    }

    function approve(address spender, uint256 value) external returns (bool) {
        _s().allowances[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    function transfer(address to, uint256 value) external returns (bool) {
        _transfer(msg.sender, to, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        OddStorage storage $ = _s();
        uint256 allowed = $.allowances[from][msg.sender];
        if (allowed != type(uint256).max) {
            if (allowed < value) revert InsufficientAllowance(from, msg.sender, allowed, value);
            $.allowances[from][msg.sender] = allowed - value;
        }
        _transfer(from, to, value);
        return true;
    }

    function _transfer(address from, address to, uint256 value) private {
        OddStorage storage $ = _s();
        if ($.halted) revert Halted();
        Account storage a = $.accounts[from];
        if (a.balance < value) revert InsufficientBalance(from, a.balance, value);
        a.balance -= uint128(value);
        a.lastTouched = uint64(block.timestamp);
        a.transfers += 1;
        Account storage b = $.accounts[to];
        b.balance += uint128(value);
        b.lastTouched = uint64(block.timestamp);
        emit Transfer(from, to, value);
    }

    function _mint(address to, uint128 value) private {
        OddStorage storage $ = _s();
        $.totalSupply += value;
        Account storage b = $.accounts[to];
        b.balance += value;
        b.lastTouched = uint64(block.timestamp);
        emit Transfer(address(0), to, value);
    }
}
