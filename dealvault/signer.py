"""Who signs a leg: local signing only, so the raw transaction exists before it is broadcast.

The orchestrator persists ``(raw tx, nonce, hash)`` in the deal record BEFORE broadcasting, so
every signer here returns the signed bytes without sending anything:

* :class:`ApeAccountSigner`: an ape ``AccountAPI`` (keystore alias, hardware wallet, or a test
  account ``TEST::N``). ape signs (and may prompt for the passphrase); no key ever leaves ape's
  keystore and no private key appears in any file of this project.
* :class:`NodeSigner`: an account the node holds unlocked (anvil's dev accounts) signed through
  ``eth_signTransaction``: the node signs, nothing is sent.
* :class:`ImpersonatingSender`: NOT a signer: a dry run on a throw-away fork sends as any address
  with ``anvil_impersonateAccount`` + ``eth_sendTransaction``. Never used against a real chain.

All of them also offer ``send(tx) -> hash`` so they satisfy :class:`dealvault.deploy.Signer`.
An account by its alias: :func:`dealvault.accounts.ape_account` (:func:`resolve_alias` here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, cast, runtime_checkable

from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.types import TxParams

from dealvault.errors import DealVaultError

__all__ = [
    "SignedTx", "TxSigner", "ApeAccountSigner", "NodeSigner", "ImpersonatingSender", "SignerError", "resolve_alias",
    "decode_raw"]


class SignerError(DealVaultError, RuntimeError):
    """The transaction could not be signed (declined, unknown account, node refused); exit code 1."""


@dataclass(frozen=True)
class SignedTx:
    raw: bytes
    hash: str  # 0x-prefixed lower-case keccak256 of ``raw``
    nonce: int

    @property
    def raw_hex(self) -> str:
        return "0x" + self.raw.hex()


def decode_raw(raw: bytes | str) -> dict[str, Any]:
    """The call a signed transaction makes: ``to``, ``data`` (0x hex), ``value``, ``nonce``,
    ``gas`` and its ``type`` with its fee fields (``gasPrice``, or ``maxFeePerGas`` and
    ``maxPriorityFeePerGas``), from its raw bytes (legacy RLP or an EIP-2718 typed envelope: 1 or 2)."""
    import rlp

    def num(x: bytes) -> int:
        return int.from_bytes(x, "big")

    b = bytes.fromhex(raw[2:] if raw.startswith("0x") else raw) if isinstance(raw, str) else bytes(raw)
    fees: dict[str, int]
    if b and b[0] < 0x7F:  # typed: type byte + RLP list
        f = rlp.decode(b[1:])
        # type 1: chainId, nonce, gasPrice, gas, to, value, data, ...; type 2: chainId, nonce, tip, maxFee, gas, to, value, data, ...
        kind = b[0]
        i = 4 if kind == 1 else 5
        nonce, gas, to, value, data = f[1], f[i - 1], f[i], f[i + 1], f[i + 2]
        fees = {"gasPrice": num(f[2])} if kind == 1 else {"maxFeePerGas": num(f[3]), "maxPriorityFeePerGas": num(f[2])}
    else:  # legacy: nonce, gasPrice, gas, to, value, data, v, r, s
        f = rlp.decode(b)
        kind = 0
        nonce, gas, to, value, data = f[0], f[2], f[3], f[4], f[5]
        fees = {"gasPrice": num(f[1])}
    return {"to": "0x" + bytes(to).hex(), "data": "0x" + bytes(data).hex(), "value": num(value), "nonce": num(nonce),
            "gas": num(gas), "type": kind, **fees}


@runtime_checkable
class TxSigner(Protocol):
    """``address`` and ``sign(tx) -> SignedTx`` for a web3 transaction dict with chainId, nonce,
    gas, to, data, value and gasPrice (type 0) or maxFeePerGas/maxPriorityFeePerGas (type 2)."""

    address: str

    def sign(self, tx: dict[str, Any]) -> SignedTx: ...


def _signed(raw: bytes, nonce: int) -> SignedTx:
    return SignedTx(raw=bytes(raw), hash="0x" + keccak(bytes(raw)).hex(), nonce=int(nonce))


def _hexdata(data: Any) -> bytes:
    if data is None:
        return b""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    s = str(data)
    return bytes.fromhex(s[2:] if s.startswith("0x") else s)


class ApeAccountSigner:
    """Signs with an ape account; the transaction is built with ape's Ethereum transaction models
    (works without a connected ape provider, e.g. against the demo's kit node)."""

    def __init__(self, account: Any, w3: Web3 | None = None):
        self.account = account
        self.w3 = w3
        self.address = to_checksum_address(str(account.address))

    def sign(self, tx: dict[str, Any]) -> SignedTx:
        from ape_ethereum.transactions import DynamicFeeTransaction, StaticFeeTransaction

        kw: dict[str, Any] = {
            "chain_id": int(tx["chainId"]),
            "nonce": int(tx["nonce"]),
            "gas_limit": int(tx["gas"]),
            "data": _hexdata(tx.get("data")),
            "value": int(tx.get("value", 0)),
            "sender": self.address,
        }
        if tx.get("to"):
            kw["receiver"] = to_checksum_address(tx["to"])
        txn: StaticFeeTransaction | DynamicFeeTransaction
        if "gasPrice" in tx:
            kw["gas_price"] = int(tx["gasPrice"])
            txn = StaticFeeTransaction(**kw)
        else:
            kw.update(max_fee=int(tx["maxFeePerGas"]), max_priority_fee=int(tx["maxPriorityFeePerGas"]))
            txn = DynamicFeeTransaction(**kw)
        signed = self.account.sign_transaction(txn)
        if signed is None or not getattr(signed, "signature", None):
            raise SignerError(f"account {self.address} did not sign the transaction (declined?)")
        return _signed(signed.serialize_transaction(), kw["nonce"])

    def send(self, tx: dict[str, Any]) -> bytes:
        if self.w3 is None:
            raise SignerError("ApeAccountSigner.send needs a web3 instance")
        st = self.sign(tx)
        return bytes(self.w3.eth.send_raw_transaction(st.raw))


class NodeSigner:
    """An account the node holds unlocked (anvil dev accounts): ``eth_signTransaction``."""

    def __init__(self, w3: Web3, address: str):
        self.w3 = w3
        self.address = to_checksum_address(address)

    def sign(self, tx: dict[str, Any]) -> SignedTx:
        req: dict[str, Any] = {"from": self.address}
        for k in ("to", "chainId", "nonce", "gas", "value", "gasPrice", "maxFeePerGas", "maxPriorityFeePerGas"):
            if tx.get(k) is not None:
                v = tx[k]
                req[k] = v if isinstance(v, str) else hex(int(v))
        req["data"] = "0x" + _hexdata(tx.get("data")).hex()
        resp = self.w3.provider.make_request("eth_signTransaction", [req])  # type: ignore[arg-type]
        if "error" in resp:
            raise SignerError(f"the node refused to sign for {self.address}: {resp['error']}")
        return _signed(_hexdata(resp["result"]), int(tx["nonce"]))

    def send(self, tx: dict[str, Any]) -> bytes:
        st = self.sign(tx)
        return bytes(self.w3.eth.send_raw_transaction(st.raw))


class ImpersonatingSender:
    """Dry runs only (a throw-away anvil fork): sends as ``address`` without any key."""

    impersonating = True

    def __init__(self, w3: Web3, address: str):
        self.w3 = w3
        self.address = to_checksum_address(address)

    def send(self, tx: dict[str, Any]) -> bytes:
        self.w3.provider.make_request("anvil_impersonateAccount", [self.address])  # type: ignore[arg-type]
        try:
            return bytes(self.w3.eth.send_transaction(cast(TxParams, {**tx, "from": self.address})))
        finally:
            self.w3.provider.make_request("anvil_stopImpersonatingAccount", [self.address])  # type: ignore[arg-type]


def resolve_alias(alias: str) -> Any:
    """The ape account for ``alias`` (``TEST::N`` = ape test account N); raises
    :class:`dealvault.accounts.AccountError` (an InputError, exit 2) naming the known aliases."""
    from dealvault.accounts import ape_account

    return ape_account(alias)
