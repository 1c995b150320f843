"""Who sends a deployment: anything with an ``address`` and ``send(tx) -> tx hash``.

The signing itself lives in :mod:`dealvault.signer` (ape accounts, impersonation on a fork);
these two are the deploy pipeline's names for them, raising :class:`DeployError` (item
``account``) when the account declines. An ape account by its alias:
:func:`dealvault.accounts.ape_account`."""

from __future__ import annotations

from typing import Any, Protocol, cast, runtime_checkable

from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.types import TxParams

from dealvault.deploy.errors import DeployError
from dealvault.signer import ApeAccountSigner, ImpersonatingSender, SignerError

__all__ = ["AnvilSigner", "ApeSigner", "Signer"]


@runtime_checkable
class Signer(Protocol):
    """Who sends the deployment: ``address`` and ``send(tx) -> tx hash`` (tx is a web3 dict with
    from/data/gas/nonce/chainId and gasPrice or maxFeePerGas/maxPriorityFeePerGas)."""

    @property
    def address(self) -> str: ...

    def send(self, tx: dict[str, Any]) -> bytes: ...


class AnvilSigner:
    """An anvil unlocked account via ``eth_sendTransaction`` (or, with ``impersonate=True``, any
    address): for tests, the local mirror and dry runs on a fork."""

    def __init__(self, w3: Web3, address: str, *, impersonate: bool = False) -> None:
        self.w3 = w3
        self.address: str = to_checksum_address(address)
        self.impersonate = impersonate

    def send(self, tx: dict[str, Any]) -> bytes:
        if self.impersonate:
            return ImpersonatingSender(self.w3, self.address).send(tx)
        return bytes(self.w3.eth.send_transaction(cast(TxParams, {**tx, "from": self.address})))


class ApeSigner(ApeAccountSigner):
    """An ape ``AccountAPI`` (keyfile alias, hardware wallet, test account): ape signs (and may
    prompt for the passphrase), the raw transaction is broadcast through ``w3``."""

    def __init__(self, account: Any, w3: Web3) -> None:
        super().__init__(account, w3)

    def send(self, tx: dict[str, Any]) -> bytes:
        try:
            return super().send(tx)
        except SignerError:
            raise DeployError("the account did not sign the transaction (declined?)", "account") from None

