// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {IERC3156FlashBorrower} from "@openzeppelin/contracts/interfaces/IERC3156FlashBorrower.sol";
import {IERC3156FlashLender} from "@openzeppelin/contracts/interfaces/IERC3156FlashLender.sol";

/// @notice ERC-677 receiver hook called by {WETH10.transferAndCall} and {WETH10.depositToAndCall}.
interface ITransferReceiver {
    function onTokenTransfer(address sender, uint256 value, bytes calldata data) external returns (bool);
}

/// @notice Receiver hook called by {WETH10.approveAndCall}.
interface IApprovalReceiver {
    function onTokenApproval(address owner, uint256 value, bytes calldata data) external returns (bool);
}

/// @title WETH10
/// @notice Test stand-in with the semantics of Ethereum mainnet WETH10 (Wrapped Ether v10): ETH
///         wrapper, ERC-20, ERC-2612 permit, ERC-3156 flash mint (fee 0, cap type(uint112).max),
///         ERC-677 transferAndCall / approveAndCall. As in the WETH10 deployed at the canonical
///         address (the WETH10 repository's mainnet deployment, solc 0.7.6), only a transfer to
///         address(0) burns and pays the ETH to the caller (`msg.sender`, also for `transferFrom`);
///         a transfer to this contract's own address is an ordinary transfer (the repository's
///         later "unwrap on transfer to the contract" change was never deployed).
/// @dev Placed at its canonical address with `anvil_setCode`, so the constructor never runs there:
///      no constructor, no immutables, no initialised storage. The EIP-712 domain separator is
///      computed on every use from `block.chainid` and `address(this)`.
///      Storage layout matches real WETH10: slot 0 balanceOf, 1 nonces, 2 allowance, 3 flashMinted.
///      Reverts use custom errors (the real token uses "WETH: ..." strings).
contract WETH10 is IERC20, IERC20Metadata, IERC20Permit, IERC3156FlashLender {
    /// @notice Token name (also the EIP-712 domain name).
    string public constant override name = "Wrapped Ether v10";
    /// @notice Token symbol.
    string public constant override symbol = "WETH10";
    /// @notice Token decimals.
    uint8 public constant override decimals = 18;
    /// @notice Value an ERC-3156 borrower must return from `onFlashLoan`.
    bytes32 public constant CALLBACK_SUCCESS = keccak256("ERC3156FlashBorrower.onFlashLoan");
    /// @notice ERC-2612 permit struct type hash.
    bytes32 public constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");

    bytes32 private constant _DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant _NAME_HASH = keccak256(bytes(name));
    bytes32 private constant _VERSION_HASH = keccak256(bytes("1"));

    /// @notice Token balance of each account. (slot 0)
    mapping(address account => uint256) public override balanceOf;
    /// @notice Current ERC-2612 nonce of each owner. (slot 1)
    mapping(address owner => uint256) public override nonces;
    /// @notice Allowance granted by owner to spender; type(uint256).max never decreases. (slot 2)
    mapping(address owner => mapping(address spender => uint256)) public override allowance;
    /// @notice Amount currently flash-minted (non-zero only inside a flash loan). (slot 3)
    uint256 public flashMinted;

    /// @notice `account` holds `balance`, less than the `needed` amount.
    error InsufficientBalance(address account, uint256 balance, uint256 needed);
    /// @notice `spender` may spend only `allowed` of `owner`'s tokens, less than `needed`.
    error InsufficientAllowance(address owner, address spender, uint256 allowed, uint256 needed);
    /// @notice Sending `value` wei to `to` failed.
    error EtherTransferFailed(address to, uint256 value);
    /// @notice The permit's `deadline` is before the current `timestamp`.
    error PermitExpired(uint256 deadline, uint256 timestamp);
    /// @notice The permit signature recovers to `signer`, not to `owner`.
    error InvalidPermit(address signer, address owner);
    /// @notice Only WETH10 itself can be flash-minted; `token` was asked for.
    error UnsupportedFlashToken(address token);
    /// @notice Flash-minting `value` would exceed the `available` room under type(uint112).max.
    error FlashLoanLimitExceeded(uint256 value, uint256 available);
    /// @notice `receiver.onFlashLoan` returned `returned` instead of CALLBACK_SUCCESS.
    error FlashLoanCallbackFailed(address receiver, bytes32 returned);

    /// @notice Wraps `msg.value` ETH for the sender.
    receive() external payable {
        _mint(msg.sender, msg.value);
    }

    /// @notice Wraps `msg.value` ETH for the sender.
    function deposit() external payable {
        _mint(msg.sender, msg.value);
    }

    /// @notice Wraps `msg.value` ETH for `to`.
    function depositTo(address to) external payable {
        _mint(to, msg.value);
    }

    /// @notice Wraps `msg.value` ETH for `to`, then calls `to.onTokenTransfer(msg.sender, msg.value, data)`.
    /// @return success what the receiver returned.
    function depositToAndCall(address to, bytes calldata data) external payable returns (bool success) {
        _mint(to, msg.value);
        return ITransferReceiver(to).onTokenTransfer(msg.sender, msg.value, data);
    }

    /// @notice Burns `value` of the sender's tokens and sends as much ETH to the sender.
    function withdraw(uint256 value) external {
        _burn(msg.sender, value);
        _sendEther(msg.sender, value);
    }

    /// @notice Burns `value` of the sender's tokens and sends as much ETH to `to`.
    function withdrawTo(address payable to, uint256 value) external {
        _burn(msg.sender, value);
        _sendEther(to, value);
    }

    /// @notice Burns `value` of `from`'s tokens (spending the sender's allowance unless sender is
    ///         `from`) and sends as much ETH to `to`.
    function withdrawFrom(address from, address payable to, uint256 value) external {
        if (from != msg.sender) _spendAllowance(from, msg.sender, value);
        _burn(from, value);
        _sendEther(to, value);
    }

    /// @notice ETH held plus what is flash-minted right now.
    function totalSupply() external view override returns (uint256) {
        return address(this).balance + flashMinted;
    }

    /// @notice Sets `spender`'s allowance over the sender's tokens to `value`.
    function approve(address spender, uint256 value) external override returns (bool) {
        _approve(msg.sender, spender, value);
        return true;
    }

    /// @notice Sets the allowance, then calls `spender.onTokenApproval(msg.sender, value, data)`.
    /// @return what the spender returned.
    function approveAndCall(address spender, uint256 value, bytes calldata data) external returns (bool) {
        _approve(msg.sender, spender, value);
        return IApprovalReceiver(spender).onTokenApproval(msg.sender, value, data);
    }

    /// @notice ERC-2612: sets `spender`'s allowance over `owner`'s tokens from `owner`'s signature.
    function permit(address owner, address spender, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
        override
    {
        if (block.timestamp > deadline) revert PermitExpired(deadline, block.timestamp);
        bytes32 structHash = keccak256(abi.encode(PERMIT_TYPEHASH, owner, spender, value, nonces[owner]++, deadline));
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", _domainSeparator(), structHash));
        // Raw ecrecover like the real WETH10 (no low-s check); the nonce prevents replay.
        address signer = ecrecover(digest, v, r, s);
        if (signer == address(0) || signer != owner) revert InvalidPermit(signer, owner);
        _approve(owner, spender, value);
    }

    /// @notice EIP-712 domain separator for the current chain and this address.
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view override returns (bytes32) {
        return _domainSeparator();
    }

    /// @notice Moves `value` tokens to `to`; to address(0) it burns them and pays the ETH to the sender.
    function transfer(address to, uint256 value) external override returns (bool) {
        _transfer(msg.sender, to, value);
        return true;
    }

    /// @notice Moves `value` of `from`'s tokens to `to`, spending the sender's allowance unless
    ///         sender is `from`; to address(0) it burns `from`'s tokens and pays the ETH to the sender.
    function transferFrom(address from, address to, uint256 value) external override returns (bool) {
        if (from != msg.sender) _spendAllowance(from, msg.sender, value);
        _transfer(from, to, value);
        return true;
    }

    /// @notice ERC-677: transfers, then calls `to.onTokenTransfer(msg.sender, value, data)`.
    /// @return what the receiver returned.
    function transferAndCall(address to, uint256 value, bytes calldata data) external returns (bool) {
        _transfer(msg.sender, to, value);
        return ITransferReceiver(to).onTokenTransfer(msg.sender, value, data);
    }

    /// @notice ERC-3156: how much WETH10 can be flash-minted now (0 for any other token).
    function maxFlashLoan(address token) public view override returns (uint256) {
        // flashMinted never exceeds type(uint112).max, so this cannot underflow.
        return token == address(this) ? type(uint112).max - flashMinted : 0;
    }

    /// @notice ERC-3156: the flash-mint fee, always 0; reverts for any token but WETH10.
    function flashFee(address token, uint256) external view override returns (uint256) {
        if (token != address(this)) revert UnsupportedFlashToken(token);
        return 0;
    }

    /// @notice ERC-3156: mints `value` to `receiver`, calls `receiver.onFlashLoan`, then spends
    ///         `value` of the receiver's allowance to this contract and burns `value` from it.
    function flashLoan(IERC3156FlashBorrower receiver, address token, uint256 value, bytes calldata data)
        external
        override
        returns (bool)
    {
        if (token != address(this)) revert UnsupportedFlashToken(token);
        uint256 available = maxFlashLoan(token);
        if (value > available) revert FlashLoanLimitExceeded(value, available);
        flashMinted += value;
        _mint(address(receiver), value);

        bytes32 returned = receiver.onFlashLoan(msg.sender, address(this), value, 0, data);
        if (returned != CALLBACK_SUCCESS) revert FlashLoanCallbackFailed(address(receiver), returned);

        _spendAllowance(address(receiver), address(this), value);
        _burn(address(receiver), value);
        flashMinted -= value;
        return true;
    }

    function _domainSeparator() private view returns (bytes32) {
        return keccak256(abi.encode(_DOMAIN_TYPEHASH, _NAME_HASH, _VERSION_HASH, block.chainid, address(this)));
    }

    function _mint(address to, uint256 value) private {
        balanceOf[to] += value;
        emit Transfer(address(0), to, value);
    }

    function _burn(address from, uint256 value) private {
        uint256 balance = balanceOf[from];
        if (balance < value) revert InsufficientBalance(from, balance, value);
        // Checked just above: balance >= value.
        unchecked {
            balanceOf[from] = balance - value;
        }
        emit Transfer(from, address(0), value);
    }

    /// @dev Deployed WETH10 semantics: sending to address(0) unwraps for the caller; any other
    ///      recipient, this contract included, is credited.
    function _transfer(address from, address to, uint256 value) private {
        if (to == address(0)) {
            _burn(from, value);
            _sendEther(msg.sender, value);
            return;
        }
        uint256 balance = balanceOf[from];
        if (balance < value) revert InsufficientBalance(from, balance, value);
        // Checked just above: balance >= value.
        unchecked {
            balanceOf[from] = balance - value;
        }
        balanceOf[to] += value;
        emit Transfer(from, to, value);
    }

    function _approve(address owner, address spender, uint256 value) private {
        allowance[owner][spender] = value;
        emit Approval(owner, spender, value);
    }

    /// @dev An allowance of type(uint256).max is infinite and emits nothing, like real WETH10.
    function _spendAllowance(address owner, address spender, uint256 value) private {
        uint256 allowed = allowance[owner][spender];
        if (allowed == type(uint256).max) return;
        if (allowed < value) revert InsufficientAllowance(owner, spender, allowed, value);
        // Checked just above: allowed >= value.
        unchecked {
            _approve(owner, spender, allowed - value);
        }
    }

    function _sendEther(address to, uint256 value) private {
        (bool ok,) = to.call{value: value}("");
        if (!ok) revert EtherTransferFailed(to, value);
    }
}
