// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title TetherStyleToken
/// @notice Test stand-in with the behaviour of Tether's TetherToken (USDT) as deployed on Ethereum
///         mainnet, written anew (the original is Solidity 0.4.17):
///         - `transfer`, `transferFrom` and `approve` return nothing;
///         - `approve` from a non-zero allowance to another non-zero value reverts;
///         - an allowance of type(uint256).max is never spent;
///         - one `owner` administers everything: `pause()` / `unpause()` stop and restart
///           `transfer` and `transferFrom` (not `approve`); `addBlackList` / `removeBlackList` /
///           `isBlackListed` (and `getBlackListStatus`, `getOwner`) keep a blacklist whose
///           accounts cannot *send* (as sender of `transfer` or `from` of `transferFrom`); they can
///           still receive and approve; `destroyBlackFunds` burns a blacklisted account's balance;
///           `issue` / `redeem` mint to and burn from the owner;
///         - `decimals` is a uint256 (as in TetherToken), `name` and `symbol` are storage strings.
///         Left out: the fee parameters (zero on mainnet) and the `deprecate` upgrade path.
///         Reverts use custom errors (TetherToken's `require`s carry no reason).
/// @dev No constructor and no immutables: the runtime code can be placed at a canonical address
///      with `anvil_setCode` (the kit's mirror puts it at cUSDT), then `initialize` sets name,
///      symbol, decimals and owner once. Deployed normally it is initialised the same way.
contract TetherStyleToken {
    /// @notice Token name.
    string public name;
    /// @notice Token symbol.
    string public symbol;
    /// @notice Token decimals (a uint256, as TetherToken's).
    uint256 public decimals;
    /// @notice The administrator: pauses, blacklists, issues and redeems.
    address public owner;
    /// @notice True while `transfer` and `transferFrom` are stopped.
    bool public paused;
    /// @notice Whether `account` is blacklisted (it cannot send).
    mapping(address account => bool) public isBlackListed;

    uint256 private _totalSupply;
    mapping(address account => uint256) private _balances;
    mapping(address owner => mapping(address spender => uint256)) private _allowances;

    /// @notice `value` tokens moved from `from` to `to`.
    event Transfer(address indexed from, address indexed to, uint256 value);
    /// @notice `owner` allowed `spender` to spend `value` of its tokens.
    event Approval(address indexed owner, address indexed spender, uint256 value);
    /// @notice Transfers are stopped.
    event Pause();
    /// @notice Transfers run again.
    event Unpause();
    /// @notice `user` was blacklisted.
    event AddedBlackList(address user);
    /// @notice `user` was taken off the blacklist.
    event RemovedBlackList(address user);
    /// @notice The `balance` of blacklisted `blackListedUser` was burnt.
    event DestroyedBlackFunds(address blackListedUser, uint256 balance);
    /// @notice `amount` tokens were minted to the owner.
    event Issue(uint256 amount);
    /// @notice `amount` tokens were burnt from the owner.
    event Redeem(uint256 amount);
    /// @notice The token's administration passed from `previousOwner` to `newOwner` (not in
    ///         TetherToken, whose Ownable emits nothing; added here so the change is on record).
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    /// @notice `initialize` already ran (the token has an `owner`).
    error AlreadyInitialized(address owner);
    /// @notice The owner cannot be the zero address.
    error ZeroOwner();
    /// @notice Only the owner may call this; `caller` is not it.
    error NotOwner(address caller);
    /// @notice Transfers are paused.
    error TransfersPaused();
    /// @notice Transfers are not paused (nothing to unpause).
    error TransfersNotPaused();
    /// @notice `account` is blacklisted and cannot send.
    error Blacklisted(address account);
    /// @notice `account` is not blacklisted (its funds cannot be destroyed).
    error NotBlacklisted(address account);
    /// @notice The allowance is `current`; it must be set to 0 before `requested` (non-zero).
    error ApproveFromNonZero(uint256 current, uint256 requested);
    /// @notice `account` holds `balance`, less than the `needed` amount.
    error InsufficientBalance(address account, uint256 balance, uint256 needed);
    /// @notice The allowance is `allowed`, less than the `needed` amount.
    error InsufficientAllowance(uint256 allowed, uint256 needed);

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    modifier whenNotPaused() {
        if (paused) revert TransfersPaused();
        _;
    }

    /// @notice Sets name, symbol, decimals and owner; runs once (while there is no owner).
    function initialize(string calldata name_, string calldata symbol_, uint256 decimals_, address owner_) external {
        if (owner != address(0)) revert AlreadyInitialized(owner);
        if (owner_ == address(0)) revert ZeroOwner();
        name = name_;
        symbol = symbol_;
        decimals = decimals_;
        owner = owner_;
        emit OwnershipTransferred(address(0), owner_);
    }

    /// @notice Tokens in existence.
    function totalSupply() external view returns (uint256) {
        return _totalSupply;
    }

    /// @notice Tokens held by `account`.
    function balanceOf(address account) external view returns (uint256) {
        return _balances[account];
    }

    /// @notice What `spender` may still spend of `holder`'s tokens.
    function allowance(address holder, address spender) external view returns (uint256) {
        return _allowances[holder][spender];
    }

    /// @notice Moves `value` of the sender's tokens to `to`. Returns nothing (TetherToken).
    function transfer(address to, uint256 value) external whenNotPaused {
        if (isBlackListed[msg.sender]) revert Blacklisted(msg.sender);
        _move(msg.sender, to, value);
    }

    /// @notice Moves `value` of `from`'s tokens to `to`, spending the sender's allowance (an
    ///         allowance of type(uint256).max is not spent). Returns nothing (TetherToken).
    function transferFrom(address from, address to, uint256 value) external whenNotPaused {
        if (isBlackListed[from]) revert Blacklisted(from);
        uint256 allowed = _allowances[from][msg.sender];
        if (allowed != type(uint256).max) {
            if (allowed < value) revert InsufficientAllowance(allowed, value);
            _allowances[from][msg.sender] = allowed - value;
        }
        _move(from, to, value);
    }

    /// @notice Sets `spender`'s allowance to `value`; reverts from a non-zero allowance to another
    ///         non-zero value. Not stopped by a pause or the blacklist. Returns nothing (TetherToken).
    function approve(address spender, uint256 value) external {
        uint256 current = _allowances[msg.sender][spender];
        if (value != 0 && current != 0) revert ApproveFromNonZero(current, value);
        _allowances[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
    }

    /// @notice Stops `transfer` and `transferFrom` (owner).
    function pause() external onlyOwner whenNotPaused {
        paused = true;
        emit Pause();
    }

    /// @notice Lets `transfer` and `transferFrom` run again (owner).
    function unpause() external onlyOwner {
        if (!paused) revert TransfersNotPaused();
        paused = false;
        emit Unpause();
    }

    /// @notice Blacklists `evilUser`: it can no longer send (owner).
    function addBlackList(address evilUser) external onlyOwner {
        isBlackListed[evilUser] = true;
        emit AddedBlackList(evilUser);
    }

    /// @notice Takes `clearedUser` off the blacklist (owner).
    function removeBlackList(address clearedUser) external onlyOwner {
        isBlackListed[clearedUser] = false;
        emit RemovedBlackList(clearedUser);
    }

    /// @notice Burns the whole balance of blacklisted `blackListedUser` (owner).
    function destroyBlackFunds(address blackListedUser) external onlyOwner {
        if (!isBlackListed[blackListedUser]) revert NotBlacklisted(blackListedUser);
        uint256 funds = _balances[blackListedUser];
        _balances[blackListedUser] = 0;
        _totalSupply -= funds;
        emit DestroyedBlackFunds(blackListedUser, funds);
    }

    /// @notice Whether `maker` is blacklisted (TetherToken's getter for other contracts).
    function getBlackListStatus(address maker) external view returns (bool) {
        return isBlackListed[maker];
    }

    /// @notice The owner (TetherToken's getter for other contracts).
    function getOwner() external view returns (address) {
        return owner;
    }

    /// @notice Hands the token to `newOwner` (owner).
    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert ZeroOwner();
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }

    /// @notice Mints `amount` to the owner (owner).
    function issue(uint256 amount) external onlyOwner {
        _balances[owner] += amount;
        _totalSupply += amount;
        emit Issue(amount);
    }

    /// @notice Burns `amount` of the owner's tokens (owner).
    function redeem(uint256 amount) external onlyOwner {
        uint256 balance = _balances[owner];
        if (balance < amount) revert InsufficientBalance(owner, balance, amount);
        // Checked just above: balance >= amount, and the supply includes the owner's balance.
        unchecked {
            _balances[owner] = balance - amount;
            _totalSupply -= amount;
        }
        emit Redeem(amount);
    }

    function _move(address from, address to, uint256 value) private {
        uint256 balance = _balances[from];
        if (balance < value) revert InsufficientBalance(from, balance, value);
        // Checked just above: balance >= value.
        unchecked {
            _balances[from] = balance - value;
        }
        _balances[to] += value;
        emit Transfer(from, to, value);
    }
}
