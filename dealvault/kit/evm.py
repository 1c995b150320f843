"""Small web3.py helpers over an anvil node: deploy, send, impersonate, cheat codes.

The kit (mirror, overlay, funding) talks to anvil through plain web3.py so that the same code
serves ape tests (``ape.chain.provider.web3``), the ``ape run`` scripts and bare benchmarks.
Transactions are sent with ``eth_sendTransaction`` from anvil's unlocked or impersonated
accounts: no private key is ever needed or stored.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from eth_typing import ChecksumAddress, HexStr
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import RPCEndpoint, TxParams, TxReceipt, Wei

from dealvault.artifacts import Artifact
from dealvault.kit.errors import KitError

__all__ = [
    "TxBatch", "TxFailed", "act_as", "advance_time", "at", "contract_at", "create2_address", "create_address", "deploy",
    "get_storage", "has_code", "impersonating", "mine", "revert", "role_address", "rpc", "send", "send_raw", "set_balance",
    "set_code", "set_nonce", "set_storage", "snapshot",
]


class TxFailed(KitError):  # noqa: N818 - a public name the tests and the fuzzer catch
    """A kit transaction reverted or could not be sent."""


def role_address(label: str) -> ChecksumAddress:
    """A deterministic address for a named role of the kit (issuer, desk operator, feed owner).

    Nobody holds its key: the kit acts for it by impersonation, which works the same on a local
    mirror and on a fork of the real chain.
    """
    return to_checksum_address(keccak(text=f"dealvault.kit.{label}")[-20:])


def rpc(w3: Web3, method: str, params: list[Any] | None = None) -> Any:
    """One JSON-RPC call; its ``result``, or TxFailed with the node's error."""
    resp = w3.provider.make_request(RPCEndpoint(method), params or [])
    if "error" in resp:
        raise TxFailed(f"{method} failed: {resp['error']}")
    return resp.get("result")


def set_balance(w3: Web3, who: str, wei: int) -> None:
    """Set ``who``'s ETH balance (anvil cheat code)."""
    rpc(w3, "anvil_setBalance", [to_checksum_address(who), hex(wei)])


def set_code(w3: Web3, where: str, runtime_hex: str) -> None:
    rpc(w3, "anvil_setCode", [to_checksum_address(where), runtime_hex])


def set_storage(w3: Web3, where: str, slot: int | bytes, value: int | bytes) -> None:
    slot_hex = "0x" + (slot.hex() if isinstance(slot, bytes) else f"{slot:064x}")
    val_hex = "0x" + (value.hex().rjust(64, "0") if isinstance(value, bytes) else f"{value:064x}")
    rpc(w3, "anvil_setStorageAt", [to_checksum_address(where), slot_hex, val_hex])


def get_storage(w3: Web3, where: str, slot: int | bytes) -> int:
    raw = w3.eth.get_storage_at(to_checksum_address(where), slot if isinstance(slot, int) else int.from_bytes(slot, "big"))
    return int.from_bytes(raw, "big")


def set_nonce(w3: Web3, who: str, nonce: int) -> None:
    rpc(w3, "anvil_setNonce", [to_checksum_address(who), hex(nonce)])


def snapshot(w3: Web3) -> str:
    return str(rpc(w3, "evm_snapshot"))


def revert(w3: Web3, snap_id: str) -> None:
    if not rpc(w3, "evm_revert", [snap_id]):
        raise TxFailed(f"evm_revert({snap_id}) refused")


def advance_time(w3: Web3, seconds: int) -> None:
    rpc(w3, "evm_increaseTime", [seconds])
    rpc(w3, "evm_mine")


def mine(w3: Web3) -> None:
    rpc(w3, "evm_mine")


@contextmanager
def impersonating(w3: Web3, who: str, fund_wei: int | None = 10**20) -> Iterator[ChecksumAddress]:
    """Act as ``who`` (anvil_impersonateAccount), topping up its ETH for gas if it is low."""
    account = to_checksum_address(who)
    if fund_wei is not None and w3.eth.get_balance(account) < fund_wei // 10:
        set_balance(w3, account, fund_wei)
    rpc(w3, "anvil_impersonateAccount", [account])
    try:
        yield account
    finally:
        rpc(w3, "anvil_stopImpersonatingAccount", [account])


def act_as(w3: Web3, who: str, fn: ContractFunction, value: int = 0) -> TxReceipt:
    """Send ``fn`` as ``who`` by impersonation (a role nobody holds the key of); raise on revert."""
    with impersonating(w3, who):
        return send(w3, fn, who, value=value)


def _wait(w3: Web3, tx_hash: HexBytes, what: str) -> TxReceipt:
    # the kit's anvil mines on arrival: poll every 10 ms, not web3's 100 ms
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.01)
    if receipt["status"] != 1:
        raise TxFailed(f"{what} reverted (tx {tx_hash.hex()})")
    return receipt


def send(w3: Web3, fn: ContractFunction, sender: str, value: int = 0, gas: int | None = None) -> TxReceipt:
    """Send a contract function call from an unlocked/impersonated ``sender``; raise on revert.

    The call is simulated first so a revert surfaces with its reason before anything is sent.
    """
    tx: TxParams = {"from": to_checksum_address(sender), "value": Wei(value)}
    if gas is not None:
        tx["gas"] = gas
    # simulated without decoding what it returns: a token that returns nothing where ERC-20 says
    # bool (USDT-style) is fine; only a revert stops it
    call: TxParams = {**tx, "to": to_checksum_address(fn.address), "data": _calldata(fn)}
    try:
        w3.eth.call(call)
    except Exception as exc:  # web3 raises several types for reverts; keep the message
        raise TxFailed(f"{fn.fn_name} from {sender} would revert: {exc}") from exc
    tx_hash = fn.transact(tx)
    return _wait(w3, tx_hash, fn.fn_name)


def _calldata(fn: ContractFunction) -> HexStr:
    """``fn``'s calldata, encoded by web3 as ``transact`` would (a one-function contract)."""
    w3: Any = fn.w3
    return HexStr(w3.eth.contract(abi=[fn.abi]).encode_abi(fn.fn_name, args=list(fn.args), kwargs=dict(fn.kwargs or {})))


def send_raw(w3: Web3, sender: str, to: str | None, data: str = "0x", value: int = 0, gas: int | None = None) -> TxReceipt:
    """Send raw calldata (or a deployment when ``to`` is None) from an unlocked ``sender``."""
    tx: TxParams = {"from": to_checksum_address(sender), "data": HexStr(data), "value": Wei(value)}
    if to is not None:
        tx["to"] = to_checksum_address(to)
    if gas is not None:
        tx["gas"] = gas
    tx_hash = w3.eth.send_transaction(tx)
    return _wait(w3, tx_hash, f"tx to {to}")


def deploy(w3: Web3, artifact: Artifact, *args: Any, sender: str, bytecode: str | None = None, gas: int | None = None) -> Contract:
    """Deploy ``artifact`` (optionally with linked ``bytecode``) and return the bound contract."""
    factory = w3.eth.contract(abi=artifact.abi, bytecode=bytecode or artifact.bytecode)
    tx: TxParams = {"from": to_checksum_address(sender)}
    if gas is not None:
        tx["gas"] = gas
    tx_hash = factory.constructor(*args).transact(tx)
    receipt = _wait(w3, tx_hash, f"deploy {artifact.name}")
    address = receipt["contractAddress"]
    if address is None:
        raise TxFailed(f"deploy {artifact.name}: the receipt names no contract (tx {tx_hash.hex()})")
    return w3.eth.contract(address=address, abi=artifact.abi)


def contract_at(w3: Web3, address: str, abi: Sequence[Any]) -> Contract:
    """The contract with ``abi`` bound at ``address``."""
    return w3.eth.contract(address=to_checksum_address(address), abi=abi)


def at(w3: Web3, artifact: Artifact, address: str) -> Contract:
    """``artifact``'s contract bound at ``address``."""
    return contract_at(w3, address, artifact.abi)


def has_code(w3: Web3, address: str) -> bool:
    return len(w3.eth.get_code(to_checksum_address(address))) > 0


# --- pipelined transactions (added for the venues overlay) ----------------------------------------


def create_address(sender: str, nonce: int) -> ChecksumAddress:
    """The address a CREATE from ``sender`` at ``nonce`` deploys to."""
    import rlp  # local: only the batch sender needs it

    return to_checksum_address(keccak(rlp.encode([bytes.fromhex(sender[2:]), nonce]))[-20:])


def create2_address(deployer: str, salt: bytes, init_code_hash: bytes) -> ChecksumAddress:
    """The address a CREATE2 from ``deployer`` with ``salt`` and ``keccak(init_code)`` deploys to."""
    return to_checksum_address(keccak(b"\xff" + bytes.fromhex(deployer[2:]) + salt + init_code_hash)[-20:])


class TxBatch:
    """Send many transactions back to back and check them all once, at :meth:`flush`.

    anvil automines every transaction on arrival and keeps arrival order (equal gas prices), so a
    transaction may use what an earlier one deployed: deployment addresses are computed from the
    sender's nonce before anything is mined. Gas, gas price and nonce are explicit, so the node
    never estimates gas. A revert is reported at flush with the step's label and the revert reason
    (replayed with ``eth_call`` on the state before that block).

    Senders are impersonated (and given ETH for gas) on first use and released by :meth:`close`
    (or leaving the ``with`` block). Flush before mixing in other helpers that send from the same
    accounts or write storage with cheat codes.
    """

    def __init__(self, w3: Web3, gas: int = 14_000_000) -> None:
        self.w3 = w3
        # Never above the block gas limit (a fork of a chain with a small one rejects such txs).
        self.gas = min(gas, int(w3.eth.get_block("latest")["gasLimit"]))
        # One price for every tx (twice the node's quote, so a rising base fee cannot strand
        # one): equal tips keep anvil's arrival order across senders.
        self.gas_price = 2 * int(rpc(w3, "eth_gasPrice"), 16)
        self._nonces: dict[str, int] = {}
        self._impersonated: list[str] = []
        self._sent: list[tuple[str, dict[str, Any]]] = []  # (label, tx) in send order
        self._hashes: list[str] = []

    # -- senders
    def _sender(self, sender: str) -> ChecksumAddress:
        who = to_checksum_address(sender)
        if who not in self._nonces:
            if self.w3.eth.get_balance(who) < 10**21:
                set_balance(self.w3, who, 10**22)
            rpc(self.w3, "anvil_impersonateAccount", [who])
            self._impersonated.append(who)
            self._nonces[who] = int(rpc(self.w3, "eth_getTransactionCount", [who, "pending"]), 16)
        return who

    def next_address(self, sender: str) -> ChecksumAddress:
        """Where the next CREATE sent by ``sender`` through this batch will land."""
        who = self._sender(sender)
        return create_address(who, self._nonces[who])

    # -- sending
    def send(self, sender: str, to: str | None, data: str = "0x", value: int = 0, *, label: str = "", gas: int | None = None) -> str:
        """Send one transaction (not waited for); return its hash."""
        who = self._sender(sender)
        tx: dict[str, Any] = {
            "from": who,
            "data": data,
            "value": hex(value),
            "gas": hex(gas or self.gas),
            "gasPrice": hex(self.gas_price),
            "nonce": hex(self._nonces[who]),
        }
        if to is not None:
            tx["to"] = to_checksum_address(to)
        tx_hash = str(rpc(self.w3, "eth_sendTransaction", [tx]))
        self._nonces[who] += 1
        self._sent.append((label or (f"call to {to}" if to else "deployment"), tx))
        self._hashes.append(tx_hash)
        return tx_hash

    def call(self, sender: str, fn: ContractFunction, value: int = 0, *, label: str | None = None, gas: int | None = None) -> str:
        """Send a bound contract function (``contract.functions.f(args)``)."""
        data = fn._encode_transaction_data()  # web3's calldata encoder (no gas estimate, no node call)
        return self.send(sender, fn.address, data, value, label=label or fn.fn_name, gas=gas)

    def deploy(self, sender: str, artifact: Artifact, *args: Any, bytecode: str | None = None, label: str | None = None, gas: int | None = None) -> ChecksumAddress:
        """Send a deployment of ``artifact`` (optionally linked ``bytecode``); return its address."""
        code = bytecode or artifact.bytecode
        if args:
            ctor = self.w3.eth.contract(abi=artifact.abi, bytecode=code).constructor(*args)
            data = str(ctor.data_in_transaction)
        else:
            data = code
        address = self.next_address(sender)
        self.send(sender, None, data, label=label or f"deploy {artifact.name}", gas=gas)
        return address

    # -- checking
    def flush(self) -> list[dict[str, Any]]:
        """Wait for every transaction sent so far; raise :class:`TxFailed` at the first revert."""
        receipts: list[dict[str, Any]] = []
        for (label, tx), tx_hash in zip(self._sent, self._hashes, strict=True):
            receipt = None
            for _ in range(6000):
                receipt = rpc(self.w3, "eth_getTransactionReceipt", [tx_hash])
                if receipt is not None:
                    break
                time.sleep(0.002)
            if receipt is None:
                raise TxFailed(f"{label}: not mined (tx {tx_hash})")
            if int(receipt["status"], 16) != 1:
                self._sent, self._hashes = [], []
                raise TxFailed(f"{label} reverted (tx {tx_hash}): {self._reason(tx, receipt)}")
            receipts.append(receipt)
        self._sent, self._hashes = [], []
        return receipts

    def _reason(self, tx: dict[str, Any], receipt: dict[str, Any]) -> str:
        call = {k: v for k, v in tx.items() if k not in ("nonce", "gasPrice")}
        before = hex(int(receipt["blockNumber"], 16) - 1)
        try:
            resp = self.w3.provider.make_request(RPCEndpoint("eth_call"), [call, before])
            return str(resp.get("error") or "no revert when replayed (out of gas or order-dependent)")
        except Exception as exc:  # pragma: no cover - diagnostics only
            return repr(exc)

    def close(self) -> None:
        """Stop impersonating the batch's senders."""
        for who in self._impersonated:
            rpc(self.w3, "anvil_stopImpersonatingAccount", [who])
        self._impersonated.clear()
        self._nonces.clear()

    def __enter__(self) -> TxBatch:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            self.close()
